package runtime

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector"
)

// testProjection folds a real log through a subscription, as the agent's does.
type testProjection struct {
	mu      sync.RWMutex
	state   *projector.State
	changed chan struct{}
}

func newTestProjection() *testProjection {
	return &testProjection{state: projector.New(), changed: make(chan struct{})}
}

func (p *testProjection) run(ctx context.Context, l *eventlog.Log) {
	sub := l.Subscribe(1)
	defer sub.Close()
	for {
		e, err := sub.Next(ctx)
		if err != nil {
			return
		}
		p.mu.Lock()
		p.state.Apply(e)
		ch := p.changed
		p.changed = make(chan struct{})
		p.mu.Unlock()
		close(ch)
	}
}

func (p *testProjection) Read(fn func(*projector.State)) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	fn(p.state)
}

func (p *testProjection) Changed() <-chan struct{} {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.changed
}

func (p *testProjection) WaitFor(ctx context.Context, seq uint64) error {
	for {
		p.mu.RLock()
		done, ch := p.state.Seq >= seq, p.changed
		p.mu.RUnlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// checkingEffector records, for every job, whether its intent was already
// durable in the log when the effect began.
type checkingEffector struct {
	log *eventlog.Log
	mu  sync.Mutex
	ran []string
	bad []string
}

func (c *checkingEffector) Execute(ctx context.Context, j Job) *pb.Outcome {
	durable := false
	_ = c.log.Read(ctx, 1, 0, func(e eventlog.Event) error {
		if in, ok := e.Data.(*pb.Intent); ok && e.Pod == j.Pod && in.Action == j.Intent.Action && in.PlanSeq == j.Intent.PlanSeq {
			durable = true
		}
		return nil
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ran = append(c.ran, j.Intent.Action)
	if !durable {
		c.bad = append(c.bad, j.Intent.Action)
	}
	return &pb.Outcome{Ok: true, SandboxId: "sb-1"}
}

func (c *checkingEffector) actions() ([]string, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.ran...), append([]string(nil), c.bad...)
}

const loopSpec = `{"metadata":{"name":"web-node1","namespace":"default","uid":"u1"},"spec":{"containers":[{"name":"c","image":"localhost/busybox:1.36"}]}}`

// loopWorld is a log, a projection following it, and a started agent run.
func loopWorld(t *testing.T, rec Recorder) (*eventlog.Log, *testProjection, uint64, func()) {
	t.Helper()
	l, err := eventlog.Open(filepath.Join(t.TempDir(), "ledger.db"), eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	proj := newTestProjection()
	done := make(chan struct{})
	go func() { defer close(done); proj.run(ctx, l) }()
	seqs, err := l.Append(ctx,
		eventlog.Event{Data: &pb.AgentStarted{NodeName: "node1", Sources: []string{"file /m"}}},
		eventlog.Event{Pod: "default/web-node1", Data: &pb.ManifestAdded{Source: "file", Path: "/m/web.json", ContentHash: "h1", Uid: "u1", ConfigHash: "u1", PodJson: []byte(loopSpec)}},
		eventlog.Event{Data: &pb.SourceSynced{Source: "file", Location: "/m"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	return l, proj, seqs[0], func() { cancel(); <-done; l.Close() }
}

func TestIntentIsDurableBeforeItsEffect(t *testing.T) {
	defer goleak.VerifyNone(t)
	l, proj, start, stop := loopWorld(t, nil)
	defer stop()
	eff := &checkingEffector{log: l}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	loop := &Loop{Log: l, Projection: proj, Effectors: map[pb.Lane]Effector{pb.LaneRuntime: eff}, StartSeq: start}
	go func() { done <- loop.Run(ctx) }()
	if _, err := l.Append(ctx, eventlog.Event{Data: &pb.RuntimeConnected{Endpoint: "unix:///x"}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ran, _ := eff.actions()
		if len(ran) >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ran, bad := eff.actions()
	if len(ran) < 2 || ran[0] != string(pb.ActionRunSandbox) || ran[1] != string(pb.ActionStartContainer) {
		t.Fatalf("effects %v, want RunSandbox then StartContainer", ran)
	}
	if len(bad) > 0 {
		t.Fatalf("effects began before their intent was durable: %v", bad)
	}
}

// failingOutcomes refuses to record outcomes, as a log whose commit failed would.
type failingOutcomes struct{ Recorder }

func (f failingOutcomes) Append(ctx context.Context, evs ...eventlog.Event) ([]uint64, error) {
	for _, e := range evs {
		if _, ok := e.Data.(*pb.Outcome); ok {
			return nil, errors.New("injected: commit failed")
		}
	}
	return f.Recorder.Append(ctx, evs...)
}

// TestOutcomeThatCannotBeRecordedStopsTheLoop: an intent whose outcome is
// lost would stay pending and wedge its pod for the agent's lifetime; the
// loop stops instead, so the agent exits and the next run settles it.
func TestOutcomeThatCannotBeRecordedStopsTheLoop(t *testing.T) {
	defer goleak.VerifyNone(t)
	l, proj, start, stop := loopWorld(t, nil)
	defer stop()
	eff := &checkingEffector{log: l}
	loop := &Loop{Log: failingOutcomes{l}, Projection: proj, Effectors: map[pb.Lane]Effector{pb.LaneRuntime: eff}, StartSeq: start}
	if _, err := l.Append(context.Background(), eventlog.Event{Data: &pb.RuntimeConnected{Endpoint: "unix:///x"}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := loop.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "outcome") || ctx.Err() != nil {
		t.Fatalf("Run = %v (ctx %v), want an error about the lost outcome", err, ctx.Err())
	}
}

// TestNothingIsPlannedBeforeThisRunsStartIsFolded: the previous run's state
// says the runtime is connected; until this run's AgentStarted is folded
// the loop must not act on it.
func TestNothingIsPlannedBeforeThisRunsStartIsFolded(t *testing.T) {
	defer goleak.VerifyNone(t)
	l, proj, start, stop := loopWorld(t, nil)
	defer stop()
	if _, err := l.Append(context.Background(), eventlog.Event{Data: &pb.RuntimeConnected{Endpoint: "unix:///x"}}); err != nil {
		t.Fatal(err)
	}
	eff := &checkingEffector{log: l}
	// A start seq far ahead stands for "this run's AgentStarted is not folded yet".
	loop := &Loop{Log: l, Projection: proj, Effectors: map[pb.Lane]Effector{pb.LaneRuntime: eff}, StartSeq: start + 1000}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := loop.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if ran, _ := eff.actions(); len(ran) != 0 {
		t.Fatalf("acted before the run's start was folded: %v", ran)
	}
}
