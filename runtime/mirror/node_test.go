package mirror

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
)

func TestDesiredStatus(t *testing.T) {
	defer verifyNoLeaks(t)
	var ready bool
	a := testAgent(t, fakeClient(), newMemRecorder(), true, func(c *Config) {
		c.RuntimeReady = func() bool { return ready }
		c.RuntimeVersion = func() string { return "containerd://1.7.2" }
	})
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	other := corev1.NodeCondition{Type: "NetworkUnavailable", Status: corev1.ConditionFalse, Reason: "RouteCreated"}
	cur := corev1.NodeStatus{Conditions: []corev1.NodeCondition{other}, Capacity: corev1.ResourceList{"example.com/gpu": *newQuantity(1)}}

	st := a.desiredStatus(cur, t0)
	readyCond := st.Conditions[conditionIndex(st.Conditions, corev1.NodeReady)]
	if readyCond.Status != corev1.ConditionFalse || readyCond.Reason != "KubeletNotReady" {
		t.Errorf("ready while the runtime is down: %+v", readyCond)
	}
	if st.Conditions[0] != other {
		t.Errorf("another component's condition changed: %+v", st.Conditions[0])
	}
	if _, ok := st.Capacity["example.com/gpu"]; !ok {
		t.Errorf("another component's capacity dropped: %v", st.Capacity)
	}
	if got := st.Capacity.Pods().Value(); got != 110 {
		t.Errorf("pods capacity %d", got)
	}
	if got := st.Allocatable.Memory().Value(); got != 4<<30 {
		t.Errorf("allocatable memory %d", got)
	}
	if len(st.Addresses) != 2 || st.Addresses[0] != (corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "192.0.2.10"}) ||
		st.Addresses[1] != (corev1.NodeAddress{Type: corev1.NodeHostName, Address: testNode}) {
		t.Errorf("addresses %v", st.Addresses)
	}
	if st.NodeInfo.ContainerRuntimeVersion != "containerd://1.7.2" || st.NodeInfo.BootID != "boot-1" || st.NodeInfo.OperatingSystem != "linux" {
		t.Errorf("node info %+v", st.NodeInfo)
	}

	// Nothing changed but the time: the same status, transitions kept.
	t1 := t0.Add(time.Minute)
	again := a.desiredStatus(st, t1)
	if !sameStatus(st, again) {
		t.Errorf("status changed with time alone")
	}
	// The runtime comes up: Ready transitions now, the others keep their time.
	ready = true
	t2 := t0.Add(2 * time.Minute)
	up := a.desiredStatus(again, t2)
	if sameStatus(again, up) {
		t.Fatal("runtime readiness did not change the status")
	}
	for _, c := range up.Conditions {
		want := t0
		switch c.Type {
		case corev1.NodeReady:
			want = t2
		case "NetworkUnavailable":
			continue
		}
		if !c.LastTransitionTime.Time.Equal(want) || !c.LastHeartbeatTime.Time.Equal(t2) {
			t.Errorf("%s: transition %v heartbeat %v", c.Type, c.LastTransitionTime, c.LastHeartbeatTime)
		}
	}
}

func TestNodeStatusPatchReplacesAddresses(t *testing.T) {
	defer verifyNoLeaks(t)
	cur := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode}, Status: corev1.NodeStatus{
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.9"}, {Type: corev1.NodeHostName, Address: testNode}},
	}}
	st := *cur.Status.DeepCopy()
	st.Addresses[0].Address = "192.0.2.10"
	patch, err := nodeStatusPatch(cur, st)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Status struct {
			Addresses []map[string]string `json:"addresses"`
		} `json:"status"`
	}
	if err := json.Unmarshal(patch, &m); err != nil {
		t.Fatal(err)
	}
	a := m.Status.Addresses
	if len(a) != 3 || a[0]["address"] != "192.0.2.10" || a[2]["$patch"] != "replace" {
		t.Errorf("patch %s", patch)
	}
	if strings.Contains(string(patch), `"spec"`) {
		t.Errorf("patch touches the spec: %s", patch)
	}
}

// TestNodeStatusPatchTakesTheNodeToTheDesiredStatus applies the hand-built
// patch as the apiserver does (strategicpatch, here in the test only) and
// checks the result is the desired status, others' conditions kept, across
// changes of each field the agent sets.
func TestNodeStatusPatchTakesTheNodeToTheDesiredStatus(t *testing.T) {
	t0, t1 := time.Unix(1_800_000_000, 0), time.Unix(1_800_000_060, 0)
	a := testAgent(t, fakeClient(), newMemRecorder(), false, nil)
	base := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode, Labels: map[string]string{"x": "y"}}, Spec: corev1.NodeSpec{PodCIDR: "10.0.0.0/24"}}
	base.Status = a.desiredStatus(corev1.NodeStatus{}, t0)
	npd := corev1.NodeCondition{Type: "KernelDeadlock", Status: corev1.ConditionFalse, Reason: "KernelHasNoDeadlock"}
	base.Status.Conditions = append(base.Status.Conditions, npd)
	base.Status.Capacity["example.com/gpu"] = resource.MustParse("2")
	base.Status.Images = []corev1.ContainerImage{{Names: []string{"busybox"}, SizeBytes: 1}}
	tests := map[string]func(a *Agent, n *corev1.Node){
		"heartbeat only":   func(*Agent, *corev1.Node) {},
		"runtime down":     func(a *Agent, _ *corev1.Node) { a.cfg.RuntimeReady = func() bool { return false } },
		"new node IP":      func(a *Agent, _ *corev1.Node) { a.cfg.NodeIP = "192.0.2.77" },
		"no node IP":       func(a *Agent, _ *corev1.Node) { a.cfg.NodeIP = "" },
		"more memory":      func(a *Agent, _ *corev1.Node) { a.facts.memory *= 2 },
		"rebooted":         func(a *Agent, _ *corev1.Node) { a.facts.bootID = "boot-2"; a.facts.kernel = "6.2.0" },
		"runtime upgraded": func(a *Agent, _ *corev1.Node) { a.cfg.RuntimeVersion = func() string { return "containerd://2.0" } },
		"cpu gone":         func(a *Agent, _ *corev1.Node) { a.facts.cpus = 0 },
		"condition edited by another writer": func(_ *Agent, n *corev1.Node) {
			n.Status.Conditions[0].Status, n.Status.Conditions[0].Reason = corev1.ConditionUnknown, "NodeStatusUnknown"
		},
	}
	for name, change := range tests {
		t.Run(name, func(t *testing.T) {
			a := testAgent(t, fakeClient(), newMemRecorder(), false, nil)
			cur := base.DeepCopy()
			change(a, cur)
			want := a.desiredStatus(cur.Status, t1)
			patch, err := nodeStatusPatch(cur, want)
			if err != nil {
				t.Fatal(err)
			}
			curJSON, err := json.Marshal(cur)
			if err != nil {
				t.Fatal(err)
			}
			gotJSON, err := strategicpatch.StrategicMergePatch(curJSON, patch, corev1.Node{})
			if err != nil {
				t.Fatalf("patch %s: %v", patch, err)
			}
			var got corev1.Node
			if err := json.Unmarshal(gotJSON, &got); err != nil {
				t.Fatal(err)
			}
			next := cur.DeepCopy()
			next.Status = want
			if !apiequality.Semantic.DeepEqual(&got, next) {
				t.Errorf("patch %s\ngives status %+v\nwant %+v", patch, got.Status, want)
			}
			if conditionIndex(got.Status.Conditions, npd.Type) < 0 || len(got.Status.Images) != 1 {
				t.Errorf("another writer's condition or the images went: %+v", got.Status)
			}
		})
	}
}

func TestKubeletVersion(t *testing.T) {
	semver := regexp.MustCompile(`^v1\.\d+\.\d+\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*$`)
	for _, v := range []string{"", "dev", "v0.1.0", "v0.1.0-3-gabcdef-dirty", "weird/ver sion..x"} {
		got := kubeletVersion(v)
		if !semver.MatchString(got) {
			t.Errorf("kubeletVersion(%q) = %q, not a Kubernetes version with build metadata", v, got)
		}
	}
	if got := kubeletVersion("v0.1.0"); !strings.HasSuffix(got, "+ledgerlet.v0.1.0") {
		t.Errorf("kubeletVersion = %q", got)
	}
}

func TestMachineFiles(t *testing.T) {
	if got := memTotal([]byte("MemFree:  10 kB\nMemTotal:       16303612 kB\n")); got != 16303612*1024 {
		t.Errorf("memTotal %d", got)
	}
	if got := memTotal([]byte("garbage")); got != 0 {
		t.Errorf("memTotal of garbage %d", got)
	}
	if got := osReleaseName([]byte("NAME=Debian\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n")); got != "Debian GNU/Linux 12 (bookworm)" {
		t.Errorf("osReleaseName %q", got)
	}
}

func newQuantity(n int64) *resource.Quantity { return resource.NewQuantity(n, resource.DecimalSI) }

// TestNodeIsNotReportedNotReadyBeforeTheRuntimeIsSeen: after a restart of the
// agent the runtime's readiness is not yet a fact of this run; reporting the
// node NotReady then would have the node lifecycle controller mark every pod
// of the node NotReady. Nothing is reported until the runtime is seen, or
// the grace has passed.
func TestNodeIsNotReportedNotReadyBeforeTheRuntimeIsSeen(t *testing.T) {
	defer verifyNoLeaks(t)
	ready := false
	cur := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode}, Status: corev1.NodeStatus{
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
	}}
	client := fakeClient(cur)
	a := testAgent(t, client, newMemRecorder(), true, func(c *Config) { c.RuntimeReady = func() bool { return ready } })
	r := newStatusReporter(a, cur)
	patches := func() int {
		n := 0
		for _, act := range client.Actions() {
			if act.GetVerb() == "patch" {
				n++
			}
		}
		return n
	}
	if err := r.sync(t.Context(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if n := patches(); n != 0 {
		t.Fatalf("reported the node (%d patches) before the runtime was seen in this run", n)
	}
	ready = true
	if err := r.sync(t.Context(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if n := patches(); n != 1 {
		t.Fatalf("%d patches once the runtime was seen, want 1", n)
	}
	// Seen once, a runtime that goes away is reported at once.
	ready = false
	if err := r.sync(t.Context(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if n := patches(); n != 2 {
		t.Fatalf("%d patches after the runtime went away, want 2", n)
	}
	// Never seen: after the grace, NotReady is the truth and is reported.
	b := testAgent(t, client, newMemRecorder(), true, func(c *Config) { c.RuntimeReady = func() bool { return false } })
	b.started = time.Now().Add(-RuntimeReadinessGrace - time.Second)
	if err := newStatusReporter(b, cur).sync(t.Context(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if n := patches(); n != 3 {
		t.Fatalf("%d patches after the grace with no runtime, want 3", n)
	}
}
