package runtime

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// newOfflineRuntime is a Runtime that never dials its endpoint: for the
// parts that only look at the node.
func newOfflineRuntime(tb testing.TB, dir string) *Runtime {
	tb.Helper()
	r, err := New(Config{Endpoint: "unix://" + filepath.Join(dir, "none.sock"), LogRoot: filepath.Join(dir, "logs"),
		DataDir: filepath.Join(dir, "data"), CgroupRoot: "/ledgerlet-unit", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	return r
}

func TestPodDataPresentLooksAtDataAndEveryHierarchy(t *testing.T) {
	dir := t.TempDir()
	r := newOfflineRuntime(t, dir)
	const dataUID, cgroupUID, goneUID = "11111111-0000-0000-0000-000000000000", "22222222-0000-0000-0000-000000000000", "33333333-0000-0000-0000-000000000000"
	data, err := r.PodDataDir(dataUID)
	if err != nil {
		t.Fatal(err)
	}
	// Two stand-in hierarchies; the pod's cgroup is left in the second only.
	mounts := []string{filepath.Join(dir, "cpu"), filepath.Join(dir, "memory")}
	parent, err := r.PodCgroupParent(cgroupUID)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{data, filepath.Join(mounts[1], parent), mounts[0]} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	seen := dirListings{}
	for _, tc := range []struct {
		uid  string
		want bool
	}{{dataUID, true}, {cgroupUID, true}, {goneUID, false}, {"not-a-uid/..", false}} {
		if got := r.podDataPresent(tc.uid, mounts, seen); got != tc.want {
			t.Errorf("podDataPresent(%s) = %v, want %v", tc.uid, got, tc.want)
		}
	}
	// One listing per parent directory, however many pods are asked about.
	if len(seen) > 4 {
		t.Errorf("listed %d directories for 4 pods in 3 parents: %v", len(seen), seen)
	}
}

func TestDirListingsHas(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d := dirListings{}
	for _, tc := range []struct {
		path string
		want bool
	}{
		{filepath.Join(dir, "a"), true},
		{filepath.Join(dir, "a") + "/", true},
		{filepath.Join(dir, "f"), true},
		{filepath.Join(dir, "b"), false},
		{filepath.Join(dir, "missing", "a"), false},
	} {
		if got := d.has(tc.path); got != tc.want {
			t.Errorf("has(%s) = %v, want %v", tc.path, got, tc.want)
		}
	}
}

// BenchmarkLeftoverCheckTwentyRemovedPods is one pass of the look for
// removed pods' leftovers (the relist's, and every period's while changes
// stream) with 20 pods removed within the recheck window.
func BenchmarkLeftoverCheckTwentyRemovedPods(b *testing.B) {
	r := newOfflineRuntime(b, b.TempDir())
	cleaned := map[string]string{}
	for i := range 20 {
		cleaned[fmt.Sprintf("%08x-0000-0000-0000-000000000000", i)] = "default/p"
	}
	for b.Loop() {
		if evs := r.reappeared(cleaned); len(evs) != 0 {
			b.Fatalf("found %d leftovers on a clean node", len(evs))
		}
	}
}
