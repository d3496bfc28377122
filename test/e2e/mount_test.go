package e2e

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestUnmountedManifestDirKeepsPodsAndRemountRestartsNothing: the manifest
// directory lives on a filesystem that is unmounted (a remount, a disk that
// went away) and mounted again. While it is gone the source is recorded
// unavailable and the pod keeps running — a path that does not exist is not
// the statement "no pods"; when it is back with the same manifest, nothing is
// stopped or started again.
func TestUnmountedManifestDirKeepsPodsAndRemountRestartsNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	mnt := t.TempDir()
	mounted := false
	mount := func() {
		t.Helper()
		if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m,mode=0755"); err != nil {
			t.Fatalf("mount tmpfs on %s: %v", mnt, err)
		}
		mounted = true
	}
	unmount := func() {
		t.Helper()
		if err := syscall.Unmount(mnt, 0); err != nil {
			// A watch or a read in flight: detach it (it goes when unused).
			if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
				t.Fatalf("unmount %s: %v", mnt, err)
			}
		}
		mounted = false
	}
	// Registered before the agent's: runs after it has torn the pod down.
	t.Cleanup(func() {
		if mounted {
			_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	})
	mount()
	a := newAgent(t)
	a.manifests = filepath.Join(mnt, "manifests") // gone with the mount
	if err := os.MkdirAll(a.manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	pod := shPod("keep", "Always", "trap 'exit 0' TERM; while true; do sleep 1; done")
	a.writeManifest("keep.yaml", pod)
	a.start()
	before := a.waitRunning("keep", 60*time.Second)
	id := before.Containers[0].ContainerID

	unavailable, available := len(a.events("", "SourceUnavailable")), len(a.events("", "SourceAvailable"))
	unmount()
	a.waitFor("the source recorded unavailable", 20*time.Second, func() bool {
		return len(a.events("", "SourceUnavailable")) > unavailable
	})
	time.Sleep(3 * time.Second) // a re-list or two (--file-check-frequency 2s)
	if p := a.pod("keep"); p == nil || p.Phase != "Running" || p.Containers[0].ContainerID != id {
		t.Fatalf("with the manifest directory unmounted the pod is %+v; want it kept running (%s)", p, id)
	}

	mount()
	if err := os.MkdirAll(a.manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	a.writeManifest("keep.yaml", pod)
	a.waitFor("the source recorded available again", 20*time.Second, func() bool {
		return len(a.events("", "SourceAvailable")) > available
	})
	time.Sleep(3 * time.Second)
	p := a.pod("keep")
	if p == nil || p.Phase != "Running" || p.Containers[0].ContainerID != id || p.Restarts != 0 {
		t.Fatalf("after the remount the pod is %+v; want the same instance %s running", p, id)
	}
	for _, e := range a.events("keep", "Intent") {
		if d := e["data"].(map[string]any); d["action"] != "RunSandbox" && d["action"] != "StartContainer" {
			t.Errorf("intent %v: nothing but the first sandbox and start was wanted", d)
		}
	}
	if n := len(a.startTimes("keep")); n != 1 {
		t.Errorf("%d StartContainer intents, want 1", n)
	}
	// a.manifests is on the tmpfs: the agent's cleanup removes the pod
	// while it is still mounted.
}
