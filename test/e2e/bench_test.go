package e2e

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

func hostSleeper(name string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: localhost/busybox:1.36
    imagePullPolicy: Never
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
`, name)
}

func eventTime(e map[string]any) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, e["time"].(string))
	return t
}

func quantile(ds []time.Duration, q float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(q*float64(len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkRenameToRunning: an atomic rename of a manifest into the watched
// directory until the container runs (host network, local image), 20 pods
// one after another. Reported: the median end to end, the agent's own share
// (manifest event to first CRI intent, p99), and containerd's call times.
func BenchmarkRenameToRunning(b *testing.B) {
	for i := 0; i < b.N; i++ {
		// The default relist period, as in production.
		a := newAgent(b, "--relist-period", "1s")
		a.start()
		var total, share []time.Duration
		var sandboxCalls, startCalls []time.Duration
		for n := 0; n < 20; n++ {
			name := fmt.Sprintf("r%d", n)
			begin := time.Now()
			a.writeManifest(name+".yaml", hostSleeper(name))
			// Running = the successful outcome of StartContainer (the
			// container was created and started; the relist then has no
			// change to report).
			var evs []map[string]any
			var runningAt time.Time
			a.waitFor(name+" running", 60*time.Second, func() bool {
				evs = a.events(name, "")
				starts := map[float64]bool{}
				for _, e := range evs {
					d := e["data"].(map[string]any)
					if e["type"] == "Intent" && d["action"] == "StartContainer" {
						starts[e["seq"].(float64)] = true
					}
					if e["type"] == "Outcome" && d["ok"] == true && starts[mustFloat(d["intentSeq"])] {
						runningAt = eventTime(e)
						return true
					}
				}
				return false
			})
			total = append(total, runningAt.Sub(begin))
			var added time.Time
			intents := map[float64]map[string]any{}
			for _, e := range evs {
				switch e["type"] {
				case "ManifestAdded":
					added = eventTime(e)
				case "Intent":
					d := e["data"].(map[string]any)
					intents[e["seq"].(float64)] = map[string]any{"t": eventTime(e), "action": d["action"]}
					if d["action"] == "RunSandbox" {
						share = append(share, eventTime(e).Sub(added))
					}
				case "Outcome":
					d := e["data"].(map[string]any)
					in := intents[mustFloat(d["intentSeq"])]
					if in != nil {
						took := eventTime(e).Sub(in["t"].(time.Time))
						switch in["action"] {
						case "RunSandbox":
							sandboxCalls = append(sandboxCalls, took)
						case "StartContainer":
							startCalls = append(startCalls, took)
						}
					}
				}
			}
		}
		b.ReportMetric(ms(quantile(total, 0.5)), "rename-to-running-p50-ms")
		b.ReportMetric(ms(quantile(share, 0.99)), "agent-share-p99-ms")
		b.ReportMetric(ms(quantile(share, 0.5)), "agent-share-p50-ms")
		b.ReportMetric(ms(quantile(sandboxCalls, 0.5)), "cri-runsandbox-p50-ms")
		b.ReportMetric(ms(quantile(startCalls, 0.5)), "cri-start-container-p50-ms")
	}
}

func mustFloat(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case string:
		f, _ := strconv.ParseFloat(x, 64)
		return f
	}
	return 0
}

// BenchmarkRestartWith50Pods: with 50 pods running, the agent is killed
// (SIGKILL) and started again; reported is the time from exec to the
// runtime being re-listed and adopted (RuntimeConnected), and the restarts.
// Then the agent idles for 30 s with 50 pods: CPU share and RSS.
func BenchmarkRestartWith50Pods(b *testing.B) {
	for i := 0; i < b.N; i++ {
		// The default relist period: the idle figure is the production one.
		a := newAgent(b, "--relist-period", "1s")
		a.start()
		for n := 0; n < 50; n++ {
			a.writeManifest(fmt.Sprintf("p%d.yaml", n), hostSleeper(fmt.Sprintf("p%d", n)))
		}
		a.waitFor("50 running pods", 300*time.Second, func() bool {
			running := 0
			for _, p := range a.pods() {
				if p.Phase == "Running" {
					running++
				}
			}
			return running == 50
		})
		before := a.containerIDs()
		a.kill9()
		begin := time.Now()
		a.start()
		a.waitFor("adoption", 60*time.Second, func() bool { return len(a.events("", "RuntimeConnected")) >= 2 })
		conn := a.events("", "RuntimeConnected")
		reconciled := eventTime(conn[len(conn)-1]).Sub(begin)
		time.Sleep(2 * time.Second)
		if fmt.Sprint(before) != fmt.Sprint(a.containerIDs()) {
			b.Errorf("containers changed across the restart")
		}
		restarts := 0
		for _, p := range a.pods() {
			restarts += int(p.Restarts)
		}
		b.ReportMetric(ms(reconciled), "restart-reconciled-ms")
		b.ReportMetric(float64(restarts), "restarts")

		cpu0, at0 := procCPU(a.cmd.Process.Pid), time.Now()
		time.Sleep(30 * time.Second)
		cpu1, at1 := procCPU(a.cmd.Process.Pid), time.Now()
		b.ReportMetric(100*(cpu1-cpu0)/at1.Sub(at0).Seconds(), "idle-cpu-%")
		b.ReportMetric(float64(procRSS(a.cmd.Process.Pid))/(1<<20), "idle-rss-MB")
	}
}

// procCPU is the process's user+system CPU time in seconds.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(fields[11], 64)
	st, _ := strconv.ParseFloat(fields[12], 64)
	return (ut + st) / 100 // USER_HZ
}

func procRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
