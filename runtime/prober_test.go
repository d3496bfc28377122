package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

// probeUnit stands for one second of probe timing in these tests.
const probeUnit = 20 * time.Millisecond

const probePod = "default/web-node1"

// proberWorld is a log with one host-network pod whose container "c" runs
// (instance "ctr1") with the given probes, a projection following it, and
// a prober on it.
type proberWorld struct {
	t     *testing.T
	log   *eventlog.Log
	proj  *testProjection
	start uint64
	exec  *fakeExec
	stop  func()
}

func newProberWorld(t *testing.T, probes string, connected bool) *proberWorld {
	t.Helper()
	return newProberWorldStarted(t, probes, connected, time.Now())
}

// newProberWorldStarted is newProberWorld with the container's start time
// as the runtime reports it (its wall clock).
func newProberWorldStarted(t *testing.T, probes string, connected bool, startedAt time.Time) *proberWorld {
	t.Helper()
	l, err := eventlog.Open(filepath.Join(t.TempDir(), "ledger.db"), eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	proj := newTestProjection()
	done := make(chan struct{})
	go func() { defer close(done); proj.run(ctx, l) }()
	spec := fmt.Sprintf(`{"metadata":{"name":"web-node1","namespace":"default","uid":"u1"},"spec":{"hostNetwork":true,"containers":[{"name":"c","image":"i"%s}]}}`, probes)
	evs := []eventlog.Event{
		{Data: &pb.AgentStarted{NodeName: "node1", Sources: []string{"file /m"}}},
		{Pod: probePod, Data: &pb.ManifestAdded{Source: "file", Path: "/m/web.json", ContentHash: "h1", Uid: "u1", ConfigHash: "u1", PodJson: []byte(spec)}},
		{Pod: probePod, Data: &pb.SandboxObserved{Uid: "u1", SandboxId: "sb1", State: "ready"}},
		{Pod: probePod, Data: &pb.ContainerObserved{Uid: "u1", SandboxId: "sb1", Container: "c", ContainerId: "ctr1", State: "running", StartedUnixNano: startedAt.UnixNano()}},
	}
	if connected {
		evs = append(evs, eventlog.Event{Data: &pb.RuntimeConnected{Endpoint: "unix:///x"}})
	}
	seqs, err := l.Append(ctx, evs...)
	if err != nil {
		t.Fatal(err)
	}
	return &proberWorld{t: t, log: l, proj: proj, start: seqs[0], exec: &fakeExec{fn: func([]string) (ExecResult, error) { return ExecResult{}, nil }},
		stop: func() { cancel(); <-done; l.Close() }}
}

// run runs a prober (on rec, or the log) until the returned stop is called.
func (w *proberWorld) run(rec Recorder) (stop func() error) {
	if rec == nil {
		rec = w.log
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	pr := &Prober{Exec: w.exec, Log: rec, Projection: w.proj, StartSeq: w.start, Second: probeUnit, Logger: slog.New(slog.DiscardHandler)}
	go func() { done <- pr.Run(ctx) }()
	return func() error { cancel(); return <-done }
}

// append appends evs and waits until the projection folded them.
func (w *proberWorld) append(evs ...eventlog.Event) {
	w.t.Helper()
	seqs, err := w.log.Append(context.Background(), evs...)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := w.proj.WaitFor(context.Background(), seqs[len(seqs)-1]); err != nil {
		w.t.Fatal(err)
	}
}

// probed returns the ContainerProbed events, as "kind result/consecutive".
func (w *proberWorld) probed() []string {
	w.t.Helper()
	var out []string
	err := w.log.Read(context.Background(), 1, 0, func(e eventlog.Event) error {
		if d, ok := e.Data.(*pb.ContainerProbed); ok {
			out = append(out, fmt.Sprintf("%s %s/%d", d.Probe, d.Result, d.Consecutive))
		}
		return nil
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return out
}

func (w *proberWorld) waitProbed(n int) []string {
	w.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := w.probed()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("timed out waiting for %d probe events; have %v", n, got)
		}
		time.Sleep(probeUnit / 2)
	}
}

// switchable is an HTTP server whose health the test switches.
func switchable(t *testing.T) (port int, healthy *atomic.Bool, stop func()) {
	healthy = &atomic.Bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	_, port = hostPort(t, srv.URL)
	return port, healthy, srv.Close
}

func TestProberAppendsOnlyTransitions(t *testing.T) {
	defer goleak.VerifyNone(t)
	port, healthy, stopSrv := switchable(t)
	defer stopSrv()
	healthy.Store(true)
	w := newProberWorld(t, fmt.Sprintf(`,"readinessProbe":{"httpGet":{"port":%d,"path":"/"},"periodSeconds":1,"timeoutSeconds":5,"failureThreshold":2,"successThreshold":1}`, port), true)
	defer w.stop()
	stop := w.run(nil)
	w.waitProbed(1)
	time.Sleep(15 * probeUnit) // many periods of the same result
	healthy.Store(false)
	w.waitProbed(2)
	time.Sleep(15 * probeUnit)
	healthy.Store(true)
	w.waitProbed(3)
	time.Sleep(15 * probeUnit)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	want := "[readiness success/1 readiness failure/2 readiness success/1]"
	if got := fmt.Sprint(w.probed()); got != want {
		t.Fatalf("events %s, want %s: one per change of the thresholded result", got, want)
	}
}

// The container started just before the clock was stepped back 8 h, so its
// recorded start is 8 h "ahead": its initial delay is counted on the steady
// clock, not from that wall time, and probing begins after the delay.
func TestClockStepBackNeverHoldsTheProbesInitialDelayBeyondItself(t *testing.T) {
	defer goleak.VerifyNone(t)
	w := newProberWorldStarted(t, `,"readinessProbe":{"exec":{"command":["true"]},"initialDelaySeconds":2,"periodSeconds":1}`, true,
		time.Now().Add(8*time.Hour))
	defer w.stop()
	stop := w.run(nil)
	w.waitProbed(1)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestStartupProbeHoldsLivenessAndReadinessBack(t *testing.T) {
	defer goleak.VerifyNone(t)
	var started atomic.Bool
	w := newProberWorld(t, `,"startupProbe":{"exec":{"command":["startup"]},"periodSeconds":1,"failureThreshold":1000,"successThreshold":1},`+
		`"livenessProbe":{"exec":{"command":["liveness"]},"periodSeconds":1,"failureThreshold":3,"successThreshold":1},`+
		`"readinessProbe":{"exec":{"command":["readiness"]},"periodSeconds":1,"failureThreshold":3,"successThreshold":1}`, true)
	defer w.stop()
	w.exec.fn = func(cmd []string) (ExecResult, error) {
		if cmd[0] == "startup" && !started.Load() {
			return ExecResult{ExitCode: 1}, nil
		}
		return ExecResult{}, nil
	}
	stop := w.run(nil)
	time.Sleep(10 * probeUnit)
	if n, l, r := w.exec.count("startup"), w.exec.count("liveness"), w.exec.count("readiness"); n < 3 || l != 0 || r != 0 {
		t.Fatalf("before startup succeeded: %d startup, %d liveness, %d readiness probes; want only startup probes", n, l, r)
	}
	started.Store(true)
	w.waitProbed(2)
	time.Sleep(5 * probeUnit)
	n := w.exec.count("startup")
	time.Sleep(5 * probeUnit)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if w.exec.count("liveness") == 0 || w.exec.count("readiness") == 0 {
		t.Fatal("liveness and readiness never probed after startup succeeded")
	}
	if w.exec.count("startup") != n {
		t.Fatal("the startup probe kept running after it succeeded")
	}
	if got := fmt.Sprint(w.probed()); got != "[startup success/1 readiness success/1]" {
		t.Fatalf("events %s; want startup then readiness successes (liveness healthy is not news)", got)
	}
}

func TestLivenessFailureIsRecordedOnceAndHeld(t *testing.T) {
	defer goleak.VerifyNone(t)
	w := newProberWorld(t, `,"livenessProbe":{"exec":{"command":["liveness"]},"periodSeconds":1,"failureThreshold":3,"successThreshold":1}`, true)
	defer w.stop()
	w.exec.fn = func([]string) (ExecResult, error) { return ExecResult{ExitCode: 1, Stdout: []byte("sick")}, nil }
	stop := w.run(nil)
	w.waitProbed(1)
	n := w.exec.count("liveness")
	time.Sleep(10 * probeUnit)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(w.probed()); got != "[liveness failure/3]" {
		t.Fatalf("events %s, want one liveness failure after 3 in a row", got)
	}
	if w.exec.count("liveness") != n {
		t.Fatal("liveness kept probing an instance already failed (the planner stops it)")
	}
}

func TestRestartOverKnownResultsAppendsNothing(t *testing.T) {
	defer goleak.VerifyNone(t)
	port, healthy, stopSrv := switchable(t)
	defer stopSrv()
	healthy.Store(true)
	w := newProberWorld(t, fmt.Sprintf(`,"readinessProbe":{"httpGet":{"port":%d},"periodSeconds":1,"failureThreshold":3,"successThreshold":1},`+
		`"livenessProbe":{"tcpSocket":{"port":%d},"periodSeconds":1,"failureThreshold":3,"successThreshold":1}`, port, port), true)
	defer w.stop()
	// The previous run recorded the container ready; this run starts over it.
	w.append(eventlog.Event{Pod: probePod, Data: &pb.ContainerProbed{Uid: "u1", Container: "c", ContainerId: "ctr1", Probe: "readiness", Result: "success", Consecutive: 1}})
	stop := w.run(nil)
	time.Sleep(20 * probeUnit)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := w.probed(); len(got) != 1 {
		t.Fatalf("events %v: a restart over healthy containers must append nothing", got)
	}
}

func TestNoProbeRunsWhileTheContainerIsNotRunning(t *testing.T) {
	defer goleak.VerifyNone(t)
	w := newProberWorld(t, `,"livenessProbe":{"exec":{"command":["liveness"]},"periodSeconds":1,"failureThreshold":3,"successThreshold":1}`, true)
	defer w.stop()
	stop := w.run(nil)
	deadline := time.Now().Add(5 * time.Second)
	for w.exec.count("liveness") == 0 && time.Now().Before(deadline) {
		time.Sleep(probeUnit)
	}
	w.append(eventlog.Event{Pod: probePod, Data: &pb.ContainerObserved{Uid: "u1", SandboxId: "sb1", Container: "c", ContainerId: "ctr1", State: "exited", ExitCode: 1}})
	time.Sleep(3 * probeUnit)
	n := w.exec.count("liveness")
	time.Sleep(10 * probeUnit)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n == 0 || w.exec.count("liveness") != n {
		t.Fatalf("probes: %d while running, %d after the exit; want some, then none", n, w.exec.count("liveness")-n)
	}
}

func TestNothingIsProbedBeforeThisRunRelisted(t *testing.T) {
	defer goleak.VerifyNone(t)
	w := newProberWorld(t, `,"livenessProbe":{"exec":{"command":["liveness"]},"periodSeconds":1,"failureThreshold":3,"successThreshold":1}`, false)
	defer w.stop()
	stop := w.run(nil)
	time.Sleep(10 * probeUnit)
	if w.exec.count("liveness") != 0 {
		t.Fatal("probed a container before this run's runtime relist")
	}
	w.append(eventlog.Event{Data: &pb.RuntimeConnected{Endpoint: "unix:///x"}})
	deadline := time.Now().Add(5 * time.Second)
	for w.exec.count("liveness") == 0 && time.Now().Before(deadline) {
		time.Sleep(probeUnit)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if w.exec.count("liveness") == 0 {
		t.Fatal("never probed once the runtime was relisted")
	}
}

// refusingProbes is a log that refuses probe results, as a failed one would.
type refusingProbes struct{ Recorder }

func (f refusingProbes) Append(ctx context.Context, evs ...eventlog.Event) ([]uint64, error) {
	return nil, errors.New("injected: commit failed")
}

func TestProberStopsWhenTheLogRefusesAResult(t *testing.T) {
	defer goleak.VerifyNone(t)
	w := newProberWorld(t, `,"readinessProbe":{"exec":{"command":["readiness"]},"periodSeconds":1,"failureThreshold":3,"successThreshold":1}`, true)
	defer w.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pr := &Prober{Exec: w.exec, Log: refusingProbes{w.log}, Projection: w.proj, StartSeq: w.start, Second: probeUnit, Logger: slog.New(slog.DiscardHandler)}
	if err := pr.Run(ctx); err == nil || ctx.Err() != nil {
		t.Fatalf("Run = %v (ctx %v), want the log's error", err, ctx.Err())
	}
}
