package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sleeper(name string) string {
	return shPod(name, "Always", "trap 'exit 0' TERM; while true; do sleep 1; done")
}

// containerIDs maps pod name to its running container IDs, from the runtime itself.
func (a *agent) containerIDs() map[string][]string {
	out := map[string][]string{}
	for _, p := range a.runtimePods() {
		for _, c := range p.Containers {
			if c.State == "running" {
				out[p.Name] = append(out[p.Name], c.ID)
			}
		}
	}
	return out
}

func TestKill9With10PodsThenRestartTouchesNothing(t *testing.T) {
	a := newAgent(t)
	a.start()
	for i := 0; i < 10; i++ {
		a.writeManifest(fmt.Sprintf("p%d.yaml", i), sleeper(fmt.Sprintf("p%d", i)))
	}
	a.waitFor("10 running pods", 120*time.Second, func() bool {
		n := 0
		for _, p := range a.pods() {
			if p.Phase == "Running" {
				n++
			}
		}
		return n == 10
	})
	before := a.containerIDs()
	a.kill9()
	a.start()
	a.waitFor("the agent to adopt the runtime", 20*time.Second, func() bool {
		return len(a.events("", "RuntimeConnected")) >= 2
	})
	time.Sleep(2 * time.Second) // a few relists and plans
	after := a.containerIDs()
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("containers changed across kill -9 + restart:\nbefore %v\nafter  %v", before, after)
	}
	for _, p := range a.pods() {
		if p.Restarts != 0 || p.Phase != "Running" {
			t.Errorf("%s: phase %s restarts %d after the agent restart", p.Name, p.Phase, p.Restarts)
		}
	}
	// Nothing was started after the restart.
	restartedAt := a.events("", "AgentStarted")
	last := restartedAt[len(restartedAt)-1]["seq"].(float64)
	for _, e := range a.events("", "Intent") {
		if e["seq"].(float64) > last {
			t.Errorf("action after restart: %v", e["data"])
		}
	}
	a.stop()
	if out, err := a.cli("replay", "verify", "--db", filepath.Join(a.dataDir, "ledger.db")); err != nil {
		t.Fatalf("replay verify: %v\n%s", err, out)
	}
}

// TestKill9DuringChurnNeverLeaksOrDuplicates kills the agent at random
// moments while pods are being created and removed, restarts it, and checks
// that it converges with no duplicate or leaked sandbox.
func TestKill9DuringChurnNeverLeaksOrDuplicates(t *testing.T) {
	a := newAgent(t)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	rounds := 6
	if s := os.Getenv("LEDGERLET_E2E_CHURN_ROUNDS"); s != "" {
		fmt.Sscan(s, &rounds)
	}
	a.start()
	want := map[string]bool{}
	for round := 0; round < rounds; round++ {
		// Flip about half of 10 pods: add the absent, remove the present.
		for i := 0; i < 10; i++ {
			if rng.IntN(2) == 0 {
				continue
			}
			name := fmt.Sprintf("c%d", i)
			if want[name] {
				a.removeManifest(name + ".yaml")
				delete(want, name)
			} else {
				a.writeManifest(name+".yaml", sleeper(name))
				want[name] = true
			}
		}
		time.Sleep(time.Duration(100+rng.IntN(1500)) * time.Millisecond)
		a.kill9()
		a.start()
	}
	var last string
	defer func() {
		if t.Failed() {
			t.Logf("want %v\nruntime: %s", want, last)
			out, _ := a.cli("pods")
			t.Logf("pods:\n%s", out)
		}
	}()
	a.waitFor("convergence", 120*time.Second, func() bool {
		rp := a.runtimePods()
		last = ""
		for _, p := range rp {
			last += fmt.Sprintf("\n  %s sandboxes=%d containers=%d", p.Name, len(p.Sandboxes), len(p.Containers))
			for _, sb := range p.Sandboxes {
				last += fmt.Sprintf(" [sb %s %s]", sb.ID[:8], sb.State)
			}
			for _, c := range p.Containers {
				last += fmt.Sprintf(" [c %s %s a%d]", c.ID[:8], c.State, c.Attempt)
			}
		}
		if len(rp) != len(want) {
			return false
		}
		for _, p := range rp {
			name := strings.TrimSuffix(p.Name, "-"+a.node)
			ready, running := 0, 0
			for _, sb := range p.Sandboxes {
				if sb.State == "ready" {
					ready++
				}
			}
			for _, c := range p.Containers {
				if c.State == "running" {
					running++
				}
			}
			if !want[name] || len(p.Sandboxes) != 1 || ready != 1 || running != 1 {
				return false
			}
		}
		return true
	})
	a.stop()
	if out, err := a.cli("replay", "verify", "--db", filepath.Join(a.dataDir, "ledger.db")); err != nil {
		t.Fatalf("replay verify: %v\n%s", err, out)
	}
}

func TestAgentSurvivesContainerdRestart(t *testing.T) {
	if os.Getenv("LEDGERLET_E2E_RESTART_CONTAINERD") == "" {
		t.Skip("set LEDGERLET_E2E_RESTART_CONTAINERD=1 (make test-e2e does) to restart the private containerd")
	}
	a := newAgent(t)
	a.start()
	a.writeManifest("survivor.yaml", sleeper("survivor"))
	before := a.waitRunning("survivor", 60*time.Second)
	restartContainerd(t)
	a.waitFor("RuntimeDisconnected and RuntimeConnected again", 60*time.Second, func() bool {
		return len(a.events("", "RuntimeDisconnected")) >= 1 && len(a.events("", "RuntimeConnected")) >= 2
	})
	a.waitFor("the pod to run after containerd came back", 60*time.Second, func() bool {
		p := a.pod("survivor")
		return p != nil && p.Phase == "Running"
	})
	after := a.pod("survivor")
	t.Logf("container before %s, after %s", before.Containers[0].ContainerID, after.Containers[0].ContainerID)
	// A new pod still starts: the agent is fully back.
	a.writeManifest("late.yaml", sleeper("late"))
	a.waitRunning("late", 60*time.Second)
}

// TestBackoffSurvivesAgentRestart: the crash-loop back-off is a projection of
// the log, so killing the agent in the middle of a back-off does not reset
// it (the kubelet forgets it and restarts at once).
func TestBackoffSurvivesAgentRestart(t *testing.T) {
	a := newAgent(t)
	a.start()
	a.writeManifest("crash.yaml", shPod("crash", "Always", "exit 3"))
	a.waitFor("two starts", 60*time.Second, func() bool { return len(a.startTimes("crash")) >= 2 })
	// Wait for the second exit: the back-off is now 20 s.
	a.waitFor("the second exit", 30*time.Second, func() bool {
		p := a.pod("crash")
		return p != nil && p.Restarts >= 1 && p.Status == "CrashLoopBackOff"
	})
	exits := a.events("crash", "ContainerObserved")
	secondExit := eventTime(exits[len(exits)-1])
	a.kill9()
	a.start()
	a.waitFor("the third start", 60*time.Second, func() bool { return len(a.startTimes("crash")) >= 3 })
	third := a.startTimes("crash")[2]
	if gap := third.Sub(secondExit); gap < 19*time.Second {
		t.Fatalf("third start %s after the second exit, across an agent restart; want the 20 s back-off kept", gap)
	}
}
