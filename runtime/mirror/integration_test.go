package mirror

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector"
	lruntime "github.com/ledgerlet/ledgerlet/runtime"
	"github.com/ledgerlet/ledgerlet/sources"
)

// The integration tests run against a real kube-apiserver with
// --authorization-mode=Node,RBAC and NodeRestriction (hack/dev-apiserver):
//
//	LEDGERLET_APISERVER_KUBECONFIG_ADMIN=$(hack/dev-apiserver up | tail -n 1 | cut -d= -f2) \
//	LEDGERLET_DEV_APISERVER=hack/dev-apiserver go test -run Integration ./runtime/mirror/
//
// LEDGERLET_APISERVER_RESTART=1 also stops and starts the apiserver (do not
// set it while something else uses that apiserver).
//
// They do not check for leaked goroutines: client-go's HTTP/2 connections
// outlive a test by design.
type realAPI struct {
	admin    kubernetes.Interface
	script   string
	node     string
	nodeConf string
}

func newRealAPI(t *testing.T) *realAPI {
	t.Helper()
	adminConf, script := os.Getenv("LEDGERLET_APISERVER_KUBECONFIG_ADMIN"), os.Getenv("LEDGERLET_DEV_APISERVER")
	if adminConf == "" || script == "" {
		t.Skip("LEDGERLET_APISERVER_KUBECONFIG_ADMIN and LEDGERLET_DEV_APISERVER are not set")
	}
	rc, err := clientcmd.BuildConfigFromFlags("", adminConf)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	api := &realAPI{admin: admin, script: script, node: "ledgerlet-it-" + hex.EncodeToString(b)}
	api.nodeConf = api.run(t, "node-kubeconfig", api.node)
	t.Cleanup(func() {
		// The node's objects go with it; its mirrors may outlive it (no
		// garbage collector runs), so they are deleted by hand.
		ctx := context.Background()
		pods, _ := admin.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + api.node})
		if pods != nil {
			for _, p := range pods.Items {
				_ = admin.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
			}
		}
		_ = admin.CoordinationV1().Leases(leaseNamespace).Delete(ctx, api.node, metav1.DeleteOptions{})
		_ = admin.CoreV1().Nodes().Delete(ctx, api.node, metav1.DeleteOptions{})
	})
	return api
}

// run runs the dev-apiserver script and returns its last line of output.
func (api *realAPI) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), api.script, args...).Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s %s: %v\n%s", api.script, strings.Join(args, " "), err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// kubectl runs the script's kubectl (admin) and returns its output.
func (api *realAPI) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), api.script, append([]string{"kubectl"}, args...)...).CombinedOutput()
	if err != nil {
		t.Errorf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// startAgent runs an Agent for the node; it stops when the test ends.
func (api *realAPI) startAgent(t *testing.T, rec *memRecorder) *Agent {
	t.Helper()
	a, err := New(t.Context(), Config{
		Kubeconfig: api.nodeConf, NodeName: api.node, NodeIP: "10.0.0.9", Version: "v0.0.0-it",
		Recorder: rec, Known: rec.known, RegisterNode: true, Logger: testLogger(t),
		RuntimeVersion: func() string { return "containerd://1.7.2" },
		RenewInterval:  time.Second, NodeStatusReport: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return a
}

// staticFromManifest parses a manifest as the file source does, and folds it
// into a state with a running container, as the runtime would report it.
func staticFromManifest(t *testing.T, node, manifest string, at time.Time) (*sources.Result, *projector.Pod) {
	t.Helper()
	res, err := sources.Parse([]byte(manifest), sources.ParseOptions{NodeName: node, Source: sources.SourceFile, Path: "/etc/kubernetes/manifests/web.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	s := projector.New()
	evs := []eventlog.Event{
		{Pod: res.Key, Data: &pb.ManifestAdded{Source: "file", Path: "/etc/kubernetes/manifests/web.yaml", ContentHash: res.ContentHash,
			Uid: res.UID, ConfigHash: res.ConfigHash, PodJson: res.PodJSON, UidAlgorithm: res.UIDAlgorithm}},
		{Pod: res.Key, Data: &pb.SandboxObserved{Uid: res.UID, SandboxId: "sb1", State: "ready", Ip: "10.88.77.5", CreatedUnixNano: at.Add(time.Second).UnixNano()}},
		{Pod: res.Key, Data: &pb.ContainerObserved{Uid: res.UID, SandboxId: "sb1", Container: "web", ContainerId: "c1", State: "running", StartedUnixNano: at.Add(2 * time.Second).UnixNano()}},
	}
	for i, e := range evs {
		e.Seq, e.Time = uint64(i+1), at.Add(time.Duration(i)*time.Second)
		s.Apply(e)
	}
	return res, s.Pods[res.Key]
}

func TestIntegrationMirrorLifecycle(t *testing.T) {
	api := newRealAPI(t)
	ctx := t.Context()
	rec := newMemRecorder()
	a := api.startAgent(t, rec)
	rec.waitFor(t, "connected and synced", hasLine("MirrorsSynced mirrors=0"))
	for _, ev := range rec.events() {
		if d, ok := ev.Data.(*pb.ApiserverConnected); ok && (d.NodeUid == "" || !strings.HasPrefix(d.ServerVersion, "v1.")) {
			t.Errorf("ApiserverConnected %v", d)
		}
	}

	// The Node is registered and Ready, its lease held and renewed.
	waitUntil(t, "the node Ready", func() bool {
		node, err := api.admin.CoreV1().Nodes().Get(ctx, api.node, metav1.GetOptions{})
		if err != nil {
			return false
		}
		i := conditionIndex(node.Status.Conditions, corev1.NodeReady)
		return i >= 0 && node.Status.Conditions[i].Status == corev1.ConditionTrue
	})
	node, err := api.admin.CoreV1().Nodes().Get(ctx, api.node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("node %s: version %s, capacity cpu=%s memory=%s pods=%s, addresses %v, taints %v", node.Name, node.Status.NodeInfo.KubeletVersion,
		node.Status.Capacity.Cpu(), node.Status.Capacity.Memory(), node.Status.Capacity.Pods(), node.Status.Addresses, node.Spec.Taints)
	if node.Labels[corev1.LabelHostname] != api.node || node.Status.NodeInfo.ContainerRuntimeVersion != "containerd://1.7.2" {
		t.Errorf("node labels %v, info %+v", node.Labels, node.Status.NodeInfo)
	}
	// Unchanged, the status is not patched again (the lease is the heartbeat).
	time.Sleep(3 * time.Second)
	if again, err := api.admin.CoreV1().Nodes().Get(ctx, api.node, metav1.GetOptions{}); err != nil || again.ResourceVersion != node.ResourceVersion {
		t.Errorf("node patched without a change: resourceVersion %s -> %s (%v)", node.ResourceVersion, again.ResourceVersion, err)
	}
	var firstRenew time.Time
	waitUntil(t, "the lease renewed", func() bool {
		lease, err := api.admin.CoordinationV1().Leases(leaseNamespace).Get(ctx, api.node, metav1.GetOptions{})
		if err != nil || lease.Spec.RenewTime == nil || !leaseOK(lease, node) {
			return false
		}
		if firstRenew.IsZero() {
			firstRenew = lease.Spec.RenewTime.Time
		}
		return lease.Spec.RenewTime.After(firstRenew)
	})

	// A mirror made by the effector passes NodeRestriction.
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	res, static := staticFromManifest(t, api.node, `
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
  labels: {app: web}
spec:
  containers:
  - name: web
    image: localhost/busybox:1.36
    command: [httpd, -f, -p, "8080"]
    resources:
      limits: {cpu: 100m, memory: 64Mi}
`, at)
	create := lruntime.Job{Pod: res.Key, Spec: res.Pod, Intent: &pb.Intent{Action: string(pb.ActionMirrorCreate), Uid: res.UID, ConfigHash: res.ConfigHash}}
	out := a.Execute(ctx, create)
	if !out.Ok {
		t.Fatalf("MirrorCreate: %s (%s)", out.Error, out.Reason)
	}
	mirrorUID := out.MirrorUid
	rec.waitFor(t, "the mirror observed", hasLine(fmt.Sprintf("MirrorObserved %s uid=%s hash=%s deleting=false phase=Pending", res.Key, mirrorUID, res.ConfigHash)))
	ns, name, _ := strings.Cut(res.Key, "/")
	got, err := api.admin.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Annotations["kubernetes.io/config.mirror"] != res.ConfigHash || len(got.OwnerReferences) != 1 || got.OwnerReferences[0].UID != node.UID {
		t.Errorf("mirror metadata %+v", got.ObjectMeta)
	}
	if got.Status.QOSClass != static.APIStatus("10.0.0.9").QOSClass {
		t.Errorf("the apiserver's qosClass %s differs from APIStatus's %s", got.Status.QOSClass, static.APIStatus("10.0.0.9").QOSClass)
	}
	// Creating it again finds it (a node may list, not get, pods by name).
	if again := a.Execute(ctx, create); !again.Ok || again.MirrorUid != mirrorUID {
		t.Errorf("MirrorCreate again: ok=%t uid=%s error=%s", again.Ok, again.MirrorUid, again.Error)
	}

	// Its status, as APIStatus renders it, is accepted and visible.
	st := static.APIStatus("10.0.0.9")
	status := lruntime.Job{Pod: res.Key, Status: &st, Intent: &pb.Intent{Action: string(pb.ActionMirrorStatus), Uid: res.UID, MirrorUid: mirrorUID, StatusHash: projector.StatusHash(st)}}
	if out := a.Execute(ctx, status); !out.Ok {
		t.Fatalf("MirrorStatus: %s (%s)", out.Error, out.Reason)
	}
	got, err = api.admin.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != corev1.PodRunning || got.Status.PodIP != "10.88.77.5" || got.Status.HostIP != "10.0.0.9" ||
		len(got.Status.ContainerStatuses) != 1 || !got.Status.ContainerStatuses[0].Ready || len(got.Status.Conditions) != 5 {
		t.Errorf("status in the apiserver: %+v", got.Status)
	}
	// The mirror holds exactly the published status: read back, it hashes the same.
	if h := projector.StatusHash(got.Status); h != projector.StatusHash(st) {
		t.Errorf("status read back hashes %s, published %s:\n%s\n%s", h, projector.StatusHash(st), jsonOf(got.Status), jsonOf(st))
	}
	// As kubectl shows them (last lines only, see -v).
	t.Logf("kubectl get nodes:\n%s", api.kubectl(t, "get", "nodes", api.node, "-o", "wide"))
	t.Logf("kubectl get pods:\n%s", api.kubectl(t, "get", "pods", "-n", ns, name, "-o", "wide"))
	rec.waitFor(t, "the phase observed", hasLine(fmt.Sprintf("MirrorObserved %s uid=%s hash=%s deleting=false phase=Running", res.Key, mirrorUID, res.ConfigHash)))
	// A status for another UID under that name is refused by the UID precondition.
	wrong := status
	wrong.Intent = &pb.Intent{Action: string(pb.ActionMirrorStatus), MirrorUid: "00000000-0000-0000-0000-000000000000"}
	if out := a.Execute(ctx, wrong); out.Ok || out.Reason != pb.ReasonMirrorGone {
		t.Errorf("MirrorStatus for another uid: ok=%t reason=%s error=%s", out.Ok, out.Reason, out.Error)
	}
	// A delete for another UID leaves the mirror alone, and counts as done.
	if out := a.Execute(ctx, lruntime.Job{Pod: res.Key, Intent: &pb.Intent{Action: string(pb.ActionMirrorDelete), MirrorUid: "00000000-0000-0000-0000-000000000000"}}); !out.Ok {
		t.Errorf("MirrorDelete for another uid: %s", out.Error)
	}
	if _, err := api.admin.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
		t.Errorf("mirror gone after a delete for another uid: %v", err)
	}

	// A user's graceful delete shows as deleting; the planner's delete (grace 0) ends it.
	if err := api.admin.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "the mirror deleting", hasLine(fmt.Sprintf("MirrorObserved %s uid=%s hash=%s deleting=true phase=Running", res.Key, mirrorUID, res.ConfigHash)))
	if out := a.Execute(ctx, lruntime.Job{Pod: res.Key, Intent: &pb.Intent{Action: string(pb.ActionMirrorDelete), MirrorUid: mirrorUID}}); !out.Ok {
		t.Fatalf("MirrorDelete: %s (%s)", out.Error, out.Reason)
	}
	rec.waitFor(t, "the mirror gone", hasLine(fmt.Sprintf("MirrorGone %s uid=%s", res.Key, mirrorUID)))

	// A new mirror, deleted by a user at once, is observed gone.
	out = a.Execute(ctx, create)
	if !out.Ok {
		t.Fatalf("MirrorCreate after the delete: %s (%s)", out.Error, out.Reason)
	}
	if err := api.admin.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "the user's delete", hasLine(fmt.Sprintf("MirrorGone %s uid=%s", res.Key, out.MirrorUid)))
	// A status for it now fails as gone.
	status.Intent = &pb.Intent{Action: string(pb.ActionMirrorStatus), MirrorUid: out.MirrorUid}
	if out := a.Execute(ctx, status); out.Ok || out.Reason != pb.ReasonMirrorGone {
		t.Errorf("MirrorStatus after the delete: ok=%t reason=%s error=%s", out.Ok, out.Reason, out.Error)
	}

	// Nothing was appended per resync: each fact once.
	got2 := summary(rec.events())
	if n := countPrefix(got2, "MirrorsSynced"); n != 1 {
		t.Errorf("%d MirrorsSynced in one connection:\n%s", n, strings.Join(got2, "\n"))
	}
	for i := 1; i < len(got2); i++ {
		if got2[i] == got2[i-1] {
			t.Errorf("event %q appended twice in a row", got2[i])
		}
	}
}

// TestIntegrationRefusedRequests: what NodeRestriction refuses is reported
// as Forbidden, not retried as an apiserver failure.
func TestIntegrationRefusedRequests(t *testing.T) {
	api := newRealAPI(t)
	ctx := t.Context()
	rec := newMemRecorder()
	a := api.startAgent(t, rec)
	rec.waitFor(t, "connected and synced", hasLine("MirrorsSynced mirrors=0"))

	// A pod bound to another node.
	res, _ := staticFromManifest(t, api.node, "apiVersion: v1\nkind: Pod\nmetadata: {name: other}\nspec:\n  containers: [{name: c, image: busybox}]\n", time.Now())
	res.Pod.Spec.NodeName = "someone-else"
	out := a.Execute(ctx, lruntime.Job{Pod: res.Key, Spec: res.Pod, Intent: &pb.Intent{Action: string(pb.ActionMirrorCreate), ConfigHash: res.ConfigHash}})
	if out.Ok || out.Reason != pb.ReasonForbidden {
		t.Errorf("mirror for another node: ok=%t reason=%s error=%s", out.Ok, out.Reason, out.Error)
	}
	// A pod that references an API object (a mirror may not).
	res, _ = staticFromManifest(t, api.node, "apiVersion: v1\nkind: Pod\nmetadata: {name: sa}\nspec:\n  containers: [{name: c, image: busybox}]\n", time.Now())
	res.Pod.Spec.ServiceAccountName = "default"
	out = a.Execute(ctx, lruntime.Job{Pod: res.Key, Spec: res.Pod, Intent: &pb.Intent{Action: string(pb.ActionMirrorCreate), ConfigHash: res.ConfigHash}})
	if out.Ok || out.Reason != pb.ReasonForbidden {
		t.Errorf("mirror with a service account: ok=%t reason=%s error=%s", out.Ok, out.Reason, out.Error)
	}
	t.Logf("refused: %s", out.Error)
	_, err := api.admin.CoreV1().Pods("default").Get(ctx, "sa-"+api.node, metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("refused mirror exists: %v", err)
	}
}

// TestIntegrationApiserverRestart: the apiserver going away is recorded
// once; coming back, the agent reconnects, lists again and is synced again.
func TestIntegrationApiserverRestart(t *testing.T) {
	api := newRealAPI(t)
	if os.Getenv("LEDGERLET_APISERVER_RESTART") != "1" {
		t.Skip("LEDGERLET_APISERVER_RESTART is not 1")
	}
	rec := newMemRecorder()
	api.startAgent(t, rec)
	rec.waitFor(t, "connected and synced", hasLine("MirrorsSynced mirrors=0"))
	api.run(t, "stop-apiserver")
	restarted := false
	defer func() {
		if !restarted {
			api.run(t, "start-apiserver")
		}
	}()
	rec.waitFor(t, "the disconnection", func(got []string) bool { return countPrefix(got, "ApiserverDisconnected") == 1 })
	api.run(t, "start-apiserver")
	restarted = true
	got := rec.waitFor(t, "the reconnection", func(got []string) bool { return countPrefix(got, "MirrorsSynced") == 2 })
	if n := countPrefix(got, "ApiserverDisconnected"); n != 1 {
		t.Errorf("%d disconnections recorded:\n%s", n, strings.Join(got, "\n"))
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
