package replay_test

import (
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector"
	"github.com/ledgerlet/ledgerlet/replay"
)

// A log written by an agent whose wall clock was stepped back 8 h (and
// later forward) while a container crash-looped: the restarts come after
// their back-off, the records carry the stepped wall times, and `replay
// verify` re-derives every decision from the log.
func TestVerifyReproducesDecisionsAcrossClockSteps(t *testing.T) {
	ctx := context.Background()
	wall := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	boottime := int64(time.Hour)
	l, err := eventlog.Open(filepath.Join(t.TempDir(), "ledger.db"), eventlog.Options{NoSync: true,
		Clock: func() time.Time { return wall }, Boottime: func() int64 { return boottime }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	elapse := func(d time.Duration) { wall = wall.Add(d); boottime += int64(d) }
	s := projector.New()
	const pod = "default/web-node1"
	rec := func(podKey string, data proto.Message) eventlog.Event {
		t.Helper()
		ev := eventlog.Event{Pod: podKey, Data: data}
		evs := []eventlog.Event{ev}
		if _, err := l.Append(ctx, evs...); err != nil {
			t.Fatal(err)
		}
		s.Apply(evs[0])
		elapse(time.Millisecond)
		return evs[0]
	}
	// act plans like the loop and carries out what is decided; it returns
	// the started container's ID, if one was started.
	act := func() (started string) {
		t.Helper()
		for i := 0; i < 5; i++ {
			p := s.Plan(s.SteadyAt(wall.UnixNano(), boottime))
			if len(p.Decisions) == 0 {
				return started
			}
			in := p.Decisions[0].Intent
			in.PlanSeq, in.PlanTimeUnixNano, in.PlanSteadyNano = s.Seq, wall.UnixNano(), p.Now
			ie := rec(pod, in)
			out := &pb.Outcome{IntentSeq: ie.Seq, Ok: true}
			switch pb.Action(in.Action) {
			case pb.ActionRunSandbox:
				out.SandboxId, out.Ip = "sb1", "10.0.0.2"
			case pb.ActionStartContainer:
				out.ContainerId = "ctr" + time.Duration(ie.Seq).String()
				started = out.ContainerId
			}
			rec(pod, out)
		}
		return started
	}
	rec("", &pb.AgentStarted{NodeName: "node1", BootId: "boot-1"})
	rec("", &pb.RuntimeConnected{Endpoint: "unix:///x"})
	rec("", &pb.SourceSynced{Source: "file", Location: "/m"})
	rec(pod, &pb.ManifestAdded{Source: "file", Path: "/m/web.yaml", ContentHash: "h", Uid: "u1", ConfigHash: "u1",
		PodJson: []byte(`{"metadata":{"name":"web-node1","namespace":"default"},"spec":{"containers":[{"name":"a","image":"localhost/busybox:1.36"}],"restartPolicy":"Always"}}`)})
	id := act()
	var restarts []time.Duration
	for i, step := range []time.Duration{-8 * time.Hour, 8 * time.Hour, -8 * time.Hour} {
		elapse(time.Second)
		exit := rec(pod, &pb.ContainerObserved{Uid: "u1", SandboxId: "sb1", Container: "a", ContainerId: id, Attempt: uint32(i), State: "exited", ExitCode: 1})
		wall = wall.Add(step)
		exitBoot := exit.Boottime
		for id2 := ""; id2 == ""; {
			elapse(time.Second)
			id2 = act()
			if id2 != "" {
				restarts = append(restarts, time.Duration(boottime-exitBoot).Round(time.Second))
				id = id2
			}
			if boottime-exitBoot > int64(time.Hour) {
				t.Fatalf("no restart an hour after exit %d (clock stepped %s)", i, step)
			}
		}
		if got := s.Time; got != wall.Add(-time.Millisecond).UnixNano() {
			t.Fatalf("state time %s, want the wall time as read %s", time.Unix(0, got).UTC(), wall)
		}
	}
	if want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second}; len(restarts) != 3 ||
		restarts[0] != want[0] || restarts[1] != want[1] || restarts[2] != want[2] {
		t.Fatalf("restarts after %v of real time, want %v", restarts, want)
	}
	// The audit views read such a log too.
	if _, err := replay.Explain(ctx, l, replay.ExplainOptions{Pod: pod}); err != nil {
		t.Fatalf("explain: %v", err)
	}
	tl, err := replay.BuildTimeline(ctx, l, replay.TimelineOptions{})
	if err != nil {
		t.Fatalf("timeline: %v", err)
	}
	if err := tl.WriteText(io.Discard); err != nil {
		t.Fatalf("timeline text: %v", err)
	}
	rep, err := replay.Verify(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Decisions < 5 {
		t.Fatalf("verify: %d decisions, divergences %v", rep.Decisions, rep.Divergences)
	}
}
