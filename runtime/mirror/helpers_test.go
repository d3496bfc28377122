package mirror

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector"
)

// verifyNoLeaks fails the test if a goroutine it started outlives it.
func verifyNoLeaks(t *testing.T) {
	t.Helper()
	goleak.VerifyNone(t, goleak.IgnoreCurrent())
}

// memRecorder is an in-memory Recorder that keeps every append, one batch per call.
type memRecorder struct {
	mu      sync.Mutex
	batches [][]eventlog.Event
	fail    error
	signal  chan struct{}
}

func newMemRecorder() *memRecorder { return &memRecorder{signal: make(chan struct{}, 1)} }

func (r *memRecorder) Append(_ context.Context, evs ...eventlog.Event) ([]uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return nil, r.fail
	}
	for _, ev := range evs {
		if _, err := eventlog.Encode(ev); err != nil {
			return nil, err
		}
	}
	r.batches = append(r.batches, slices.Clone(evs))
	select {
	case r.signal <- struct{}{}:
	default:
	}
	return make([]uint64, len(evs)), nil
}

func (r *memRecorder) setFail(err error) {
	r.mu.Lock()
	r.fail = err
	r.mu.Unlock()
}

func (r *memRecorder) events() []eventlog.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []eventlog.Event
	for _, b := range r.batches {
		all = append(all, b...)
	}
	return all
}

// known projects the recorded mirror events as the ledger would (Known).
func (r *memRecorder) known() map[string]projector.Mirror {
	out := map[string]projector.Mirror{}
	for _, ev := range r.events() {
		switch d := ev.Data.(type) {
		case *pb.MirrorObserved:
			out[ev.Pod] = projector.Mirror{UID: d.MirrorUid, ConfigMirror: d.ConfigMirror, Deleting: d.Deleting, Phase: d.Phase,
				ObservedDigest: d.StatusDigest}
		case *pb.MirrorGone:
			if out[ev.Pod].UID == d.MirrorUid {
				delete(out, ev.Pod)
			}
		}
	}
	return out
}

// summary renders events as one line each: type, pod and the fields that matter here.
func summary(evs []eventlog.Event) []string {
	out := make([]string, 0, len(evs))
	for _, ev := range evs {
		s := ev.Type()
		switch d := ev.Data.(type) {
		case *pb.MirrorObserved:
			s += fmt.Sprintf(" %s uid=%s hash=%s deleting=%t phase=%s", ev.Pod, d.MirrorUid, d.ConfigMirror, d.Deleting, d.Phase)
		case *pb.MirrorGone:
			s += fmt.Sprintf(" %s uid=%s", ev.Pod, d.MirrorUid)
		case *pb.MirrorsSynced:
			s += fmt.Sprintf(" mirrors=%d", d.Mirrors)
		}
		out = append(out, s)
	}
	return out
}

// waitFor polls the recorder until cond holds on the summary of all events.
func (r *memRecorder) waitFor(t *testing.T, what string, cond func([]string) bool) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := summary(r.events())
		if cond(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; events:\n%s", what, strings.Join(got, "\n"))
		}
		select {
		case <-r.signal:
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func hasLine(line string) func([]string) bool {
	return func(got []string) bool { return slices.Contains(got, line) }
}

func countPrefix(got []string, prefix string) int {
	n := 0
	for _, g := range got {
		if strings.HasPrefix(g, prefix) {
			n++
		}
	}
	return n
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fakeClient is a fake clientset that, like the apiserver, gives created
// objects a UID ("uid-<n>").
func fakeClient(objects ...runtime.Object) *fake.Clientset {
	c := fake.NewClientset(objects...)
	var mu sync.Mutex
	n := 0
	c.PrependReactor("create", "*", func(action k8stesting.Action) (bool, runtime.Object, error) {
		obj, ok := action.(k8stesting.CreateAction)
		if !ok {
			return false, nil, nil
		}
		if m, ok := obj.GetObject().(interface {
			GetUID() types.UID
			SetUID(types.UID)
		}); ok && m.GetUID() == "" {
			mu.Lock()
			n++
			m.SetUID(types.UID(fmt.Sprintf("uid-%d", n)))
			mu.Unlock()
		}
		return false, nil, nil
	})
	return c
}

// clientsetAPI is kubeAPI on a client-go clientset (here, its fake): the
// typed clients satisfy the narrow interfaces as they are.
type clientsetAPI struct{ cs kubernetes.Interface }

func (c clientsetAPI) Pods(namespace string) podAPI { return c.cs.CoreV1().Pods(namespace) }
func (c clientsetAPI) Nodes() nodeAPI               { return c.cs.CoreV1().Nodes() }
func (c clientsetAPI) Leases(namespace string) leaseAPI {
	return c.cs.CoordinationV1().Leases(namespace)
}
func (c clientsetAPI) ServerVersion(ctx context.Context) (*version.Info, error) {
	return discovery.ToServerVersionInterfaceWithContext(c.cs.Discovery()).ServerVersionWithContext(ctx)
}

const testNode = "node1"

// testAgent is an Agent on a fake clientset; connected says whether a
// connection (the Node's UID) is already made.
func testAgent(t *testing.T, client *fake.Clientset, rec *memRecorder, connected bool, edit func(*Config)) *Agent {
	t.Helper()
	cfg := Config{
		NodeName: testNode, NodeIP: "192.0.2.10", Version: "v0.1.0-test", Recorder: rec, Known: rec.known,
		RegisterNode: true, Logger: testLogger(t),
		RenewInterval: 50 * time.Millisecond, NodeStatusReport: time.Hour,
	}
	if edit != nil {
		edit(&cfg)
	}
	facts := nodeFacts{os: "linux", arch: "amd64", cpus: 2, memory: 4 << 30, bootID: "boot-1", machineID: "machine-1", kernel: "6.1.0", osImage: "Test Linux"}
	api := clientsetAPI{client}
	a, err := newAgent(t.Context(), cfg, "https://127.0.0.1:16443", api, api, facts)
	if err != nil {
		t.Fatal(err)
	}
	if connected {
		a.conn.Store(&connection{nodeUID: "node-uid"})
	}
	return a
}

func staticPod(name, hash string) *corev1.Pod {
	pod := &corev1.Pod{}
	pod.Name, pod.Namespace, pod.UID, pod.ResourceVersion = name, "kube-system", "static-uid", "42"
	pod.Labels = map[string]string{"component": "etcd"}
	pod.Annotations = map[string]string{"kubernetes.io/config.hash": hash, "kubernetes.io/config.source": "file"}
	pod.Spec.NodeName = testNode
	pod.Spec.Containers = []corev1.Container{{Name: "etcd", Image: "registry.k8s.io/etcd:3.5"}}
	pod.Status.Phase = corev1.PodRunning
	return pod
}

// mirror is a mirror pod of this node as the apiserver holds it.
// pendingDigest is MirrorStatusDigest of mirror()'s status.
var pendingDigest = projector.MirrorStatusDigest(corev1.PodStatus{Phase: corev1.PodPending})

// runningDigest is that of a mirror whose phase is Running and nothing else.
var runningDigest = projector.MirrorStatusDigest(corev1.PodStatus{Phase: corev1.PodRunning})

func mirror(name, uid, hash string) *corev1.Pod {
	pod := staticPod(name, hash)
	pod.UID, pod.ResourceVersion = types.UID(uid), ""
	pod.Annotations["kubernetes.io/config.mirror"] = hash
	pod.Status.Phase = corev1.PodPending
	return pod
}
