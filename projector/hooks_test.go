package projector_test

import (
	"testing"
	"time"

	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector"
)

const (
	postStartHook = `,"lifecycle":{"postStart":{"exec":{"command":["setup"]}}}`
	preStopHook   = `,"lifecycle":{"preStop":{"sleep":{"seconds":10}}}`
)

// doTaking records the intent, lets d pass, and records its outcome.
func (w *world) doTaking(in *pb.Intent, d time.Duration, ok bool, errMsg string) {
	iseq := w.apply(pk, in)
	w.advance(d)
	w.apply(pk, &pb.Outcome{IntentSeq: iseq, Ok: ok, Error: errMsg})
}

func TestPostStartRunsBeforeAnythingElseAndGatesStarted(t *testing.T) {
	w := newWorld(t)
	_, ctr := w.running(probedSpec(postStartHook))
	in := w.mustPlan(pb.ActionRunPostStart, "a")
	if in.ContainerId != ctr {
		t.Fatalf("hook for %s, want %s", in.ContainerId, ctr)
	}
	if v := w.s.Views()[0]; v.Ready != "0/1" {
		t.Fatalf("READY %s while the postStart hook has not run", v.Ready)
	}
	w.do(in)
	if got, _ := w.plan(); got != nil {
		t.Fatalf("planned %v after the hook ran", got)
	}
	if v := w.s.Views()[0]; v.Ready != "1/1" {
		t.Fatalf("READY %s after the hook ran", v.Ready)
	}
}

func TestFailedPostStartStopsTheContainer(t *testing.T) {
	w := newWorld(t)
	sb, ctr := w.running(probedSpec(postStartHook))
	w.doTaking(w.mustPlan(pb.ActionRunPostStart, "a"), time.Second, false, "command \"setup\" exited with 1")
	stop := w.mustPlan(pb.ActionStopContainer, "a")
	if stop.Reason != "FailedPostStartHook" || stop.GracePeriodSeconds != 5 {
		t.Fatalf("stop %v, want reason FailedPostStartHook with the pod's grace", stop)
	}
	w.do(stop)
	w.apply(pk, &pb.ContainerObserved{Uid: "u1", SandboxId: sb, Container: "a", ContainerId: ctr, State: "exited", ExitCode: 137, Reason: "Error"})
	w.advance(10 * time.Second)
	w.do(w.mustPlan(pb.ActionStartContainer, "a"))
	c := w.s.ViewsAt(w.now.UnixNano())[0].Containers[0]
	if c.LastState == nil || c.LastState.Reason != projector.ReasonFailedPostStartHook {
		t.Fatalf("last state %+v, want it killed for its postStart hook", c.LastState)
	}
}

func TestPostStartCutShortByACrashIsNotRunAgain(t *testing.T) {
	w := newWorld(t)
	w.running(probedSpec(postStartHook))
	w.apply(pk, w.mustPlan(pb.ActionRunPostStart, "a")) // the agent dies during the hook
	w.ready()                                           // the next run
	plan := w.s.Plan(w.now.UnixNano())
	if len(plan.Reconcile) != 1 {
		t.Fatalf("reconcile %v, want the hook's intent settled", plan.Reconcile)
	}
	w.apply(plan.Reconcile[0].Pod, &pb.Outcome{IntentSeq: plan.Reconcile[0].IntentSeq, Reason: pb.ReasonReconciled})
	if in, _ := w.plan(); in != nil {
		t.Fatalf("planned %v: a hook cut short must not run twice", in)
	}
}

func TestPreStopRunsBeforeTheStopAndItsTimeComesOutOfTheGrace(t *testing.T) {
	tests := []struct {
		name      string
		took      time.Duration
		ok        bool
		wantGrace int64
	}{
		{"quick hook", 2 * time.Second, true, 3},
		{"slow hook leaves the minimum", 4 * time.Second, true, 2},
		{"a failed hook does not hold the stop back", 0, false, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			w.running(probedSpec(preStopHook))
			w.apply(pk, &pb.ManifestRemoved{Source: "file", Path: "/m/web.yaml", Uid: "u1"})
			hook := w.mustPlan(pb.ActionRunPreStop, "a")
			if hook.GracePeriodSeconds != 5 || hook.Reason != "pod no longer desired" {
				t.Fatalf("hook intent %v", hook)
			}
			w.doTaking(hook, tt.took, tt.ok, "")
			if stop := w.mustPlan(pb.ActionStopContainer, "a"); stop.GracePeriodSeconds != tt.wantGrace {
				t.Fatalf("stop with grace %d, want %d", stop.GracePeriodSeconds, tt.wantGrace)
			}
		})
	}
}

func TestLivenessKillRunsThePreStopHookFirst(t *testing.T) {
	w := newWorld(t)
	_, ctr := w.running(probedSpec(`,"livenessProbe":` + execProbeGrace + preStopHook))
	w.probed(ctr, pb.ProbeLiveness, false, "")
	hook := w.mustPlan(pb.ActionRunPreStop, "a")
	if hook.GracePeriodSeconds != 2 || hook.Reason != "liveness probe failed" {
		t.Fatalf("hook intent %v, want the probe's grace and reason", hook)
	}
	w.doTaking(hook, time.Second, true, "")
	if stop := w.mustPlan(pb.ActionStopContainer, "a"); stop.GracePeriodSeconds != 2 || stop.Reason != "liveness probe failed" {
		t.Fatalf("stop %v", stop)
	}
}
