package projector_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

// sidecarSpec builds a pod whose init containers are given as "name" (a
// regular one) or "name:sidecar" (restartPolicy Always), optionally
// "+startup" (with a startup probe), and one app container "a".
func sidecarSpec(policy string, inits ...string) []byte {
	var is []string
	for _, n := range inits {
		name, kind, _ := strings.Cut(n, ":")
		c := fmt.Sprintf(`{"name":%q,"image":"localhost/busybox:1.36"`, name)
		if strings.HasPrefix(kind, "sidecar") {
			c += `,"restartPolicy":"Always"`
		}
		if strings.HasSuffix(kind, "+startup") {
			c += `,"startupProbe":` + execProbe
		}
		is = append(is, c+"}")
	}
	return []byte(fmt.Sprintf(`{"metadata":{"name":"web-node1","namespace":"default"},"spec":{"initContainers":[%s],"containers":[{"name":"a","image":"localhost/busybox:1.36"}],"restartPolicy":%q,"terminationGracePeriodSeconds":5}}`,
		strings.Join(is, ","), policy))
}

// started records a startup success for an instance.
func (w *world) started(ctr, name string) {
	w.apply(pk, &pb.ContainerProbed{Uid: "u1", Container: name, ContainerId: ctr, Probe: "startup", Result: "success", Consecutive: 1})
}

func TestSidecarStartsAndTheNextInitContainerFollowsWithoutWaitingForItToExit(t *testing.T) {
	w := newWorld(t)
	w.ready()
	w.desire("u1", sidecarSpec("Always", "s:sidecar", "i1"))
	sb := w.do(w.mustPlan(pb.ActionRunSandbox, "")).SandboxId
	w.do(w.mustPlan(pb.ActionStartContainer, "s"))
	i1 := w.do(w.mustPlan(pb.ActionStartContainer, "i1")).ContainerId
	if in, _ := w.plan(); in != nil {
		t.Fatalf("planned %v while the regular init container runs", in)
	}
	w.exit(i1, "i1", "u1", sb, 0, 0)
	w.mustPlan(pb.ActionStartContainer, "a")
}

func TestSidecarStartupProbeHoldsTheNextInitContainer(t *testing.T) {
	w := newWorld(t)
	w.ready()
	w.desire("u1", sidecarSpec("Always", "s:sidecar+startup", "i1"))
	w.do(w.mustPlan(pb.ActionRunSandbox, ""))
	s := w.do(w.mustPlan(pb.ActionStartContainer, "s")).ContainerId
	if in, _ := w.plan(); in != nil {
		t.Fatalf("planned %v before the sidecar's startup probe passed", in)
	}
	w.started(s, "s")
	w.mustPlan(pb.ActionStartContainer, "i1")
}

func TestSidecarIsRestartedWithBackoffEvenUnderRestartPolicyNever(t *testing.T) {
	w := newWorld(t)
	w.ready()
	w.desire("u1", sidecarSpec("Never", "s:sidecar"))
	sb := w.do(w.mustPlan(pb.ActionRunSandbox, "")).SandboxId
	s := w.do(w.mustPlan(pb.ActionStartContainer, "s")).ContainerId
	w.do(w.mustPlan(pb.ActionStartContainer, "a"))
	w.exit(s, "s", "u1", sb, 0, 1)
	if in, wake := w.plan(); in != nil || wake != w.now.Add(10*time.Second).UnixNano() {
		t.Fatalf("planned %v, wake %d: want the sidecar's restart after the back-off", in, wake)
	}
	w.advance(10 * time.Second)
	if in := w.mustPlan(pb.ActionStartContainer, "s"); in.Attempt != 1 {
		t.Fatalf("sidecar restart attempt %d, want 1", in.Attempt)
	}
}

func TestSidecarInBackoffDoesNotHoldTheAppContainersBack(t *testing.T) {
	w := newWorld(t)
	w.ready()
	w.desire("u1", sidecarSpec("Always", "s:sidecar"))
	sb := w.do(w.mustPlan(pb.ActionRunSandbox, "")).SandboxId
	s := w.do(w.mustPlan(pb.ActionStartContainer, "s")).ContainerId
	a := w.do(w.mustPlan(pb.ActionStartContainer, "a")).ContainerId
	w.exit(s, "s", "u1", sb, 0, 1)
	w.advance(time.Second)
	w.exit(a, "a", "u1", sb, 0, 1)
	w.advance(10 * time.Second) // the app's back-off is over; the sidecar's is too, just before
	got := w.settle()
	if strings.Join(got, " ") != "StartContainer/u1 StartContainer/u1" {
		t.Fatalf("planned %v, want both restarted", got)
	}
}

func TestSidecarsStopAfterTheAppContainersCompleteLastStartedFirst(t *testing.T) {
	w := newWorld(t)
	w.ready()
	w.desire("u1", sidecarSpec("Never", "s1:sidecar", "s2:sidecar"))
	sb := w.do(w.mustPlan(pb.ActionRunSandbox, "")).SandboxId
	w.do(w.mustPlan(pb.ActionStartContainer, "s1"))
	w.advance(time.Second)
	w.do(w.mustPlan(pb.ActionStartContainer, "s2"))
	a := w.do(w.mustPlan(pb.ActionStartContainer, "a")).ContainerId
	if v := w.s.Views()[0]; v.Ready != "3/3" {
		t.Fatalf("READY %s, want 3/3 (sidecars count)", v.Ready)
	}
	w.exit(a, "a", "u1", sb, 0, 0)
	w.do(w.mustPlan(pb.ActionStopContainer, "s2"))
	w.do(w.mustPlan(pb.ActionStopContainer, "s1"))
	if in, _ := w.plan(); in != nil {
		t.Fatalf("planned %v after the pod completed", in)
	}
	if v := w.s.Views()[0]; v.Phase != "Succeeded" {
		t.Fatalf("phase %s, want Succeeded", v.Phase)
	}
}

func TestRemovalStopsAppContainersBeforeSidecars(t *testing.T) {
	w := newWorld(t)
	w.ready()
	w.desire("u1", sidecarSpec("Always", "s1:sidecar", "s2:sidecar"))
	w.do(w.mustPlan(pb.ActionRunSandbox, ""))
	w.do(w.mustPlan(pb.ActionStartContainer, "s1"))
	w.advance(time.Second)
	w.do(w.mustPlan(pb.ActionStartContainer, "s2"))
	w.advance(time.Second)
	w.do(w.mustPlan(pb.ActionStartContainer, "a"))
	w.apply(pk, &pb.ManifestRemoved{Source: "file", Path: "/m/web.yaml", Uid: "u1"})
	var order []string
	for i := 0; i < 3; i++ {
		in := w.mustPlan(pb.ActionStopContainer, []string{"a", "s2", "s1"}[i])
		order = append(order, in.Container)
		w.do(in)
	}
	if strings.Join(order, " ") != "a s2 s1" {
		t.Fatalf("stop order %v", order)
	}
}
