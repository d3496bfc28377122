package mirror

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	k8stesting "k8s.io/client-go/testing"

	"github.com/ledgerlet/ledgerlet/projector"
)

func TestListedAppendsOnlyChanges(t *testing.T) {
	defer verifyNoLeaks(t)
	running := func(p *corev1.Pod) *corev1.Pod { p.Status.Phase = corev1.PodRunning; return p }
	tests := []struct {
		name     string
		known    map[string]projector.Mirror
		appended map[string]observed
		pods     []*corev1.Pod
		want     []string
	}{
		{
			name:  "unchanged mirror: nothing",
			known: map[string]projector.Mirror{"kube-system/a": {UID: "m-a", ConfigMirror: "h", Phase: "Running", Since: 7, ObservedDigest: runningDigest}},
			pods:  []*corev1.Pod{running(mirror("a", "m-a", "h"))},
		},
		{
			name:  "new, changed and missing mirrors",
			known: map[string]projector.Mirror{"kube-system/a": {UID: "m-a", ConfigMirror: "h", Phase: "Pending"}, "kube-system/b": {UID: "m-b", ConfigMirror: "h"}},
			pods:  []*corev1.Pod{running(mirror("a", "m-a", "h")), mirror("c", "m-c", "h2")},
			want: []string{
				"MirrorObserved kube-system/a uid=m-a hash=h deleting=false phase=Running",
				"MirrorGone kube-system/b uid=m-b",
				"MirrorObserved kube-system/c uid=m-c hash=h2 deleting=false phase=Pending",
			},
		},
		{
			name:  "replaced under the same name",
			known: map[string]projector.Mirror{"kube-system/a": {UID: "m-a", ConfigMirror: "h"}},
			pods:  []*corev1.Pod{mirror("a", "m-a2", "h2")},
			want:  []string{"MirrorObserved kube-system/a uid=m-a2 hash=h2 deleting=false phase=Pending"},
		},
		{
			name:     "this run's own word beats a projection that lags",
			known:    map[string]projector.Mirror{"kube-system/a": {UID: "m-a", ConfigMirror: "h", Phase: "Pending", ObservedDigest: pendingDigest}},
			appended: map[string]observed{"kube-system/a": {mirror: projector.Mirror{UID: "m-a", ConfigMirror: "h", Phase: "Running", ObservedDigest: runningDigest}}, "kube-system/z": {gone: true, mirror: projector.Mirror{UID: "m-z"}}},
			pods:     []*corev1.Pod{running(mirror("a", "m-a", "h"))},
		},
		{
			name:  "pods that are not this node's mirrors are ignored",
			known: map[string]projector.Mirror{},
			pods: []*corev1.Pod{
				staticPod("plain", "h"),
				func() *corev1.Pod { p := mirror("other", "m-o", "h"); p.Spec.NodeName = "node2"; return p }(),
			},
		},
		{
			name:  "a mirror whose name a plain pod now holds is gone",
			known: map[string]projector.Mirror{"kube-system/a": {UID: "m-a", ConfigMirror: "h"}},
			pods:  []*corev1.Pod{staticPod("a", "h")},
			want:  []string{"MirrorGone kube-system/a uid=m-a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := testAgent(t, fakeClient(), newMemRecorder(), true, nil)
			for k, v := range tt.appended {
				a.appended[k] = v
			}
			var pods []corev1.Pod
			for _, p := range tt.pods {
				pods = append(pods, *p)
			}
			got := summary(a.listed(pods, tt.known))
			if !slices.Equal(got, tt.want) {
				t.Errorf("events\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestChangedAppendsOnlyChanges(t *testing.T) {
	defer verifyNoLeaks(t)
	deleting := func(p *corev1.Pod) *corev1.Pod { p.DeletionTimestamp = &metav1.Time{Time: time.Unix(1, 0)}; return p }
	known := map[string]projector.Mirror{"kube-system/a": {UID: "m-a", ConfigMirror: "h", Phase: "Pending", ObservedDigest: pendingDigest}}
	steps := []struct {
		typ  watch.EventType
		pod  *corev1.Pod
		want []string
	}{
		{watch.Modified, mirror("a", "m-a", "h"), nil}, // a resync of an unchanged pod
		{watch.Modified, func() *corev1.Pod { p := mirror("a", "m-a", "h"); p.Labels["x"] = "y"; return p }(), nil},
		{watch.Modified, deleting(mirror("a", "m-a", "h")), []string{"MirrorObserved kube-system/a uid=m-a hash=h deleting=true phase=Pending"}},
		{watch.Modified, deleting(mirror("a", "m-a", "h")), nil},
		{watch.Deleted, mirror("a", "m-other", "h"), nil}, // not the mirror the ledger holds
		{watch.Deleted, deleting(mirror("a", "m-a", "h")), []string{"MirrorGone kube-system/a uid=m-a"}},
		{watch.Deleted, mirror("a", "m-a", "h"), nil},
		{watch.Added, staticPod("a", "h"), nil}, // not a mirror
		{watch.Added, mirror("a", "m-a2", "h"), []string{"MirrorObserved kube-system/a uid=m-a2 hash=h deleting=false phase=Pending"}},
	}
	a := testAgent(t, fakeClient(), newMemRecorder(), true, nil)
	for i, s := range steps {
		evs := a.changed(s.typ, s.pod, func() map[string]projector.Mirror { return known })
		if got := summary(evs); !slices.Equal(got, s.want) {
			t.Fatalf("step %d (%s %s): events %q, want %q", i, s.typ, s.pod.UID, got, s.want)
		}
		if err := a.commit(t.Context(), evs); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRunObservesMirrors runs the agent against a fake apiserver: it
// registers the node, renews its lease, and appends mirror changes only.
func TestRunObservesMirrors(t *testing.T) {
	defer verifyNoLeaks(t)
	client := fakeClient(mirror("kept", "m-kept", "h"))
	rec := newMemRecorder()
	// The ledger holds one mirror that is still there and one that is not.
	known := map[string]projector.Mirror{
		"kube-system/kept":     {UID: "m-kept", ConfigMirror: "h", Phase: "Pending", ObservedDigest: pendingDigest},
		"kube-system/vanished": {UID: "m-vanished", ConfigMirror: "h"},
	}
	a := testAgent(t, client, rec, false, func(c *Config) {
		c.Known = func() map[string]projector.Mirror {
			out := map[string]projector.Mirror{}
			for k, v := range known {
				out[k] = v
			}
			for k, v := range rec.known() {
				out[k] = v
			}
			return out
		}
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	got := rec.waitFor(t, "the first listing", hasLine("MirrorsSynced mirrors=1"))
	want := []string{"ApiserverConnected", "MirrorGone kube-system/vanished uid=m-vanished", "MirrorsSynced mirrors=1"}
	if !slices.Equal(got, want) {
		t.Fatalf("events after connecting\n got %q\nwant %q", got, want)
	}

	node, err := client.CoreV1().Nodes().Get(t.Context(), testNode, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if node.Labels["kubernetes.io/hostname"] != testNode || node.Labels["kubernetes.io/os"] != "linux" || node.Labels["beta.kubernetes.io/arch"] != "amd64" {
		t.Errorf("node labels %v", node.Labels)
	}
	if len(node.Spec.Taints) != 1 || node.Spec.Taints[0] != StaticPodsOnlyTaint() {
		t.Errorf("node taints %v", node.Spec.Taints)
	}
	waitUntil(t, "a ready node status and a lease", func() bool {
		node, err := client.CoreV1().Nodes().Get(t.Context(), testNode, metav1.GetOptions{})
		if err != nil || conditionIndex(node.Status.Conditions, corev1.NodeReady) < 0 {
			return false
		}
		ready := node.Status.Conditions[conditionIndex(node.Status.Conditions, corev1.NodeReady)]
		lease, err := client.CoordinationV1().Leases(leaseNamespace).Get(t.Context(), testNode, metav1.GetOptions{})
		return err == nil && ready.Status == corev1.ConditionTrue && leaseOK(lease, node)
	})

	pods := client.CoreV1().Pods("kube-system")
	if _, err := pods.Create(t.Context(), mirror("web", "m-web", "h1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "the new mirror", hasLine("MirrorObserved kube-system/web uid=m-web hash=h1 deleting=false phase=Pending"))
	// Changes the observer does not report, then one it does: only the last is appended.
	web, _ := pods.Get(t.Context(), "web", metav1.GetOptions{})
	web.Labels["touched"] = "1"
	if _, err := pods.Update(t.Context(), web, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Create(t.Context(), staticPod("plain", "h"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	web.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	if _, err := pods.Update(t.Context(), web, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "the mirror deleting", hasLine("MirrorObserved kube-system/web uid=m-web hash=h1 deleting=true phase=Pending"))
	if err := pods.Delete(t.Context(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	got = rec.waitFor(t, "the mirror gone", hasLine("MirrorGone kube-system/web uid=m-web"))
	want = append(want,
		"MirrorObserved kube-system/web uid=m-web hash=h1 deleting=false phase=Pending",
		"MirrorObserved kube-system/web uid=m-web hash=h1 deleting=true phase=Pending",
		"MirrorGone kube-system/web uid=m-web")
	if !slices.Equal(got, want) {
		t.Fatalf("events\n got %q\nwant %q", got, want)
	}
}

// TestRunReconnects: renewals failing for longer than two renew intervals
// are recorded once as a disconnection; the next connection lists again,
// records what went missing meanwhile, and is synced again.
func TestRunReconnects(t *testing.T) {
	defer verifyNoLeaks(t)
	client := fakeClient(mirror("a", "m-a", "h"))
	var failing atomic.Bool
	client.PrependReactor("*", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		if failing.Load() {
			return true, nil, errors.New("connection refused")
		}
		return false, nil, nil
	})
	rec := newMemRecorder()
	a := testAgent(t, client, rec, false, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	rec.waitFor(t, "the first listing", hasLine("MirrorsSynced mirrors=1"))

	failing.Store(true)
	rec.waitFor(t, "the disconnection", func(got []string) bool { return countPrefix(got, "ApiserverDisconnected") == 1 })
	// While disconnected (no watch runs), the mirror is deleted.
	if err := client.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), "kube-system", "a"); err != nil {
		t.Fatal(err)
	}
	failing.Store(false)
	got := rec.waitFor(t, "the second listing", func(got []string) bool { return countPrefix(got, "MirrorsSynced") == 2 })
	want := []string{
		"ApiserverConnected",
		"MirrorObserved kube-system/a uid=m-a hash=h deleting=false phase=Pending",
		"MirrorsSynced mirrors=1",
		"ApiserverDisconnected",
		"ApiserverConnected",
		"MirrorGone kube-system/a uid=m-a",
		"MirrorsSynced mirrors=0",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events\n got %q\nwant %q", got, want)
	}
	for _, ev := range rec.events() {
		if ev.Type() == "ApiserverDisconnected" && !strings.Contains(ev.Data.(interface{ GetReason() string }).GetReason(), "lease renewal failing") {
			t.Errorf("disconnection reason %v", ev.Data)
		}
	}
}

// TestRunStopsWhenTheLogFails: an append error ends Run with an error.
func TestRunStopsWhenTheLogFails(t *testing.T) {
	defer verifyNoLeaks(t)
	rec := newMemRecorder()
	rec.setFail(errors.New("log closed"))
	a := testAgent(t, fakeClient(), rec, false, nil)
	err := a.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "log closed") {
		t.Fatalf("Run: %v, want the append error", err)
	}
}

// TestRunUnregisteredNode: with registration off and no Node, the agent
// records the disconnection once and keeps trying; mirror actions fail fast.
func TestRunUnregisteredNode(t *testing.T) {
	defer verifyNoLeaks(t)
	rec := newMemRecorder()
	a := testAgent(t, fakeClient(), rec, false, func(c *Config) { c.RegisterNode = false })
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	if err := a.Run(ctx); err != nil {
		t.Fatal(err)
	}
	got := summary(rec.events())
	if len(got) != 1 || got[0] != "ApiserverDisconnected" {
		t.Fatalf("events %q, want one ApiserverDisconnected", got)
	}
}

func leaseOK(lease *coordinationv1.Lease, node *corev1.Node) bool {
	s := lease.Spec
	return s.HolderIdentity != nil && *s.HolderIdentity == node.Name && s.LeaseDurationSeconds != nil && *s.LeaseDurationSeconds == 40 &&
		s.RenewTime != nil && len(lease.OwnerReferences) == 1 && lease.OwnerReferences[0].UID == node.UID && lease.OwnerReferences[0].Kind == "Node"
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRunRelistsWhenTheVersionExpires: a watch answered 410 Gone lists
// again; the re-list appends only what changed (a mirror deleted while no
// watch saw it) and no second MirrorsSynced.
func TestRunRelistsWhenTheVersionExpires(t *testing.T) {
	defer verifyNoLeaks(t)
	client := fakeClient(mirror("a", "m-a", "h"), mirror("b", "m-b", "h"))
	var watches atomic.Int32
	client.PrependWatchReactor("pods", func(k8stesting.Action) (bool, watch.Interface, error) {
		if watches.Add(1) > 1 {
			return false, nil, nil
		}
		// Unseen by any watch, b goes; then the watch says the version expired.
		if err := client.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), "kube-system", "b"); err != nil {
			t.Error(err)
		}
		w := watch.NewFakeWithChanSize(1, false)
		w.Error(&metav1.Status{Status: metav1.StatusFailure, Code: 410, Reason: metav1.StatusReasonExpired, Message: "too old resource version"})
		return true, w, nil
	})
	rec := newMemRecorder()
	a := testAgent(t, client, rec, false, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	rec.waitFor(t, "the re-list", hasLine("MirrorGone kube-system/b uid=m-b"))
	// A watch after the re-list runs quietly: nothing more is appended.
	waitUntil(t, "the second watch", func() bool { return watches.Load() >= 2 })
	time.Sleep(100 * time.Millisecond)
	got := summary(rec.events())
	want := []string{
		"ApiserverConnected",
		"MirrorObserved kube-system/a uid=m-a hash=h deleting=false phase=Pending",
		"MirrorObserved kube-system/b uid=m-b hash=h deleting=false phase=Pending",
		"MirrorsSynced mirrors=2",
		"MirrorGone kube-system/b uid=m-b",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events\n got %q\nwant %q", got, want)
	}
}
