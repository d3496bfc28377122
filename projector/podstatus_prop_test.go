package projector_test

import (
	"encoding/json"
	"sort"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"pgregory.net/rapid"

	"github.com/ledgerlet/ledgerlet/projector"
	"github.com/ledgerlet/ledgerlet/projector/projectortest"
)

// TestAPIStatusDeterministicOnHistories: for every pod of a generated node
// history, the status is the same however often it is rendered and after
// the state went through a snapshot (other map layout, other pointers).
func TestAPIStatusDeterministicOnHistories(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		seed := rapid.Uint64().Draw(rt, "seed")
		n := rapid.IntRange(1, 1500).Draw(rt, "n")
		npods := rapid.IntRange(1, 12).Draw(rt, "npods")
		s := projector.New()
		for _, e := range projectortest.New(seed, npods).Events(n) {
			s.Apply(e)
		}
		b, err := s.Canonical()
		if err != nil {
			rt.Fatal(err)
		}
		copied, err := projector.Restore(b)
		if err != nil {
			rt.Fatal(err)
		}
		keys := make([]string, 0, len(s.Pods))
		for k := range s.Pods {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			checkDeterministic(rt, s.Pods[k], copied.Pods[k], "192.0.2.10")
		}
	})
}

// TestAPIStatusArbitraryPods: any pod state — inconsistent, half-empty,
// with times and states no runtime reports — renders without panicking,
// deterministically.
func TestAPIStatusArbitraryPods(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		// Restored, as the projection holds pods: with the spec decoded.
		q := restored(rt, drawPod(rt))
		nodeIP := rapid.SampledFrom([]string{"", "192.0.2.10", "2001:db8::1", "fe80::1%eth0", "bogus"}).Draw(rt, "nodeIP")
		checkDeterministic(rt, q, restored(rt, q), nodeIP)
		st := q.APIStatus(nodeIP)
		if spec := q.DecodeSpec(); spec != nil {
			if len(st.ContainerStatuses) != len(spec.Spec.Containers) || len(st.InitContainerStatuses) != len(spec.Spec.InitContainers) {
				rt.Fatalf("%d/%d statuses for %d/%d containers", len(st.ContainerStatuses), len(st.InitContainerStatuses),
					len(spec.Spec.Containers), len(spec.Spec.InitContainers))
			}
		}
		if (st.PodIP == "") != (len(st.PodIPs) == 0) || (st.HostIP == "") != (len(st.HostIPs) == 0) {
			rt.Fatalf("podIP/podIPs or hostIP/hostIPs disagree: %s", js(st))
		}
		for _, cs := range append(st.ContainerStatuses, st.InitContainerStatuses...) {
			if cs.RestartCount < 0 || cs.Started == nil {
				rt.Fatalf("container status %s", js(cs))
			}
			n := 0
			for _, set := range []bool{cs.State.Waiting != nil, cs.State.Running != nil, cs.State.Terminated != nil} {
				if set {
					n++
				}
			}
			if n != 1 {
				rt.Fatalf("container %s has %d states", cs.Name, n)
			}
		}
	})
}

type rapidT interface {
	Helper()
	Fatalf(format string, args ...any)
}

func checkDeterministic(t rapidT, p, q *projector.Pod, nodeIP string) {
	t.Helper()
	a, b, c := p.APIStatus(nodeIP), p.APIStatus(nodeIP), q.APIStatus(nodeIP)
	ja, jb, jc := js(a), js(b), js(c)
	if ja != jb || ja != jc {
		t.Fatalf("status of %s differs between renderings:\n%s\n%s\n%s", p.Key(), ja, jb, jc)
	}
	if ha, hc := projector.StatusHash(a), projector.StatusHash(c); ha != hc {
		t.Fatalf("hash of %s differs: %s vs %s", p.Key(), ha, hc)
	}
}

var (
	drawName   = rapid.SampledFrom([]string{"a", "b", "c", "init"})
	drawState  = rapid.SampledFrom([]string{"created", "running", "exited", "unknown", "", "weird"})
	drawSbSt   = rapid.SampledFrom([]string{"ready", "notready", ""})
	drawTime   = rapid.OneOf(rapid.Just(int64(0)), rapid.Int64Range(-1e18, 4e18), rapid.Int64Range(1.7e18, 1.8e18))
	drawPolicy = rapid.SampledFrom([]corev1.RestartPolicy{"", corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever})
)

func drawContainerSpec(rt *rapid.T, label string, init bool) corev1.Container {
	c := corev1.Container{Name: drawName.Draw(rt, label+"name"), Image: "img"}
	if init && rapid.Bool().Draw(rt, label+"sidecar") {
		c.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
	}
	if rapid.Bool().Draw(rt, label+"res") {
		q := resource.MustParse(rapid.SampledFrom([]string{"0", "100m", "1", "64Mi"}).Draw(rt, label+"q"))
		c.Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: q}
		if rapid.Bool().Draw(rt, label+"req") {
			c.Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: q}
		}
	}
	return c
}

func drawPod(rt *rapid.T) *projector.Pod {
	p := &projector.Pod{Namespace: "ns", Name: "p", UID: rapid.SampledFrom([]string{"", "u1", "u2"}).Draw(rt, "uid"),
		FirstSeen: drawTime.Draw(rt, "firstSeen"), UpdatedAt: drawTime.Draw(rt, "updatedAt"),
		Removed: rapid.Bool().Draw(rt, "removed")}
	switch rapid.IntRange(0, 3).Draw(rt, "specKind") {
	case 0: // no spec
	case 1:
		p.Spec = json.RawMessage(`{"spec":{"containers":"not a list"}}`)
	default:
		spec := corev1.PodSpec{RestartPolicy: drawPolicy.Draw(rt, "policy"), HostNetwork: rapid.Bool().Draw(rt, "hostNetwork")}
		for i := range rapid.IntRange(0, 3).Draw(rt, "inits") {
			spec.InitContainers = append(spec.InitContainers, drawContainerSpec(rt, "i"+string(rune('0'+i)), true))
		}
		for i := range rapid.IntRange(0, 3).Draw(rt, "apps") {
			spec.Containers = append(spec.Containers, drawContainerSpec(rt, "c"+string(rune('0'+i)), false))
		}
		if rapid.Bool().Draw(rt, "gates") {
			spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: "example.com/ready"}}
		}
		b, err := json.Marshal(corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Spec: spec})
		if err != nil {
			rt.Fatal(err)
		}
		p.Spec = b
	}
	uids := rapid.SampledFrom([]string{"", "u1", "u2"})
	for i := range rapid.IntRange(0, 3).Draw(rt, "sandboxes") {
		id := "sb" + string(rune('0'+i))
		if p.Sandboxes == nil {
			p.Sandboxes = map[string]*projector.Sandbox{}
		}
		p.Sandboxes[id] = &projector.Sandbox{ID: id, UID: uids.Draw(rt, "sbuid"), State: drawSbSt.Draw(rt, "sbstate"),
			IP:        rapid.SampledFrom([]string{"", "10.0.0.1", "10.0.0.2", "fd00::1", "junk"}).Draw(rt, "ip"),
			CreatedAt: drawTime.Draw(rt, "created"), Stale: rapid.Bool().Draw(rt, "sbstale")}
	}
	for i := range rapid.IntRange(0, 6).Draw(rt, "containers") {
		id := "c" + string(rune('0'+i))
		if p.Containers == nil {
			p.Containers = map[string]*projector.Container{}
		}
		p.Containers[id] = &projector.Container{ID: id, UID: uids.Draw(rt, "cuid"), Name: drawName.Draw(rt, "cname"),
			Attempt: rapid.Uint32().Draw(rt, "attempt"), State: drawState.Draw(rt, "state"),
			ExitCode: rapid.Int32().Draw(rt, "exit"), Reason: rapid.SampledFrom([]string{"", "Error", "OOMKilled"}).Draw(rt, "reason"),
			StartedAt: drawTime.Draw(rt, "started"), FinishedAt: drawTime.Draw(rt, "finished"),
			Init: rapid.Bool().Draw(rt, "init"), Stale: rapid.Bool().Draw(rt, "stale")}
	}
	if rapid.Bool().Draw(rt, "backoff") {
		p.Backoff = map[string]*projector.Backoff{drawName.Draw(rt, "bname"): {Delay: rapid.Int64().Draw(rt, "delay"), Exits: 2}}
	}
	if rapid.Bool().Draw(rt, "failure") {
		p.Failures = map[string]*projector.Failure{drawName.Draw(rt, "fname"): {
			Reason: rapid.SampledFrom([]string{"", "ErrImagePull", "ErrImageNeverPull", "CreateContainerError"}).Draw(rt, "freason"),
			Count:  rapid.IntRange(0, 5).Draw(rt, "count")}}
	}
	return p
}
