package projector_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector"
)

// clockWorld is a world whose events carry a boottime beside a wall clock
// that the test can step, as the agent's events do; the planner's now is the
// state's steady time plus the boottime since its last event, as the loop
// computes it.
type clockWorld struct {
	*world
	boot     string
	boottime int64
}

func newClockWorld(t *testing.T) *clockWorld {
	return &clockWorld{world: newWorld(t), boot: "boot-1", boottime: int64(time.Hour)}
}

func (w *clockWorld) apply(pod string, data proto.Message) uint64 {
	w.seq++
	w.s.Apply(eventlog.Event{Seq: w.seq, Time: w.now, Boottime: w.boottime, Pod: pod, Data: data})
	return w.seq
}

// elapse lets d of real time pass: both clocks move.
func (w *clockWorld) elapse(d time.Duration) {
	w.now = w.now.Add(d)
	w.boottime += int64(d)
}

// step sets the wall clock by d (settimeofday, NTP): the boottime does not move.
func (w *clockWorld) step(d time.Duration) { w.now = w.now.Add(d) }

func (w *clockWorld) desire(uid string, spec []byte) {
	w.apply(pk, &pb.ManifestAdded{Source: "file", Path: "/m/web.yaml", ContentHash: "h-" + uid, Uid: uid, ConfigHash: uid, PodJson: spec})
}

func (w *clockWorld) ready() {
	w.apply("", &pb.AgentStarted{NodeName: "node1", BootId: w.boot})
	w.apply("", &pb.RuntimeConnected{Endpoint: "unix:///x"})
	w.apply("", &pb.SourceSynced{Source: "file", Location: "/m"})
}

func (w *clockWorld) plan() (*pb.Intent, int64) {
	p := w.s.Plan(w.s.SteadyAt(w.now.UnixNano(), w.boottime))
	for _, d := range p.Decisions {
		if d.Pod == pk {
			return d.Intent, p.Wake - p.Now
		}
	}
	if p.Wake == 0 {
		return nil, 0
	}
	return nil, p.Wake - p.Now
}

func (w *clockWorld) do(in *pb.Intent, ok bool, reason string) *pb.Outcome {
	iseq := w.apply(pk, in)
	w.ids++
	out := &pb.Outcome{IntentSeq: iseq, Ok: ok, Reason: reason}
	if ok {
		switch pb.Action(in.Action) {
		case pb.ActionRunSandbox:
			out.SandboxId, out.Ip = "sb1", "10.0.0.2"
		case pb.ActionStartContainer:
			out.ContainerId = "ctr" + string(rune('a'+w.ids))
		}
	}
	w.apply(pk, out)
	return out
}

// crashed runs a pod whose container a exits after 1 s: its back-off is 10 s.
func (w *clockWorld) crashed() (sandbox string) {
	w.t.Helper()
	w.ready()
	w.desire("u1", podSpec("Always", nil, "a"))
	in, _ := w.plan()
	if in == nil || pb.Action(in.Action) != pb.ActionRunSandbox {
		w.t.Fatalf("planned %v, want RunSandbox", in)
	}
	sb := w.do(in, true, "").SandboxId
	in, _ = w.plan()
	if in == nil || pb.Action(in.Action) != pb.ActionStartContainer {
		w.t.Fatalf("planned %v, want StartContainer", in)
	}
	out := w.do(in, true, "")
	w.elapse(time.Second)
	w.apply(pk, &pb.ContainerObserved{Uid: "u1", SandboxId: sb, Container: "a", ContainerId: out.ContainerId, State: "exited", ExitCode: 1})
	return sb
}

// wantDueAfter checks that the next StartContainer of a is planned after
// exactly d of real time: not before (no clock step cuts a back-off short
// in one boot) and not later (no step delays it).
func (w *clockWorld) wantDueAfter(d time.Duration) {
	w.t.Helper()
	in, wake := w.plan()
	if in != nil {
		w.t.Fatalf("planned %s %s at once, want it after %s", in.Action, in.Container, d)
	}
	if time.Duration(wake) != d {
		w.t.Fatalf("planner wakes in %s, want %s", time.Duration(wake), d)
	}
	w.elapse(d - time.Millisecond)
	if in, _ := w.plan(); in != nil {
		w.t.Fatalf("planned %s %s %s early", in.Action, in.Container, time.Millisecond)
	}
	w.elapse(time.Millisecond)
	in, _ = w.plan()
	if in == nil || pb.Action(in.Action) != pb.ActionStartContainer || in.Container != "a" {
		w.t.Fatalf("after %s planned %v, want StartContainer a", d, in)
	}
}

func TestBackwardClockStepNeverDelaysARestartBeyondItsBackoff(t *testing.T) {
	for _, step := range []time.Duration{-8 * time.Hour, 8 * time.Hour} {
		t.Run(step.String(), func(t *testing.T) {
			w := newClockWorld(t)
			w.crashed()
			w.step(step)
			w.apply("", &pb.SourceSynced{Source: "file", Location: "/m"}) // an event stamped after the step
			if got := time.Unix(0, w.s.Time).UTC(); !got.Equal(w.now) {
				t.Fatalf("state time %s, want the wall time as read %s", got, w.now)
			}
			w.wantDueAfter(10 * time.Second)
		})
	}
}

func TestBackwardClockStepNeverDelaysARetryBeyondItsBackoff(t *testing.T) {
	for _, step := range []time.Duration{-8 * time.Hour, 8 * time.Hour} {
		t.Run(step.String(), func(t *testing.T) {
			w := newClockWorld(t)
			w.ready()
			w.desire("u1", podSpec("Always", nil, "a"))
			in, _ := w.plan()
			w.do(in, true, "")
			in, _ = w.plan()
			w.do(in, false, "ErrImagePull") // retried 10 s later
			w.step(step)
			w.wantDueAfter(10 * time.Second)
		})
	}
}

// Across a reboot the boottime starts again: the wall times then give the
// gap, never less than zero, so a back-off set before the reboot is due at
// most its own duration into the next boot, whatever the wall clock did.
func TestBackoffAcrossARebootIsNeverLongerThanItsDuration(t *testing.T) {
	for _, step := range []time.Duration{-8 * time.Hour, 2 * time.Second} {
		t.Run(step.String(), func(t *testing.T) {
			w := newClockWorld(t)
			w.crashed()
			w.boot, w.boottime = "boot-2", int64(5*time.Second)
			w.step(step)
			w.ready()
			left := 10*time.Second - max(step, 0)
			w.wantDueAfter(left)
		})
	}
}

// A snapshot restores the clock: planning from it is planning from the fold.
func TestSteadyClockSurvivesASnapshot(t *testing.T) {
	w := newClockWorld(t)
	w.crashed()
	w.step(-8 * time.Hour)
	w.apply("", &pb.SourceSynced{Source: "file", Location: "/m"})
	b, err := w.s.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	r, err := projector.Restore(b)
	if err != nil {
		t.Fatal(err)
	}
	w.s = r
	w.wantDueAfter(10 * time.Second)
}

// The back-off resets after 10 minutes of running, measured on the steady
// clock: a wall clock stepped back while it ran does not keep the long
// back-off, nor does one stepped forward reset it after a short run.
func TestBackoffResetIsMeasuredAcrossClockSteps(t *testing.T) {
	for _, tc := range []struct {
		step time.Duration
		ran  time.Duration
		want time.Duration
	}{
		{-8 * time.Hour, 11 * time.Minute, 10 * time.Second},
		{8 * time.Hour, 30 * time.Second, 20 * time.Second},
	} {
		t.Run(tc.step.String(), func(t *testing.T) {
			w := newClockWorld(t)
			sb := w.crashed() // back-off 10 s
			w.elapse(10 * time.Second)
			in, _ := w.plan()
			out := w.do(in, true, "")
			w.elapse(tc.ran / 2)
			w.step(tc.step)
			w.elapse(tc.ran / 2)
			w.apply(pk, &pb.ContainerObserved{Uid: "u1", SandboxId: sb, Container: "a", ContainerId: out.ContainerId, Attempt: 1, State: "exited", ExitCode: 1,
				StartedUnixNano: w.now.Add(-tc.ran - tc.step).UnixNano(), FinishedUnixNano: w.now.UnixNano()})
			if b := w.s.Pods[pk].Backoff["a"]; time.Duration(b.Delay) != tc.want {
				t.Fatalf("back-off %s after a %s run with the clock stepped %s, want %s", time.Duration(b.Delay), tc.ran, tc.step, tc.want)
			}
		})
	}
}

// Property: whatever the wall clock does between a crash and its restart
// (any number of steps back or forward, by up to a day), the restart is
// planned once its back-off of real time has passed, and not before.
func TestRestartIsDueAfterItsBackoffWhateverTheWallClockDoes(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		w := newClockWorld(t)
		w.crashed()
		exitBoot := w.boottime
		steps := rapid.IntRange(0, 6).Draw(rt, "steps")
		for i := 0; i < steps; i++ {
			w.step(time.Duration(rapid.Int64Range(-int64(24*time.Hour), int64(24*time.Hour)).Draw(rt, "step")))
			w.elapse(time.Duration(rapid.Int64Range(0, int64(3*time.Second)).Draw(rt, "elapse")))
			if rapid.Bool().Draw(rt, "event") {
				w.apply("", &pb.SourceSynced{Source: "file", Location: "/m"})
			}
		}
		elapsed := time.Duration(w.boottime - exitBoot)
		in, wake := w.plan()
		if elapsed >= 10*time.Second {
			if in == nil || pb.Action(in.Action) != pb.ActionStartContainer {
				rt.Fatalf("%s after the exit planned %v, want the restart", elapsed, in)
			}
			return
		}
		if in != nil {
			rt.Fatalf("%s after the exit planned %s, want nothing before the 10 s back-off", elapsed, in.Action)
		}
		if left := 10*time.Second - elapsed; time.Duration(wake) != left {
			rt.Fatalf("%s after the exit the planner wakes in %s, want %s", elapsed, time.Duration(wake), left)
		}
	})
}
