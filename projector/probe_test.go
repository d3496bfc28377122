package projector_test

import (
	"fmt"
	"testing"
	"time"

	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector"
)

// probedSpec is a one-container pod ("a", restart policy Always, grace 5)
// whose container has the given probes (JSON fields of the container).
func probedSpec(probes string) []byte {
	return []byte(fmt.Sprintf(`{"metadata":{"name":"web-node1","namespace":"default"},"spec":{"containers":[{"name":"a","image":"localhost/busybox:1.36"%s}],"restartPolicy":"Always","terminationGracePeriodSeconds":5}}`, probes))
}

const (
	execProbe      = `{"exec":{"command":["true"]},"periodSeconds":1,"failureThreshold":3,"successThreshold":1,"timeoutSeconds":1}`
	execProbeGrace = `{"exec":{"command":["true"]},"periodSeconds":1,"failureThreshold":3,"successThreshold":1,"timeoutSeconds":1,"terminationGracePeriodSeconds":2}`
)

// running brings the probed pod to one running container and returns its
// sandbox and container IDs.
func (w *world) running(spec []byte) (sb, ctr string) {
	w.ready()
	w.desire("u1", spec)
	sb = w.do(w.mustPlan(pb.ActionRunSandbox, "")).SandboxId
	ctr = w.do(w.mustPlan(pb.ActionStartContainer, "a")).ContainerId
	return sb, ctr
}

func (w *world) probed(ctr string, kind pb.ProbeKind, ok bool, output string) {
	res := pb.ProbeFailure
	if ok {
		res = pb.ProbeSuccess
	}
	w.apply(pk, &pb.ContainerProbed{Uid: "u1", Container: "a", ContainerId: ctr, Probe: string(kind), Result: string(res), Output: output, Consecutive: 3})
}

func TestFailedLivenessOrStartupProbeStopsTheContainer(t *testing.T) {
	tests := []struct {
		name      string
		probes    string
		results   []pb.ProbeKind // failures recorded, in order (startup successes before liveness)
		wantGrace int64
		reason    string
		viewWhy   string
	}{
		{"liveness with the pod's grace", `,"livenessProbe":` + execProbe, []pb.ProbeKind{pb.ProbeLiveness}, 5, "liveness probe failed", projector.ReasonLivenessProbe},
		{"liveness with the probe's grace", `,"livenessProbe":` + execProbeGrace, []pb.ProbeKind{pb.ProbeLiveness}, 2, "liveness probe failed", projector.ReasonLivenessProbe},
		{"startup", `,"startupProbe":` + execProbeGrace, []pb.ProbeKind{pb.ProbeStartup}, 2, "startup probe failed", projector.ReasonStartupProbe},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			sb, ctr := w.running(probedSpec(tt.probes))
			if in, _ := w.plan(); in != nil {
				t.Fatalf("planned %v before any probe failed", in)
			}
			for _, k := range tt.results {
				w.probed(ctr, k, false, "exit status 1")
			}
			in := w.mustPlan(pb.ActionStopContainer, "a")
			if in.ContainerId != ctr || in.GracePeriodSeconds != tt.wantGrace || in.Reason != tt.reason {
				t.Fatalf("stop intent %v; want container %s, grace %d, reason %q", in, ctr, tt.wantGrace, tt.reason)
			}
			w.do(in)
			// The relist then sees the exit, with the runtime's reason.
			w.apply(pk, &pb.ContainerObserved{Uid: "u1", SandboxId: sb, Container: "a", ContainerId: ctr, State: "exited", ExitCode: 137, Reason: "Error"})
			v := w.s.ViewsAt(w.now.UnixNano())[0]
			if c := v.Containers[0]; c.Reason != "CrashLoopBackOff" {
				t.Fatalf("after the kill: state %s reason %q, want waiting in CrashLoopBackOff", c.State, c.Reason)
			}
			// Back-off counts it: no restart before 10s.
			if in, wake := w.plan(); in != nil || wake != w.now.Add(10*time.Second).UnixNano() {
				t.Fatalf("planned %v (wake %d) right after the kill, want the restart in 10s", in, wake)
			}
			w.advance(10 * time.Second)
			start := w.mustPlan(pb.ActionStartContainer, "a")
			if start.Attempt != 1 {
				t.Fatalf("restart attempt %d, want 1", start.Attempt)
			}
			w.do(start)
			v = w.s.ViewsAt(w.now.UnixNano())[0]
			c := v.Containers[0]
			if c.RestartCount != 1 || c.LastState == nil || c.LastState.Reason != tt.viewWhy || c.LastState.Message != string(tt.results[0])+" probe failed: exit status 1" {
				t.Fatalf("restarted container %+v (last state %+v); want restart 1, last state %s", c, c.LastState, tt.viewWhy)
			}
		})
	}
}

func TestStopForAProbeCountsAsAnExitWhicheverIsToldFirst(t *testing.T) {
	for _, relistFirst := range []bool{false, true} {
		t.Run(fmt.Sprint("relistFirst=", relistFirst), func(t *testing.T) {
			w := newWorld(t)
			sb, ctr := w.running(probedSpec(`,"livenessProbe":` + execProbe))
			w.probed(ctr, pb.ProbeLiveness, false, "")
			in := w.mustPlan(pb.ActionStopContainer, "a")
			iseq := w.apply(pk, in)
			exited := &pb.ContainerObserved{Uid: "u1", SandboxId: sb, Container: "a", ContainerId: ctr, State: "exited", ExitCode: 137, Reason: "Error"}
			if relistFirst {
				w.apply(pk, exited)
			}
			w.apply(pk, &pb.Outcome{IntentSeq: iseq, Ok: true})
			if !relistFirst {
				w.apply(pk, exited)
			}
			if b := w.s.Pods[pk].Backoff["a"]; b == nil || b.Exits != 1 {
				t.Fatalf("back-off %+v, want exactly one exit counted", b)
			}
		})
	}
}

func TestSuccessfulOrUnrecordedProbesDoNotStop(t *testing.T) {
	w := newWorld(t)
	_, ctr := w.running(probedSpec(`,"livenessProbe":` + execProbe + `,"readinessProbe":` + execProbe))
	w.probed(ctr, pb.ProbeReadiness, false, "not yet")
	w.probed(ctr, pb.ProbeLiveness, true, "")
	if in, _ := w.plan(); in != nil {
		t.Fatalf("planned %v: a readiness failure or a liveness success must not stop a container", in)
	}
}

func TestReadinessDrivesReady(t *testing.T) {
	ready := func(w *world) (string, bool) {
		v := w.s.ViewsAt(w.now.UnixNano())[0]
		return v.Ready, v.Containers[0].Ready
	}
	tests := []struct {
		name   string
		probes string
		steps  []func(w *world, ctr string)
		want   []string // the pod's READY after each step (the first: before any)
	}{
		{"no probes: ready while running", "", nil, []string{"1/1"}},
		{"readiness starts unready and follows its transitions", `,"readinessProbe":` + execProbe, []func(*world, string){
			func(w *world, ctr string) { w.probed(ctr, pb.ProbeReadiness, true, "") },
			func(w *world, ctr string) {
				w.probed(ctr, pb.ProbeReadiness, false, "HTTP probe failed with statuscode: 503")
			},
			func(w *world, ctr string) { w.probed(ctr, pb.ProbeReadiness, true, "") },
		}, []string{"0/1", "1/1", "0/1", "1/1"}},
		{"startup gates readiness", `,"startupProbe":` + execProbe + `,"readinessProbe":` + execProbe, []func(*world, string){
			func(w *world, ctr string) { w.probed(ctr, pb.ProbeReadiness, true, "") },
			func(w *world, ctr string) { w.probed(ctr, pb.ProbeStartup, true, "") },
		}, []string{"0/1", "0/1", "1/1"}},
		{"startup alone: ready once started", `,"startupProbe":` + execProbe, []func(*world, string){
			func(w *world, ctr string) { w.probed(ctr, pb.ProbeStartup, true, "") },
		}, []string{"0/1", "1/1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			_, ctr := w.running(probedSpec(tt.probes))
			var got []string
			pod, c := ready(w)
			got = append(got, pod)
			if (pod == "1/1") != c {
				t.Fatalf("pod READY %s but container ready=%v", pod, c)
			}
			for _, step := range tt.steps {
				step(w, ctr)
				pod, _ = ready(w)
				got = append(got, pod)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("READY %v, want %v", got, tt.want)
			}
		})
	}
}

func TestUnreadyContainerSaysWhy(t *testing.T) {
	w := newWorld(t)
	_, ctr := w.running(probedSpec(`,"readinessProbe":` + execProbe))
	w.probed(ctr, pb.ProbeReadiness, false, "HTTP probe failed with statuscode: 503")
	c := w.s.ViewsAt(w.now.UnixNano())[0].Containers[0]
	if c.State != "running" || c.Ready || c.Message != "readiness probe failed: HTTP probe failed with statuscode: 503" {
		t.Fatalf("container %+v", c)
	}
}

func TestProbeResultsBelongToOneInstance(t *testing.T) {
	w := newWorld(t)
	sb, ctr := w.running(probedSpec(`,"readinessProbe":` + execProbe))
	w.probed(ctr, pb.ProbeReadiness, true, "")
	// A result for an unknown instance changes nothing.
	w.apply(pk, &pb.ContainerProbed{Uid: "u1", Container: "a", ContainerId: "other", Probe: "readiness", Result: "failure"})
	if v := w.s.Views()[0]; v.Ready != "1/1" {
		t.Fatalf("READY %s after a result for another instance", v.Ready)
	}
	w.exit(ctr, "a", "u1", sb, 0, 1)
	w.advance(10 * time.Second)
	w.do(w.mustPlan(pb.ActionStartContainer, "a"))
	if v := w.s.ViewsAt(w.now.UnixNano())[0]; v.Ready != "0/1" {
		t.Fatalf("a new instance is READY %s before its first probe", v.Ready)
	}
}

func TestProbeResultsSurviveARelistAndAdoption(t *testing.T) {
	w := newWorld(t)
	sb, ctr := w.running(probedSpec(`,"readinessProbe":` + execProbe))
	w.probed(ctr, pb.ProbeReadiness, true, "")
	// Agent restart: the adoption relist re-records the container.
	w.apply("", &pb.AgentStarted{NodeName: "node1"})
	w.apply(pk, &pb.ContainerObserved{Uid: "u1", SandboxId: sb, Container: "a", ContainerId: ctr, State: "running", Adopted: true})
	w.apply("", &pb.RuntimeConnected{Endpoint: "unix:///x"})
	if v := w.s.Views()[0]; v.Ready != "1/1" {
		t.Fatalf("READY %s after an agent restart; the recorded result must stand", v.Ready)
	}
}

// TestOneDeadInstanceIsKeptForTheLastState: the previous instance of a
// restarted container stays (its last state and logs --previous) until a
// newer instance has exited too, as with the kubelet's garbage collector.
func TestOneDeadInstanceIsKeptForTheLastState(t *testing.T) {
	w := newWorld(t)
	sb, first := w.running(probedSpec(""))
	w.exit(first, "a", "u1", sb, 0, 1)
	w.advance(10 * time.Second)
	second := w.do(w.mustPlan(pb.ActionStartContainer, "a")).ContainerId
	if in, _ := w.plan(); in != nil {
		t.Fatalf("planned %v while the new instance runs; the dead one must stay", in)
	}
	if ls := w.s.ViewsAt(w.now.UnixNano())[0].Containers[0].LastState; ls == nil || ls.ContainerID != first {
		t.Fatalf("last state %+v, want the first instance", ls)
	}
	w.exit(second, "a", "u1", sb, 1, 1)
	in := w.mustPlan(pb.ActionRemoveContainer, "a")
	if in.ContainerId != first {
		t.Fatalf("removes %s, want the older dead instance %s", in.ContainerId, first)
	}
}
