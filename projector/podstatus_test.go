package projector_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/ledgerlet/ledgerlet/projector"
)

// base is a recorded time with a sub-second part, so tests see truncation.
var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Add(400 * time.Millisecond).UnixNano()

func at(sec int) int64 { return base + int64(sec)*int64(time.Second) }

func apiAt(sec int) metav1.Time {
	return metav1.NewTime(time.Unix(0, at(sec)).Truncate(time.Second).UTC())
}

// statusPod is a pod of the current UID "u1" with spec, restored from its
// canonical encoding so the spec is decoded as the projection does it.
func statusPod(t testing.TB, spec corev1.PodSpec, edit func(p *projector.Pod)) *projector.Pod {
	t.Helper()
	pod := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-node1", Namespace: "default", UID: "u1"},
		Spec:       spec,
	}
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	p := &projector.Pod{
		Namespace: "default", Name: "web-node1", UID: "u1", ConfigHash: "u1", Spec: raw,
		FirstSeen: at(0), UpdatedAt: at(0),
		Sandboxes:  map[string]*projector.Sandbox{},
		Containers: map[string]*projector.Container{},
	}
	if edit != nil {
		edit(p)
	}
	return restored(t, p)
}

// fataler is what the helpers need of *testing.T and *rapid.T.
type fataler interface {
	Helper()
	Fatal(args ...any)
}

func restored(t fataler, p *projector.Pod) *projector.Pod {
	t.Helper()
	s := projector.New()
	s.Pods[p.Key()] = p
	b, err := s.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	s2, err := projector.Restore(b)
	if err != nil {
		t.Fatal(err)
	}
	return s2.Pods[p.Key()]
}

func sandbox(p *projector.Pod, id, state, ip string, created int) {
	p.Sandboxes[id] = &projector.Sandbox{ID: id, UID: p.UID, State: state, IP: ip, CreatedAt: at(created)}
}

func running(p *projector.Pod, id, name string, attempt uint32, started int) *projector.Container {
	c := &projector.Container{ID: id, UID: p.UID, SandboxID: "sb1", Name: name, Attempt: attempt, State: "running", StartedAt: at(started)}
	p.Containers[id] = c
	return c
}

func exited(p *projector.Pod, id, name string, attempt uint32, code int32, started, finished int) *projector.Container {
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	c := &projector.Container{ID: id, UID: p.UID, SandboxID: "sb1", Name: name, Attempt: attempt, State: "exited",
		ExitCode: code, Reason: reason, StartedAt: at(started), FinishedAt: at(finished)}
	p.Containers[id] = c
	return c
}

func oneContainer(policy corev1.RestartPolicy) corev1.PodSpec {
	return corev1.PodSpec{RestartPolicy: policy, Containers: []corev1.Container{{Name: "app", Image: "busybox:1.36"}}}
}

type condWant struct {
	status corev1.ConditionStatus
	reason string
	at     int
}

func checkConditions(t *testing.T, got []corev1.PodCondition, want map[corev1.PodConditionType]condWant) {
	t.Helper()
	order := []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.PodReady, corev1.ContainersReady, corev1.PodScheduled}
	if len(got) != len(order) {
		t.Fatalf("conditions: got %d, want %d: %+v", len(got), len(order), got)
	}
	for i, c := range got {
		if c.Type != order[i] {
			t.Errorf("condition %d is %s, want %s (the kubelet's order)", i, c.Type, order[i])
		}
		w, ok := want[c.Type]
		if !ok {
			continue
		}
		if c.Status != w.status || c.Reason != w.reason || !c.LastTransitionTime.Equal(ptr.To(apiAt(w.at))) {
			t.Errorf("condition %s = %s/%q at %v, want %s/%q at %v", c.Type, c.Status, c.Reason, c.LastTransitionTime.Time, w.status, w.reason, apiAt(w.at).Time)
		}
	}
}

func TestAPIStatus(t *testing.T) {
	tests := []struct {
		name   string
		spec   corev1.PodSpec
		edit   func(p *projector.Pod)
		nodeIP string
		check  func(t *testing.T, st corev1.PodStatus)
	}{
		{
			name:   "running",
			spec:   oneContainer(corev1.RestartPolicyAlways),
			nodeIP: "192.0.2.10",
			edit: func(p *projector.Pod) {
				sandbox(p, "sb1", "ready", "10.88.77.5", 1)
				running(p, "c1", "app", 0, 3)
			},
			check: func(t *testing.T, st corev1.PodStatus) {
				if st.Phase != corev1.PodRunning {
					t.Errorf("phase %s", st.Phase)
				}
				if st.PodIP != "10.88.77.5" || len(st.PodIPs) != 1 || st.PodIPs[0].IP != "10.88.77.5" {
					t.Errorf("podIP %q %v", st.PodIP, st.PodIPs)
				}
				if st.HostIP != "192.0.2.10" || len(st.HostIPs) != 1 || st.HostIPs[0].IP != "192.0.2.10" {
					t.Errorf("hostIP %q %v", st.HostIP, st.HostIPs)
				}
				if st.StartTime == nil || !st.StartTime.Equal(ptr.To(apiAt(0))) {
					t.Errorf("startTime %v, want %v (FirstSeen, whole seconds)", st.StartTime, apiAt(0))
				}
				if st.QOSClass != corev1.PodQOSBestEffort {
					t.Errorf("qos %s", st.QOSClass)
				}
				cs := st.ContainerStatuses[0]
				want := corev1.ContainerStatus{
					Name: "app", Image: "busybox:1.36", ContainerID: "containerd://c1", Ready: true, Started: ptr.To(true),
					State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: apiAt(3)}},
				}
				if !equalJSON(cs, want) {
					t.Errorf("container status\n got %s\nwant %s", js(cs), js(want))
				}
				checkConditions(t, st.Conditions, map[corev1.PodConditionType]condWant{
					corev1.PodReadyToStartContainers: {corev1.ConditionTrue, "", 1},
					corev1.PodInitialized:            {corev1.ConditionTrue, "", 0},
					corev1.PodReady:                  {corev1.ConditionTrue, "", 3},
					corev1.ContainersReady:           {corev1.ConditionTrue, "", 3},
					corev1.PodScheduled:              {corev1.ConditionTrue, "", 0},
				})
			},
		},
		{
			name:   "host network takes the node address",
			spec:   func() corev1.PodSpec { s := oneContainer(corev1.RestartPolicyAlways); s.HostNetwork = true; return s }(),
			nodeIP: "192.0.2.10",
			edit:   func(p *projector.Pod) { sandbox(p, "sb1", "ready", "", 1); running(p, "c1", "app", 0, 2) },
			check: func(t *testing.T, st corev1.PodStatus) {
				if st.PodIP != "192.0.2.10" || st.PodIPs[0].IP != "192.0.2.10" {
					t.Errorf("podIP %q", st.PodIP)
				}
			},
		},
		{
			name:   "no node address, no sandbox yet",
			spec:   oneContainer(corev1.RestartPolicyAlways),
			nodeIP: "not-an-ip",
			check: func(t *testing.T, st corev1.PodStatus) {
				if st.HostIP != "" || st.HostIPs != nil || st.PodIP != "" || st.PodIPs != nil {
					t.Errorf("addresses: host %q %v pod %q %v", st.HostIP, st.HostIPs, st.PodIP, st.PodIPs)
				}
				if st.Phase != corev1.PodPending {
					t.Errorf("phase %s", st.Phase)
				}
				cs := st.ContainerStatuses[0]
				if cs.State.Waiting == nil || cs.State.Waiting.Reason != "ContainerCreating" || cs.Ready || *cs.Started || cs.ContainerID != "" {
					t.Errorf("container %s", js(cs))
				}
				checkConditions(t, st.Conditions, map[corev1.PodConditionType]condWant{
					corev1.PodReadyToStartContainers: {corev1.ConditionFalse, "PodSandboxNotReady", 0},
					corev1.PodReady:                  {corev1.ConditionFalse, "ContainersNotReady", 0},
				})
			},
		},
		{
			name: "crash loop",
			spec: oneContainer(corev1.RestartPolicyAlways),
			edit: func(p *projector.Pod) {
				sandbox(p, "sb1", "ready", "10.88.77.5", 1)
				exited(p, "c1", "app", 1, 2, 3, 4)
				exited(p, "c2", "app", 2, 1, 20, 25)
				p.Backoff = map[string]*projector.Backoff{"app": {Delay: int64(20 * time.Second), NextStart: at(45), Exits: 2}}
			},
			check: func(t *testing.T, st corev1.PodStatus) {
				if st.Phase != corev1.PodRunning {
					t.Errorf("phase %s, want Running (restarting)", st.Phase)
				}
				cs := st.ContainerStatuses[0]
				want := corev1.ContainerStatus{
					Name: "app", Image: "busybox:1.36", ContainerID: "containerd://c2", RestartCount: 2, Started: ptr.To(false),
					State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
						Message: "back-off 20s restarting failed container=app pod=web-node1_default(u1)"}},
					LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
						ExitCode: 1, Reason: "Error", StartedAt: apiAt(20), FinishedAt: apiAt(25), ContainerID: "containerd://c2"}},
				}
				if !equalJSON(cs, want) {
					t.Errorf("container status\n got %s\nwant %s", js(cs), js(want))
				}
				checkConditions(t, st.Conditions, map[corev1.PodConditionType]condWant{
					corev1.PodReady:        {corev1.ConditionFalse, "ContainersNotReady", 25},
					corev1.ContainersReady: {corev1.ConditionFalse, "ContainersNotReady", 25},
				})
			},
		},
		{
			name: "restarted after a crash shows the last state",
			spec: oneContainer(corev1.RestartPolicyAlways),
			edit: func(p *projector.Pod) {
				sandbox(p, "sb1", "ready", "10.88.77.5", 1)
				exited(p, "c1", "app", 0, 137, 2, 4)
				running(p, "c2", "app", 1, 15)
			},
			check: func(t *testing.T, st corev1.PodStatus) {
				cs := st.ContainerStatuses[0]
				if cs.State.Running == nil || cs.RestartCount != 1 || cs.LastTerminationState.Terminated == nil ||
					cs.LastTerminationState.Terminated.ExitCode != 137 || cs.LastTerminationState.Terminated.ContainerID != "containerd://c1" {
					t.Errorf("container %s", js(cs))
				}
			},
		},
		{
			name: "OnFailure, exited 0: succeeded",
			spec: oneContainer(corev1.RestartPolicyOnFailure),
			edit: func(p *projector.Pod) {
				sandbox(p, "sb1", "ready", "10.88.77.5", 1)
				exited(p, "c1", "app", 0, 0, 2, 9)
			},
			check: func(t *testing.T, st corev1.PodStatus) {
				if st.Phase != corev1.PodSucceeded {
					t.Errorf("phase %s", st.Phase)
				}
				cs := st.ContainerStatuses[0]
				if cs.State.Terminated == nil || cs.State.Terminated.Reason != "Completed" || cs.Ready {
					t.Errorf("container %s", js(cs))
				}
				checkConditions(t, st.Conditions, map[corev1.PodConditionType]condWant{
					corev1.PodInitialized:  {corev1.ConditionTrue, "PodCompleted", 0},
					corev1.PodReady:        {corev1.ConditionFalse, "PodCompleted", 9},
					corev1.ContainersReady: {corev1.ConditionFalse, "PodCompleted", 9},
				})
			},
		},
		{
			name: "OnFailure, exited 1: restarting",
			spec: oneContainer(corev1.RestartPolicyOnFailure),
			edit: func(p *projector.Pod) {
				sandbox(p, "sb1", "ready", "10.88.77.5", 1)
				exited(p, "c1", "app", 0, 1, 2, 9)
			},
			check: func(t *testing.T, st corev1.PodStatus) {
				if st.Phase != corev1.PodRunning || st.ContainerStatuses[0].State.Waiting == nil {
					t.Errorf("phase %s container %s", st.Phase, js(st.ContainerStatuses[0]))
				}
			},
		},
		{
			name: "Never, exited 1: failed",
			spec: oneContainer(corev1.RestartPolicyNever),
			edit: func(p *projector.Pod) {
				sandbox(p, "sb1", "ready", "10.88.77.5", 1)
				exited(p, "c1", "app", 0, 1, 2, 9)
			},
			check: func(t *testing.T, st corev1.PodStatus) {
				if st.Phase != corev1.PodFailed {
					t.Errorf("phase %s", st.Phase)
				}
				if term := st.ContainerStatuses[0].State.Terminated; term == nil || term.ExitCode != 1 || term.Reason != "Error" {
					t.Errorf("container %s", js(st.ContainerStatuses[0]))
				}
				checkConditions(t, st.Conditions, map[corev1.PodConditionType]condWant{
					corev1.PodReady: {corev1.ConditionFalse, "PodFailed", 9},
				})
			},
		},
		{
			name: "removed pod: an exit is final",
			spec: oneContainer(corev1.RestartPolicyAlways),
			edit: func(p *projector.Pod) {
				p.Removed = true
				sandbox(p, "sb1", "ready", "10.88.77.5", 1)
				exited(p, "c1", "app", 0, 143, 2, 9)
			},
			check: func(t *testing.T, st corev1.PodStatus) {
				if st.ContainerStatuses[0].State.Terminated == nil {
					t.Errorf("container %s", js(st.ContainerStatuses[0]))
				}
			},
		},
		{
			name: "image pull failed once",
			spec: oneContainer(corev1.RestartPolicyAlways),
			edit: func(p *projector.Pod) {
				sandbox(p, "sb1", "ready", "10.88.77.5", 1)
				p.Failures = map[string]*projector.Failure{"app": {Reason: "ErrImagePull", Message: "not found", Count: 1, At: at(2), NextTry: at(12)}}
			},
			check: func(t *testing.T, st corev1.PodStatus) {
				w := st.ContainerStatuses[0].State.Waiting
				if w == nil || w.Reason != "ErrImagePull" || w.Message != "not found" || st.Phase != corev1.PodPending {
					t.Errorf("phase %s container %s", st.Phase, js(st.ContainerStatuses[0]))
				}
			},
		},
		{
			name: "image pull failing again: back-off",
			spec: oneContainer(corev1.RestartPolicyAlways),
			edit: func(p *projector.Pod) {
				sandbox(p, "sb1", "ready", "10.88.77.5", 1)
				p.Failures = map[string]*projector.Failure{"app": {Reason: "ErrImagePull", Message: "not found", Count: 3, At: at(2), NextTry: at(42)}}
			},
			check: func(t *testing.T, st corev1.PodStatus) {
				w := st.ContainerStatuses[0].State.Waiting
				if w == nil || w.Reason != "ImagePullBackOff" || w.Message != `Back-off pulling image "busybox:1.36": ErrImagePull: not found` {
					t.Errorf("container %s", js(st.ContainerStatuses[0]))
				}
			},
		},
		{
			name: "init container running",
			spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyAlways,
				InitContainers: []corev1.Container{{Name: "setup", Image: "busybox:1.36"}},
				Containers:     []corev1.Container{{Name: "app", Image: "busybox:1.36"}}},
			edit: func(p *projector.Pod) {
				sandbox(p, "sb1", "ready", "10.88.77.5", 1)
				c := running(p, "i1", "setup", 0, 2)
				c.Init = true
			},
			check: func(t *testing.T, st corev1.PodStatus) {
				if st.Phase != corev1.PodPending {
					t.Errorf("phase %s", st.Phase)
				}
				if w := st.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != "PodInitializing" {
					t.Errorf("app %s", js(st.ContainerStatuses[0]))
				}
				if ic := st.InitContainerStatuses[0]; ic.State.Running == nil || ic.Ready {
					t.Errorf("init %s", js(ic))
				}
				checkConditions(t, st.Conditions, map[corev1.PodConditionType]condWant{
					corev1.PodInitialized: {corev1.ConditionFalse, "ContainersNotInitialized", 0},
				})
				if m := st.Conditions[1].Message; m != "containers with incomplete status: [setup]" {
					t.Errorf("initialized message %q", m)
				}
			},
		},
		{
			name: "init container done, app running",
			spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyAlways,
				InitContainers: []corev1.Container{{Name: "setup", Image: "busybox:1.36"}},
				Containers:     []corev1.Container{{Name: "app", Image: "busybox:1.36"}}},
			edit: func(p *projector.Pod) {
				sandbox(p, "sb1", "ready", "10.88.77.5", 1)
				exited(p, "i1", "setup", 0, 0, 2, 5).Init = true
				running(p, "c1", "app", 0, 6)
			},
			check: func(t *testing.T, st corev1.PodStatus) {
				if st.Phase != corev1.PodRunning {
					t.Errorf("phase %s", st.Phase)
				}
				if ic := st.InitContainerStatuses[0]; ic.State.Terminated == nil || ic.State.Terminated.Reason != "Completed" || !ic.Ready || *ic.Started {
					t.Errorf("init %s", js(ic))
				}
				checkConditions(t, st.Conditions, map[corev1.PodConditionType]condWant{
					corev1.PodInitialized: {corev1.ConditionTrue, "", 5},
					corev1.PodReady:       {corev1.ConditionTrue, "", 6},
				})
			},
		},
		{
			name: "init container failed under Never: failed",
			spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
				InitContainers: []corev1.Container{{Name: "setup", Image: "busybox:1.36"}},
				Containers:     []corev1.Container{{Name: "app", Image: "busybox:1.36"}}},
			edit: func(p *projector.Pod) {
				sandbox(p, "sb1", "ready", "10.88.77.5", 1)
				exited(p, "i1", "setup", 0, 2, 2, 5).Init = true
			},
			check: func(t *testing.T, st corev1.PodStatus) {
				if st.Phase != corev1.PodFailed {
					t.Errorf("phase %s", st.Phase)
				}
			},
		},
		{
			name: "init container crash-looping",
			spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyAlways,
				InitContainers: []corev1.Container{{Name: "setup", Image: "busybox:1.36"}},
				Containers:     []corev1.Container{{Name: "app", Image: "busybox:1.36"}}},
			edit: func(p *projector.Pod) {
				sandbox(p, "sb1", "ready", "10.88.77.5", 1)
				exited(p, "i1", "setup", 0, 2, 2, 5).Init = true
			},
			check: func(t *testing.T, st corev1.PodStatus) {
				if st.Phase != corev1.PodPending {
					t.Errorf("phase %s", st.Phase)
				}
				if w := st.InitContainerStatuses[0].State.Waiting; w == nil || w.Reason != "CrashLoopBackOff" {
					t.Errorf("init %s", js(st.InitContainerStatuses[0]))
				}
			},
		},
		{
			name: "app containers sorted by name, a stale sandbox's address is not the pod's",
			spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyAlways, Containers: []corev1.Container{{Name: "zeta"}, {Name: "alpha"}}},
			edit: func(p *projector.Pod) {
				sandbox(p, "sb1", "ready", "10.88.77.5", 1)
				p.Sandboxes["sb0"] = &projector.Sandbox{ID: "sb0", UID: "old", State: "ready", IP: "10.88.77.9", CreatedAt: at(5)}
				running(p, "c1", "zeta", 0, 2)
			},
			check: func(t *testing.T, st corev1.PodStatus) {
				if st.ContainerStatuses[0].Name != "alpha" || st.ContainerStatuses[1].Name != "zeta" {
					t.Errorf("order %s, %s", st.ContainerStatuses[0].Name, st.ContainerStatuses[1].Name)
				}
				if st.PodIP != "10.88.77.5" {
					t.Errorf("podIP %s", st.PodIP)
				}
				if m := st.Conditions[2].Message; m != "containers with unready status: [alpha]" {
					t.Errorf("ready message %q", m)
				}
			},
		},
		{
			name: "sidecar",
			spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
				InitContainers: []corev1.Container{{Name: "proxy", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)}},
				Containers:     []corev1.Container{{Name: "app"}}},
			edit: func(p *projector.Pod) {
				sandbox(p, "sb1", "ready", "10.88.77.5", 1)
				running(p, "s1", "proxy", 0, 2).Init = true
				running(p, "c1", "app", 0, 3)
			},
			check: func(t *testing.T, st corev1.PodStatus) {
				if st.Phase != corev1.PodRunning {
					t.Errorf("phase %s", st.Phase)
				}
				if ic := st.InitContainerStatuses[0]; !ic.Ready || !*ic.Started {
					t.Errorf("sidecar %s", js(ic))
				}
				checkConditions(t, st.Conditions, map[corev1.PodConditionType]condWant{
					corev1.PodInitialized: {corev1.ConditionTrue, "", 2},
					corev1.PodReady:       {corev1.ConditionTrue, "", 3},
				})
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := statusPod(t, tt.spec, tt.edit)
			st := p.APIStatus(tt.nodeIP)
			tt.check(t, st)
			if again := p.APIStatus(tt.nodeIP); projector.StatusHash(again) != projector.StatusHash(st) {
				t.Errorf("hash differs between two renderings of one state")
			}
		})
	}
}

func TestQOSClass(t *testing.T) {
	res := func(req, lim string) corev1.ResourceRequirements {
		r := corev1.ResourceRequirements{}
		parse := func(s string) corev1.ResourceList {
			if s == "" {
				return nil
			}
			var cpu, mem string
			if _, err := fmt.Sscanf(s, "%s %s", &cpu, &mem); err != nil {
				t.Fatal(err)
			}
			l := corev1.ResourceList{}
			if cpu != "-" {
				l[corev1.ResourceCPU] = resource.MustParse(cpu)
			}
			if mem != "-" {
				l[corev1.ResourceMemory] = resource.MustParse(mem)
			}
			return l
		}
		r.Requests, r.Limits = parse(req), parse(lim)
		return r
	}
	tests := []struct {
		name       string
		containers []corev1.ResourceRequirements
		pod        *corev1.ResourceRequirements
		want       corev1.PodQOSClass
	}{
		{"nothing", []corev1.ResourceRequirements{{}}, nil, corev1.PodQOSBestEffort},
		{"requests only", []corev1.ResourceRequirements{res("100m 64Mi", "")}, nil, corev1.PodQOSBurstable},
		{"equal", []corev1.ResourceRequirements{res("100m 64Mi", "100m 64Mi")}, nil, corev1.PodQOSGuaranteed},
		{"equal, spelled differently", []corev1.ResourceRequirements{res("0.1 64Mi", "100m 67108864")}, nil, corev1.PodQOSGuaranteed},
		{"limits only (requests default to them)", []corev1.ResourceRequirements{res("", "100m 64Mi")}, nil, corev1.PodQOSGuaranteed},
		{"cpu only", []corev1.ResourceRequirements{res("100m -", "100m -")}, nil, corev1.PodQOSBurstable},
		{"one guaranteed, one best effort", []corev1.ResourceRequirements{res("100m 64Mi", "100m 64Mi"), {}}, nil, corev1.PodQOSBurstable},
		{"two guaranteed", []corev1.ResourceRequirements{res("1 1Gi", "1 1Gi"), res("100m 64Mi", "100m 64Mi")}, nil, corev1.PodQOSGuaranteed},
		{"pod-level decides", []corev1.ResourceRequirements{{}}, ptr.To(res("1 1Gi", "1 1Gi")), corev1.PodQOSGuaranteed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := corev1.PodSpec{Resources: tt.pod}
			for i, r := range tt.containers {
				spec.Containers = append(spec.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Resources: r})
			}
			if got := statusPod(t, spec, nil).APIStatus("").QOSClass; got != tt.want {
				t.Errorf("qos %s, want %s", got, tt.want)
			}
		})
	}
}

func TestStatusHash(t *testing.T) {
	p := statusPod(t, oneContainer(corev1.RestartPolicyAlways), func(p *projector.Pod) {
		sandbox(p, "sb1", "ready", "10.88.77.5", 1)
		running(p, "c1", "app", 0, 3)
	})
	h := projector.StatusHash(p.APIStatus("192.0.2.10"))
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(h) {
		t.Fatalf("hash %q is not 16 hex characters", h)
	}
	if h2 := projector.StatusHash(restored(t, p).APIStatus("192.0.2.10")); h2 != h {
		t.Errorf("a restored copy of the state hashes %s, want %s", h2, h)
	}
	if h3 := projector.StatusHash(p.APIStatus("192.0.2.11")); h3 == h {
		t.Errorf("another node address gives the same hash")
	}
	// A sub-second difference in a recorded time is not a new status: the
	// API keeps whole seconds.
	q := restored(t, p)
	q.Containers["c1"].StartedAt += int64(100 * time.Millisecond)
	if h4 := projector.StatusHash(q.APIStatus("192.0.2.10")); h4 != h {
		t.Errorf("sub-second change gives hash %s, want %s", h4, h)
	}
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func equalJSON(a, b any) bool { return js(a) == js(b) }
