package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ledgerlet/ledgerlet/runtime"
	"github.com/ledgerlet/ledgerlet/sources"
)

// exitsPod is a pod of n containers that each exit (code 1) after sleeping
// base plus a per-container offset, so exits are spread out.
func exitsPod(name string, n int, base time.Duration, step time.Duration, first int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\nspec:\n  hostNetwork: true\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 1\n  containers:\n", name)
	for i := 0; i < n; i++ {
		d := base + time.Duration(first+i)*step
		fmt.Fprintf(&b, "  - name: c%d\n    image: localhost/busybox:1.36\n    imagePullPolicy: Never\n    command: [\"sh\", \"-c\", \"sleep %.3f; exit 1\"]\n", i, d.Seconds())
	}
	return b.String()
}

// BenchmarkContainerExitSeen: 40 containers (10 pods of 4, host network)
// exit one after another, 250 ms apart (containerd handles exits one at a
// time, each 100 ms and more here: closer exits queue in containerd); for each, the time from its exit (the
// runtime's finishedAt) until ContainerObserved(exited) is in the ledger,
// beside when CRI itself first showed it (polled every 5 ms: the floor of
// any observer built on CRI). Sub-benchmarks: the agent following the
// runtime's events (relist 10 s), and relisting every 1 s without them.
func BenchmarkContainerExitSeen(b *testing.B) {
	for _, mode := range []struct {
		name  string
		flags []string
	}{
		{"events", []string{"--relist-period", "10s"}},
		{"relist-1s", []string{"--runtime-events=false", "--relist-period", "1s"}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				a := newAgent(b, mode.flags...)
				a.start()
				cri := a.watchCRIExits()
				const pods, per = 10, 4
				for p := 0; p < pods; p++ {
					a.writeManifest(fmt.Sprintf("x%d.yaml", p), exitsPod(fmt.Sprintf("x%d", p), per, 10*time.Second, 250*time.Millisecond, p*per))
				}
				var all []exit
				a.waitFor("every exit in the ledger", 120*time.Second, func() bool {
					all = all[:0]
					for p := 0; p < pods; p++ {
						all = append(all, a.exits(fmt.Sprintf("x%d", p))...)
					}
					return len(all) == pods*per
				})
				// An exit may be in the ledger (from containerd's exit event) before CRI shows it.
				a.waitFor("CRI to show every exit", 30*time.Second, func() bool {
					for _, e := range all {
						if _, ok := cri.at(e.id); !ok {
							return false
						}
					}
					return true
				})
				var seen, floor, share []time.Duration
				for _, e := range all {
					seen = append(seen, e.recorded.Sub(e.finished))
					if at, ok := cri.at(e.id); ok {
						floor = append(floor, at.Sub(e.finished))
						share = append(share, e.recorded.Sub(at))
					}
				}
				b.ReportMetric(ms(quantile(seen, 0.5)), "exit-seen-p50-ms")
				b.ReportMetric(ms(quantile(seen, 0.99)), "exit-seen-p99-ms")
				if len(floor) > 0 {
					b.ReportMetric(ms(quantile(floor, 0.5)), "cri-shows-p50-ms")
					b.ReportMetric(ms(quantile(floor, 0.99)), "cri-shows-p99-ms")
					b.ReportMetric(ms(quantile(share, 0.5)), "agent-share-p50-ms")
					b.ReportMetric(ms(quantile(share, 0.99)), "agent-share-p99-ms")
				}
				b.ReportMetric(float64(len(seen)), "exits")
				cri.stop()
				for p := 0; p < pods; p++ {
					a.removeManifest(fmt.Sprintf("x%d.yaml", p))
				}
			}
		})
	}
}

// BenchmarkIdle10Pods: the agent's CPU and RSS over 30 s with 10 running
// pods, following the runtime's events (relist every 10 s) and relisting
// every 1 s without them (the cost the events take away).
func BenchmarkIdle10Pods(b *testing.B) {
	for _, mode := range []struct {
		name  string
		flags []string
	}{
		{"events", []string{"--relist-period", "1s"}},
		{"relist-1s", []string{"--runtime-events=false", "--relist-period", "1s"}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				a := newAgent(b, mode.flags...)
				a.start()
				for n := 0; n < 10; n++ {
					a.writeManifest(fmt.Sprintf("p%d.yaml", n), hostSleeper(fmt.Sprintf("p%d", n)))
				}
				a.waitFor("10 running pods", 120*time.Second, func() bool {
					running := 0
					for _, p := range a.pods() {
						if p.Phase == "Running" {
							running++
						}
					}
					return running == 10
				})
				time.Sleep(3 * time.Second) // past the start's own work
				cpu0, at0 := procCPU(a.cmd.Process.Pid), time.Now()
				time.Sleep(30 * time.Second)
				cpu1, at1 := procCPU(a.cmd.Process.Pid), time.Now()
				b.ReportMetric(100*(cpu1-cpu0)/at1.Sub(at0).Seconds(), "idle-cpu-%")
				b.ReportMetric(float64(procRSS(a.cmd.Process.Pid))/(1<<20), "idle-rss-MB")
			}
		})
	}
}

// BenchmarkTenManifestsAtOnce: 10 host-network manifests written at once →
// every container running as CRI reports it (polled every 5 ms), median of
// b.N rounds (each round removes the pods again). Sub-benchmark "floor":
// the same 10 sandboxes and containers, with the same CRI configs (the
// runtime package's own calls on the parsed manifests), started straight
// through CRI, all at once, with no agent.
func BenchmarkTenManifestsAtOnce(b *testing.B) {
	b.Run("agent", func(b *testing.B) {
		a := newAgent(b)
		a.start()
		r := tenRuntime(b, a.node)
		var all []time.Duration
		for i := 0; i < b.N; i++ {
			begin := time.Now()
			for n := 0; n < 10; n++ {
				a.writeManifest(fmt.Sprintf("p%d.yaml", n), hostSleeper(fmt.Sprintf("p%d", n)))
			}
			all = append(all, waitTenRunning(b, r, begin))
			for n := 0; n < 10; n++ {
				a.removeManifest(fmt.Sprintf("p%d.yaml", n))
			}
			a.waitFor("nothing left", 60*time.Second, func() bool { return len(a.runtimePods()) == 0 })
		}
		b.Logf("rounds (ms): %v", roundsMS(all))
		b.ReportMetric(ms(quantile(all, 0.5)), "ten-running-p50-ms")
	})
	b.Run("floor", func(b *testing.B) {
		node := "floor-" + strings.ToLower(strings.ReplaceAll(b.Name(), "/", "-"))
		if len(node) > 40 {
			node = node[:40]
		}
		r := tenRuntime(b, node)
		var pods []*corev1.Pod
		for n := 0; n < 10; n++ {
			res, err := sources.Parse([]byte(hostSleeper(fmt.Sprintf("p%d", n))), sources.ParseOptions{NodeName: node, Source: "file", Path: fmt.Sprintf("/floor/p%d.yaml", n)})
			if err != nil {
				b.Fatal(err)
			}
			pods = append(pods, res.Pod)
		}
		var all []time.Duration
		for i := 0; i < b.N; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			begin := time.Now()
			sandboxes := make([]string, len(pods))
			errs := make(chan error, len(pods))
			for k, pod := range pods {
				go func() {
					sb, err := r.RunPodSandbox(ctx, pod, 0)
					if err != nil {
						errs <- err
						return
					}
					sandboxes[k] = sb
					c := &pod.Spec.Containers[0]
					ref, err := r.EnsureImage(ctx, pod, c)
					if err != nil {
						errs <- err
						return
					}
					id, err := r.CreateContainer(ctx, pod, c, sb, runtime.ContainerOptions{ImageRef: ref, Fields: runtime.FieldValues{NodeName: pod.Spec.NodeName}})
					if err == nil {
						err = r.StartContainer(ctx, id)
					}
					errs <- err
				}()
			}
			for range pods {
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			}
			all = append(all, waitTenRunning(b, r, begin))
			for k, sb := range sandboxes {
				_ = r.StopPodSandbox(ctx, sb)
				_ = r.RemovePodSandbox(ctx, sb)
				_ = r.RemovePodCgroup(string(pods[k].UID))
				_ = r.RemovePodData(string(pods[k].UID))
			}
			cancel()
		}
		b.Logf("rounds (ms): %v", roundsMS(all))
		b.ReportMetric(ms(quantile(all, 0.5)), "ten-running-p50-ms")
	})
}

func tenRuntime(b *testing.B, node string) *runtime.Runtime {
	dir := b.TempDir()
	r, err := runtime.New(runtime.Config{Endpoint: endpoint, ManagedBy: node, LogRoot: dir + "/logs", DataDir: dir + "/data",
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	return r
}

// waitTenRunning waits until CRI shows 10 running containers of r's agent.
func waitTenRunning(b *testing.B, r *runtime.Runtime, begin time.Time) time.Duration {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		cs, err := r.ListContainers(ctx)
		cancel()
		n := 0
		for _, c := range cs {
			if err == nil && c.State == runtime.ContainerRunning {
				n++
			}
		}
		if n >= 10 {
			return time.Since(begin)
		}
		if time.Since(begin) > 2*time.Minute {
			b.Fatalf("10 pods not running after 2 min")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// roundsMS lists each round's figure in milliseconds, for the benchmark's log.
func roundsMS(ds []time.Duration) []int64 {
	out := make([]int64, len(ds))
	for i, d := range ds {
		out[i] = d.Milliseconds()
	}
	return out
}
