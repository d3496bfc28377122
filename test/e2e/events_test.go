package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ledgerlet/ledgerlet/runtime"
)

// criExits polls CRI every 5 ms (about as fast as anything can learn of an
// exit through CRI, without loading containerd much) and notes when each of the agent's containers first shows
// exited: the floor an observer built on CRI reads cannot go below.
type criExits struct {
	mu   sync.Mutex
	seen map[string]time.Time // container ID → first seen exited
	stop func()
}

func (a *agent) watchCRIExits() *criExits {
	a.t.Helper()
	r, err := runtime.New(runtime.Config{Endpoint: endpoint, ManagedBy: a.node})
	if err != nil {
		a.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &criExits{seen: map[string]time.Time{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			cs, err := r.ListContainers(ctx)
			now := time.Now()
			if err == nil {
				w.mu.Lock()
				for _, c := range cs {
					if _, ok := w.seen[c.ID]; !ok && c.State == runtime.ContainerExited {
						w.seen[c.ID] = now
					}
				}
				w.mu.Unlock()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	w.stop = func() { cancel(); <-done; r.Close() }
	a.t.Cleanup(w.stop)
	return w
}

func (w *criExits) at(id string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.seen[id]
	return t, ok
}

// exit is one container exit as the ledger recorded it.
type exit struct {
	container, id      string
	finished, recorded time.Time
}

// exits returns the ContainerObserved(exited) records of pod name.
func (a *agent) exits(name string) []exit {
	a.t.Helper()
	var out []exit
	for _, e := range a.events(name, "ContainerObserved") {
		d := e["data"].(map[string]any)
		if d["state"] != "exited" {
			continue
		}
		fin, ok := d["finishedUnixNano"]
		if !ok {
			continue
		}
		out = append(out, exit{container: d["container"].(string), id: d["containerId"].(string),
			finished: time.Unix(0, int64(mustFloat(fin))), recorded: eventTime(e)})
	}
	return out
}

// TestContainerExitIsSeenFromEventsNotRelist: with the relist 10 s apart, a
// container's exit is in the ledger within 100 ms of CRI first showing it
// (polled every 5 ms beside the agent), with the runtime's exit code and
// reason, because the runtime's own event made the agent look. (containerd
// reports an exit through CRI only after it has cleaned the task up, 100 to
// 300 ms after the process ended on this machine: that part is containerd's.)
func TestContainerExitIsSeenFromEventsNotRelist(t *testing.T) {
	a := newAgent(t, "--relist-period", "10s", "--evented-relist-period", "10s")
	a.start()
	cri := a.watchCRIExits()
	a.writeManifest("exiter.yaml", shPod("exiter", "Never", "sleep 2; exit 3"))
	var ex exit
	a.waitFor("the exit in the ledger", 30*time.Second, func() bool {
		exits := a.exits("exiter")
		if len(exits) == 0 {
			return false
		}
		ex = exits[0]
		return true
	})
	// On containerd 1.6 the exit is recorded from containerd's event, before
	// its CRI plugin shows it.
	var shown time.Time
	a.waitFor("CRI to show the exit", 10*time.Second, func() bool {
		var ok bool
		shown, ok = cri.at(ex.id)
		return ok
	})
	t.Logf("exit → CRI shows it: %s; → ContainerObserved(exited): %s (the agent's share %s)",
		shown.Sub(ex.finished), ex.recorded.Sub(ex.finished), ex.recorded.Sub(shown))
	if share := ex.recorded.Sub(shown); share > 100*time.Millisecond {
		t.Fatalf("exit recorded %s after CRI showed it; want ≤ 100ms (from the runtime's event, not the 10 s relist)", share)
	}
	exits := a.events("exiter", "ContainerObserved")
	d := exits[len(exits)-1]["data"].(map[string]any)
	if mustFloat(d["exitCode"]) != 3 || d["reason"] != "Error" {
		t.Fatalf("exit recorded as %v; want exit code 3, reason Error", d)
	}
	// containerd 2.x has CRI's container events; 1.6 only its own events service.
	api := a.streamingAPI()
	t.Logf("changes streamed through the %s API", api)
	if want := map[string]string{"2": "cri"}[os.Getenv("LEDGERLET_DEV_CONTAINERD")]; want != "" && api != want {
		t.Fatalf("streamed through %q, want %q on this runtime", api, want)
	}
}

// streamingAPI is the API of the agent's change stream, from its log.
func (a *agent) streamingAPI() string {
	b, _ := os.ReadFile(a.stderr)
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, "runtime changes streaming") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "api="); ok {
				return v
			}
		}
	}
	return ""
}

// observationTrail is the agent's runtime observations in order, without
// IDs and times: what an operator reads in `ledgerlet events`.
func (a *agent) observationTrail() []string {
	a.t.Helper()
	var out []string
	for _, e := range a.events("", "") {
		typ := e["type"].(string)
		d, _ := e["data"].(map[string]any)
		pod, _ := e["pod"].(string)
		pod = strings.TrimSuffix(pod, "-"+a.node)
		switch typ {
		case "SandboxObserved":
			out = append(out, fmt.Sprintf("%s %s %v", typ, pod, d["state"]))
		case "ContainerObserved":
			out = append(out, fmt.Sprintf("%s %s %v %v exit=%v %v", typ, pod, d["container"], d["state"], d["exitCode"], d["reason"]))
		case "ContainerGone":
			out = append(out, fmt.Sprintf("%s %s %v", typ, pod, d["container"]))
		case "SandboxGone":
			out = append(out, fmt.Sprintf("%s %s", typ, pod))
		}
	}
	return out
}

// TestEventsRecordWhatTheRelistRecords: the same life of two pods (an init
// container, an exit, a removal) leaves the same observations in the ledger
// whether the runtime's events or a relist found them.
func TestEventsRecordWhatTheRelistRecords(t *testing.T) {
	life := func(a *agent) []string {
		a.start()
		// The relist at the stream's opening could catch a container
		// between its create and start, as any relist may; start after it.
		a.waitFor("the agent streaming or relisting", 10*time.Second, func() bool {
			b, _ := os.ReadFile(a.stderr)
			return strings.Contains(string(b), "runtime changes streaming") || strings.Contains(strings.Join(a.extra, " "), "--runtime-events=false")
		})
		a.writeManifest("job.yaml", shPod("job", "Never", "sleep 1; exit 3", "true"))
		a.writeManifest("keeper.yaml", sleeper("keeper"))
		a.waitRunning("keeper", 60*time.Second)
		a.waitFor("the job's exit", 30*time.Second, func() bool {
			for _, e := range a.exits("job") {
				if e.container == "main" {
					return true
				}
			}
			return false
		})
		a.removeManifest("job.yaml")
		a.removeManifest("keeper.yaml")
		a.waitFor("nothing left in the runtime", 60*time.Second, func() bool { return len(a.runtimePods()) == 0 })
		a.waitFor("nothing left in the ledger's view", 30*time.Second, func() bool { return len(a.pods()) == 0 })
		time.Sleep(1500 * time.Millisecond) // a last relist
		trail := a.observationTrail()
		a.stop()
		return trail
	}
	evented := life(newAgent(t, "--relist-period", "10s"))
	relister := newAgent(t, "--runtime-events=false", "--relist-period", "1s")
	relister.node += "-r"
	relisted := life(relister)
	if strings.Join(evented, "\n") != strings.Join(relisted, "\n") {
		t.Fatalf("observations differ.\nfrom events:\n  %s\nfrom the relist:\n  %s",
			strings.Join(evented, "\n  "), strings.Join(relisted, "\n  "))
	}
	t.Logf("observations:\n  %s", strings.Join(evented, "\n  "))
}

// TestEventsResumeAfterContainerdRestart: containerd going away ends the
// event stream; the agent falls back to relisting, subscribes again when
// containerd is back, and exits are again seen within 100 ms although the
// relist is a minute apart.
func TestEventsResumeAfterContainerdRestart(t *testing.T) {
	if os.Getenv("LEDGERLET_E2E_RESTART_CONTAINERD") == "" {
		t.Skip("set LEDGERLET_E2E_RESTART_CONTAINERD=1 (make test-e2e does) to restart the private containerd")
	}
	a := newAgent(t, "--relist-period", "1s", "--evented-relist-period", "1m")
	a.start()
	a.writeManifest("survivor.yaml", sleeper("survivor"))
	a.waitRunning("survivor", 60*time.Second)
	restartContainerd(t)
	a.waitFor("RuntimeConnected again", 60*time.Second, func() bool {
		return len(a.events("", "RuntimeConnected")) >= 2
	})
	a.waitFor("the agent to stream changes again", 30*time.Second, func() bool {
		b, _ := os.ReadFile(a.stderr)
		return strings.Count(string(b), "runtime changes streaming") >= 2
	})
	if b, _ := os.ReadFile(a.stderr); !strings.Contains(string(b), "runtime change stream lost") {
		t.Fatalf("the agent never noticed the stream was lost")
	}
	cri := a.watchCRIExits()
	a.writeManifest("exiter.yaml", shPod("exiter", "Never", "sleep 2; exit 3"))
	var ex exit
	a.waitFor("the exit in the ledger", 30*time.Second, func() bool {
		exits := a.exits("exiter")
		if len(exits) == 0 {
			return false
		}
		ex = exits[0]
		return true
	})
	// The exit may be recorded (from containerd's exit event) before CRI shows it.
	var shown time.Time
	a.waitFor("CRI to show the exit", 10*time.Second, func() bool {
		var ok bool
		shown, ok = cri.at(ex.id)
		return ok
	})
	t.Logf("after the restart, CRI shows the exit → ContainerObserved(exited): %s", ex.recorded.Sub(shown))
	if share := ex.recorded.Sub(shown); share > 100*time.Millisecond {
		t.Fatalf("exit recorded %s after CRI showed it; want ≤ 100ms", share)
	}
}

// restartContainerd stops the daemon of the private containerd the tests
// run on (its shims, and so the containers, live on) and starts it again.
// The containerd is the one serving LEDGERLET_CRI_ENDPOINT, never another
// on the machine: hack/dev-containerd keeps its socket in its dir.
func restartContainerd(t *testing.T) {
	t.Helper()
	dev := filepath.Dir(strings.TrimPrefix(endpoint, "unix://"))
	b, err := os.ReadFile(filepath.Join(dev, "containerd.pid"))
	if err != nil {
		t.Fatalf("the endpoint %s is not a hack/dev-containerd one: %v", endpoint, err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 {
		t.Fatalf("no containerd pid in %s", dev)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("stop containerd: %v", err)
	}
	for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // the agent notices
	up := exec.Command("../../hack/dev-containerd", "up")
	up.Env = append(os.Environ(), "LEDGERLET_DEV_DIR="+dev)
	if out, err := up.CombinedOutput(); err != nil {
		t.Fatalf("dev-containerd up: %v\n%s", err, out)
	}
}

// TestAnOOMKillIsRecordedAsOOMKilled: a container killed by the kernel for
// its memory limit is recorded with CRI's reason OOMKilled and exit code 137,
// whether its exit came through the runtime's exit event (containerd 1.6:
// recorded before CRI shows it, the reason from the OOM event before it) or
// through CRI's own events, and the ledger ends as CRI reports it.
func TestAnOOMKillIsRecordedAsOOMKilled(t *testing.T) {
	a := newAgent(t, "--relist-period", "10s")
	a.start()
	// tail buffers /dev/zero's one endless line until the limit kills it.
	pod := shPod("oom", "Never", "sleep 1; tail /dev/zero") +
		"    resources:\n      limits:\n        memory: 24Mi\n"
	a.writeManifest("oom.yaml", pod)
	var ex exit
	a.waitFor("the OOM kill in the ledger", 60*time.Second, func() bool {
		exits := a.exits("oom")
		if len(exits) == 0 {
			return false
		}
		ex = exits[len(exits)-1]
		return true
	})
	a.waitFor("CRI to report the OOM kill", 10*time.Second, func() bool {
		for _, p := range a.runtimePods() {
			for _, c := range p.Containers {
				if c.ID == ex.id && c.State == "exited" {
					return true
				}
			}
		}
		return false
	})
	time.Sleep(500 * time.Millisecond) // a correction, if CRI said otherwise, is recorded by now
	obs := a.events("oom", "ContainerObserved")
	d := obs[len(obs)-1]["data"].(map[string]any)
	if d["reason"] != "OOMKilled" || mustFloat(d["exitCode"]) != 137 {
		t.Fatalf("last record of the OOM-killed container: %v; want reason OOMKilled, exit code 137", d)
	}
	t.Logf("exit → ContainerObserved(exited): %s, records of it: %d", ex.recorded.Sub(ex.finished), len(obs))
}
