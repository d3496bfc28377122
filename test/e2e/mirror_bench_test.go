package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// mirrorWatch records, for each mirror of the node, when (by this machine's
// clock, as the ledger's times) the admin's watch first saw it present and
// first saw its status Running.
type mirrorWatch struct {
	mu      sync.Mutex
	present map[string]map[string]time.Time // name -> uid -> first seen
	running map[string]map[string]time.Time // name -> uid -> first seen running
	stop    func()
}

func watchMirrors(b testing.TB, s *apiserver, node string) *mirrorWatch {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := s.admin.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		b.Fatal(err)
	}
	mw := &mirrorWatch{present: map[string]map[string]time.Time{}, running: map[string]map[string]time.Time{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type == watch.Deleted || p.DeletionTimestamp != nil {
				continue
			}
			now := time.Now()
			mw.mu.Lock()
			uid := string(p.UID)
			if mw.present[p.Name] == nil {
				mw.present[p.Name], mw.running[p.Name] = map[string]time.Time{}, map[string]time.Time{}
			}
			if _, ok := mw.present[p.Name][uid]; !ok {
				mw.present[p.Name][uid] = now
			}
			if _, ok := mw.running[p.Name][uid]; !ok && running(p) {
				mw.running[p.Name][uid] = now
			}
			mw.mu.Unlock()
		}
	}()
	mw.stop = func() { cancel(); w.Stop(); <-done }
	return mw
}

func (mw *mirrorWatch) firstRunning(name string) (string, time.Time, bool) {
	mw.mu.Lock()
	defer mw.mu.Unlock()
	for uid, t := range mw.running[name] {
		return uid, t, true
	}
	return "", time.Time{}, false
}

func (mw *mirrorWatch) presentOther(name, notUID string) (time.Time, bool) {
	mw.mu.Lock()
	defer mw.mu.Unlock()
	for uid, t := range mw.present[name] {
		if uid != notUID {
			return t, true
		}
	}
	return time.Time{}, false
}

// BenchmarkMirror: 20 pods one after another on the real apiserver.
// running-to-mirror: the container started (its StartContainer outcome in
// the ledger) until the admin's watch sees the mirror's status Running.
// recreate: a user force-deletes the mirror until the watch sees the new one.
func BenchmarkMirror(b *testing.B) {
	s := needApiserver(b)
	for i := 0; i < b.N; i++ {
		a := newAgent(b, "--relist-period", "1s")
		a.extra = append(a.extra, "--kubeconfig", s.nodeKubeconfig(a.node))
		a.start()
		mw := watchMirrors(b, s, a.node)
		var toMirror, recreate []time.Duration
		for n := 0; n < 20; n++ {
			name := fmt.Sprintf("m%d", n)
			a.writeManifest(name+".yaml", hostSleeper(name))
			full := name + "-" + a.node
			var startedAt time.Time
			a.waitFor(name+" running", 60*time.Second, func() bool {
				starts := map[float64]bool{}
				for _, e := range a.events(name, "") {
					d := e["data"].(map[string]any)
					if e["type"] == "Intent" && d["action"] == "StartContainer" {
						starts[e["seq"].(float64)] = true
					}
					if e["type"] == "Outcome" && d["ok"] == true && starts[mustFloat(d["intentSeq"])] {
						startedAt = eventTime(e)
						return true
					}
				}
				return false
			})
			var uid string
			var seen time.Time
			a.waitFor(name+" mirror running", 20*time.Second, func() bool {
				var ok bool
				uid, seen, ok = mw.firstRunning(full)
				return ok
			})
			toMirror = append(toMirror, seen.Sub(startedAt))

			zero := int64(0)
			deleted := time.Now()
			if err := s.admin.CoreV1().Pods("default").Delete(context.Background(), full, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
				b.Fatal(err)
			}
			a.waitFor(name+" mirror recreated", 20*time.Second, func() bool {
				var ok bool
				seen, ok = mw.presentOther(full, uid)
				return ok
			})
			recreate = append(recreate, seen.Sub(deleted))
		}
		mw.stop()
		b.ReportMetric(ms(quantile(toMirror, 0.5)), "running-to-mirror-p50-ms")
		b.ReportMetric(ms(quantile(toMirror, 0.99)), "running-to-mirror-p99-ms")
		b.ReportMetric(ms(quantile(recreate, 0.5)), "recreate-p50-ms")
		b.ReportMetric(ms(quantile(recreate, 0.99)), "recreate-p99-ms")
	}
}

// BenchmarkIdleMirrors: the agent's CPU over 30 s with 10 pods, without an
// apiserver and with one connected (lease renewals, the watch, node status).
func BenchmarkIdleMirrors(b *testing.B) {
	s := needApiserver(b)
	idle := func(withApiserver bool) float64 {
		a := newAgent(b, "--relist-period", "1s")
		if withApiserver {
			a.extra = append(a.extra, "--kubeconfig", s.nodeKubeconfig(a.node))
		}
		a.start()
		for n := 0; n < 10; n++ {
			a.writeManifest(fmt.Sprintf("i%d.yaml", n), hostSleeper(fmt.Sprintf("i%d", n)))
		}
		a.waitFor("10 running pods", 120*time.Second, func() bool {
			running := 0
			for _, p := range a.pods() {
				if p.Phase == "Running" && (!withApiserver || (p.Mirror != nil && p.Mirror.Current)) {
					running++
				}
			}
			return running == 10
		})
		time.Sleep(5 * time.Second) // let status patches settle
		cpu0, at0 := procCPU(a.cmd.Process.Pid), time.Now()
		time.Sleep(30 * time.Second)
		cpu1, at1 := procCPU(a.cmd.Process.Pid), time.Now()
		a.cleanup()
		return 100 * (cpu1 - cpu0) / at1.Sub(at0).Seconds()
	}
	for i := 0; i < b.N; i++ {
		without := idle(false)
		with := idle(true)
		b.ReportMetric(without, "idle-cpu-no-apiserver-%")
		b.ReportMetric(with, "idle-cpu-apiserver-%")
		b.ReportMetric(with-without, "idle-cpu-delta-%")
	}
}
