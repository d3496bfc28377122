package mirror

import (
	"encoding/json"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	lruntime "github.com/ledgerlet/ledgerlet/runtime"
)

var podsResource = schema.GroupResource{Resource: "pods"}

func intent(action pb.Action, edit func(*pb.Intent)) *pb.Intent {
	in := &pb.Intent{Action: string(action), Uid: "static-uid"}
	if edit != nil {
		edit(in)
	}
	return in
}

func failWith(verb string, err error) func(*fake.Clientset) {
	return func(c *fake.Clientset) {
		c.PrependReactor(verb, "pods", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, err })
	}
}

func TestExecuteCreate(t *testing.T) {
	defer verifyNoLeaks(t)
	spec := staticPod("etcd-node1", "hash1")
	tests := []struct {
		name       string
		objects    []runtime.Object
		setup      func(*fake.Clientset)
		job        lruntime.Job
		connected  bool
		wantOK     bool
		wantReason string
		wantUID    string
	}{
		{name: "created", connected: true, wantOK: true, wantUID: "uid-1",
			job: lruntime.Job{Pod: "kube-system/etcd-node1", Spec: spec, Intent: intent(pb.ActionMirrorCreate, func(in *pb.Intent) { in.ConfigHash = "hash1" })}},
		{name: "exists, same config", connected: true, wantOK: true, wantUID: "m-1",
			objects: []runtime.Object{mirror("etcd-node1", "m-1", "hash1")},
			job:     lruntime.Job{Pod: "kube-system/etcd-node1", Spec: spec, Intent: intent(pb.ActionMirrorCreate, func(in *pb.Intent) { in.ConfigHash = "hash1" })}},
		{name: "exists, other config", connected: true, wantReason: pb.ReasonMirrorExists, wantUID: "m-0",
			objects: []runtime.Object{mirror("etcd-node1", "m-0", "hash0")},
			job:     lruntime.Job{Pod: "kube-system/etcd-node1", Spec: spec, Intent: intent(pb.ActionMirrorCreate, func(in *pb.Intent) { in.ConfigHash = "hash1" })}},
		{name: "exists, not a mirror", connected: true, wantReason: pb.ReasonMirrorExists, wantUID: "static-uid",
			objects: []runtime.Object{staticPod("etcd-node1", "hash1")},
			job:     lruntime.Job{Pod: "kube-system/etcd-node1", Spec: spec, Intent: intent(pb.ActionMirrorCreate, func(in *pb.Intent) { in.ConfigHash = "hash1" })}},
		{name: "exists on another node", connected: true, wantReason: pb.ReasonMirrorExists,
			objects: []runtime.Object{func() *corev1.Pod { p := mirror("etcd-node1", "m-9", "hash1"); p.Spec.NodeName = "node2"; return p }()},
			job:     lruntime.Job{Pod: "kube-system/etcd-node1", Spec: spec, Intent: intent(pb.ActionMirrorCreate, func(in *pb.Intent) { in.ConfigHash = "hash1" })}},
		{name: "forbidden", connected: true, wantReason: pb.ReasonForbidden,
			setup: failWith("create", apierrors.NewForbidden(podsResource, "etcd-node1", errors.New("node \"node1\" can only create mirror pods"))),
			job:   lruntime.Job{Pod: "kube-system/etcd-node1", Spec: spec, Intent: intent(pb.ActionMirrorCreate, func(in *pb.Intent) { in.ConfigHash = "hash1" })}},
		{name: "apiserver error", connected: true, wantReason: pb.ReasonApiserverError,
			setup: failWith("create", errors.New("connection refused\nsecond line")),
			job:   lruntime.Job{Pod: "kube-system/etcd-node1", Spec: spec, Intent: intent(pb.ActionMirrorCreate, func(in *pb.Intent) { in.ConfigHash = "hash1" })}},
		{name: "not connected yet", wantReason: pb.ReasonApiserverNotConnected,
			job: lruntime.Job{Pod: "kube-system/etcd-node1", Spec: spec, Intent: intent(pb.ActionMirrorCreate, func(in *pb.Intent) { in.ConfigHash = "hash1" })}},
		{name: "no spec", connected: true, wantReason: pb.ReasonApiserverError,
			job: lruntime.Job{Pod: "kube-system/etcd-node1", Intent: intent(pb.ActionMirrorCreate, func(in *pb.Intent) { in.ConfigHash = "hash1" })}},
		{name: "no config hash", connected: true, wantReason: pb.ReasonApiserverError,
			job: lruntime.Job{Pod: "kube-system/etcd-node1", Spec: spec, Intent: intent(pb.ActionMirrorCreate, nil)}},
		{name: "no intent", connected: true, wantReason: pb.ReasonApiserverError,
			job: lruntime.Job{Pod: "kube-system/etcd-node1", Spec: spec}},
		{name: "not a mirror action", connected: true, wantReason: pb.ReasonApiserverError,
			job: lruntime.Job{Pod: "kube-system/etcd-node1", Spec: spec, Intent: intent(pb.ActionRunSandbox, nil)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fakeClient(tt.objects...)
			if tt.setup != nil {
				tt.setup(client)
			}
			a := testAgent(t, client, newMemRecorder(), tt.connected, nil)
			out := a.Execute(t.Context(), tt.job)
			if out.Ok != tt.wantOK || out.Reason != tt.wantReason || out.MirrorUid != tt.wantUID {
				t.Fatalf("outcome ok=%t reason=%q uid=%q error=%q, want ok=%t reason=%q uid=%q",
					out.Ok, out.Reason, out.MirrorUid, out.Error, tt.wantOK, tt.wantReason, tt.wantUID)
			}
			if !out.Ok && (out.Error == "" || containsNewline(out.Error)) {
				t.Errorf("error text %q is not one line", out.Error)
			}
		})
	}
}

func containsNewline(s string) bool {
	for _, r := range s {
		if r == '\n' {
			return true
		}
	}
	return false
}

// TestMirrorAsTheKubeletMakesIt: what NodeRestriction checks on create.
func TestMirrorAsTheKubeletMakesIt(t *testing.T) {
	defer verifyNoLeaks(t)
	client := fakeClient()
	a := testAgent(t, client, newMemRecorder(), true, nil)
	spec := staticPod("etcd-node1", "hash1")
	out := a.Execute(t.Context(), lruntime.Job{Pod: "kube-system/etcd-node1", Spec: spec,
		Intent: intent(pb.ActionMirrorCreate, func(in *pb.Intent) { in.ConfigHash = "hash1" })})
	if !out.Ok {
		t.Fatalf("outcome %+v", out)
	}
	var created *corev1.Pod
	for _, act := range client.Actions() {
		if c, ok := act.(k8stesting.CreateAction); ok && act.GetResource().Resource == "pods" {
			created = c.GetObject().(*corev1.Pod)
		}
	}
	if created == nil {
		t.Fatal("no pod created")
	}
	if created.Namespace != "kube-system" || created.Name != "etcd-node1" || created.Spec.NodeName != testNode {
		t.Errorf("created %s/%s on %q", created.Namespace, created.Name, created.Spec.NodeName)
	}
	if got := created.Annotations["kubernetes.io/config.mirror"]; got != "hash1" {
		t.Errorf("config.mirror %q", got)
	}
	if created.Annotations["kubernetes.io/config.source"] != "file" || created.Labels["component"] != "etcd" {
		t.Errorf("labels/annotations not copied: %v %v", created.Labels, created.Annotations)
	}
	refs := created.OwnerReferences
	if len(refs) != 1 || refs[0].APIVersion != "v1" || refs[0].Kind != "Node" || refs[0].Name != testNode ||
		refs[0].UID != "node-uid" || refs[0].Controller == nil || !*refs[0].Controller || refs[0].BlockOwnerDeletion != nil {
		t.Errorf("owner references %+v", refs)
	}
	if created.ResourceVersion != "" || created.Status.Phase != "" {
		t.Errorf("resourceVersion %q and status %+v must not be sent", created.ResourceVersion, created.Status)
	}
	if created.UID != "" {
		t.Errorf("the static pod's uid %q was sent", created.UID)
	}
	if spec.Annotations["kubernetes.io/config.mirror"] != "" {
		t.Error("the job's spec was modified")
	}
}

func TestExecuteDelete(t *testing.T) {
	defer verifyNoLeaks(t)
	tests := []struct {
		name       string
		objects    []runtime.Object
		setup      func(*fake.Clientset)
		mirrorUID  string
		wantOK     bool
		wantReason string
	}{
		{name: "deleted", objects: []runtime.Object{mirror("etcd-node1", "m-1", "hash1")}, mirrorUID: "m-1", wantOK: true},
		{name: "already gone", mirrorUID: "m-1", wantOK: true},
		{name: "another object holds the name", mirrorUID: "m-1", wantOK: true,
			setup: failWith("delete", apierrors.NewConflict(podsResource, "etcd-node1", errors.New("Precondition failed: UID in precondition: m-1, UID in object meta: m-2")))},
		{name: "forbidden", mirrorUID: "m-1", wantReason: pb.ReasonForbidden,
			setup: failWith("delete", apierrors.NewForbidden(podsResource, "etcd-node1", errors.New("no")))},
		{name: "timeout", mirrorUID: "m-1", wantReason: pb.ReasonApiserverError,
			setup: failWith("delete", apierrors.NewTimeoutError("slow", 1))},
		{name: "no mirror uid", wantReason: pb.ReasonApiserverError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fakeClient(tt.objects...)
			if tt.setup != nil {
				tt.setup(client)
			}
			a := testAgent(t, client, newMemRecorder(), true, nil)
			out := a.Execute(t.Context(), lruntime.Job{Pod: "kube-system/etcd-node1",
				Intent: intent(pb.ActionMirrorDelete, func(in *pb.Intent) { in.MirrorUid = tt.mirrorUID })})
			if out.Ok != tt.wantOK || out.Reason != tt.wantReason {
				t.Fatalf("outcome ok=%t reason=%q error=%q, want ok=%t reason=%q", out.Ok, out.Reason, out.Error, tt.wantOK, tt.wantReason)
			}
			for _, act := range client.Actions() {
				d, ok := act.(k8stesting.DeleteAction)
				if !ok {
					continue
				}
				opts := d.GetDeleteOptions()
				if opts.Preconditions == nil || opts.Preconditions.UID == nil || *opts.Preconditions.UID != types.UID(tt.mirrorUID) {
					t.Errorf("delete preconditions %+v, want uid %s", opts.Preconditions, tt.mirrorUID)
				}
				if opts.GracePeriodSeconds == nil || *opts.GracePeriodSeconds != 0 {
					t.Errorf("grace period %v, want 0", opts.GracePeriodSeconds)
				}
			}
			if tt.name == "deleted" {
				if _, err := client.CoreV1().Pods("kube-system").Get(t.Context(), "etcd-node1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
					t.Errorf("mirror still there: %v", err)
				}
			}
		})
	}
}

func TestExecuteStatus(t *testing.T) {
	defer verifyNoLeaks(t)
	status := &corev1.PodStatus{
		Phase: corev1.PodRunning, QOSClass: corev1.PodQOSBestEffort, HostIP: "192.0.2.10",
		HostIPs:           []corev1.HostIP{{IP: "192.0.2.10"}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: "etcd", Ready: true, ContainerID: "containerd://abc"}},
	}
	tests := []struct {
		name       string
		objects    []runtime.Object
		setup      func(*fake.Clientset)
		status     *corev1.PodStatus
		mirrorUID  string
		wantOK     bool
		wantReason string
	}{
		{name: "patched", objects: []runtime.Object{mirror("etcd-node1", "m-1", "hash1")}, status: status, mirrorUID: "m-1", wantOK: true},
		{name: "mirror gone", status: status, mirrorUID: "m-1", wantReason: pb.ReasonMirrorGone},
		{name: "another object holds the name", status: status, mirrorUID: "m-1", wantReason: pb.ReasonMirrorGone,
			setup: failWith("patch", apierrors.NewConflict(podsResource, "etcd-node1", errors.New("Precondition failed: UID in precondition: m-1, UID in object meta: m-2")))},
		{name: "another object holds the name (as the apiserver says it)", status: status, mirrorUID: "m-1", wantReason: pb.ReasonMirrorGone,
			setup: failWith("patch", apierrors.NewInvalid(schema.GroupKind{Kind: "Pod"}, "etcd-node1", field.ErrorList{
				field.Invalid(field.NewPath("metadata", "uid"), "m-1", "field is immutable")}))},
		{name: "invalid", status: status, mirrorUID: "m-1", wantReason: pb.ReasonInvalid,
			setup: failWith("patch", apierrors.NewInvalid(schema.GroupKind{Kind: "Pod"}, "etcd-node1", nil))},
		{name: "no status", mirrorUID: "m-1", wantReason: pb.ReasonApiserverError},
		{name: "no mirror uid", status: status, wantReason: pb.ReasonApiserverError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fakeClient(tt.objects...)
			if tt.setup != nil {
				tt.setup(client)
			}
			a := testAgent(t, client, newMemRecorder(), true, nil)
			out := a.Execute(t.Context(), lruntime.Job{Pod: "kube-system/etcd-node1", Status: tt.status,
				Intent: intent(pb.ActionMirrorStatus, func(in *pb.Intent) { in.MirrorUid = tt.mirrorUID; in.StatusHash = "h" })})
			if out.Ok != tt.wantOK || out.Reason != tt.wantReason {
				t.Fatalf("outcome ok=%t reason=%q error=%q, want ok=%t reason=%q", out.Ok, out.Reason, out.Error, tt.wantOK, tt.wantReason)
			}
			if !tt.wantOK {
				return
			}
			var patch k8stesting.PatchAction
			for _, act := range client.Actions() {
				if p, ok := act.(k8stesting.PatchAction); ok {
					patch = p
				}
			}
			if patch == nil || patch.GetSubresource() != "status" || patch.GetPatchType() != types.MergePatchType {
				t.Fatalf("patch %+v", patch)
			}
			var body struct {
				Metadata struct {
					UID string `json:"uid"`
				} `json:"metadata"`
				Status map[string]json.RawMessage `json:"status"`
			}
			if err := json.Unmarshal(patch.GetPatch(), &body); err != nil {
				t.Fatal(err)
			}
			if body.Metadata.UID != "m-1" {
				t.Errorf("patch uid %q, want the mirror's", body.Metadata.UID)
			}
			if string(body.Status["podIP"]) != "null" || string(body.Status["conditions"]) != "null" {
				t.Errorf("fields the status leaves out are not cleared: %s", patch.GetPatch())
			}
			if _, ok := body.Status["qosClass"]; !ok {
				t.Errorf("qosClass missing from %s", patch.GetPatch())
			}
			got, err := client.CoreV1().Pods("kube-system").Get(t.Context(), "etcd-node1", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Status.Phase != corev1.PodRunning || len(got.Status.ContainerStatuses) != 1 || got.Status.HostIP != "192.0.2.10" {
				t.Errorf("status after patch %+v", got.Status)
			}
		})
	}
}
