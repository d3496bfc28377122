package runtime

import (
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Every path built from a pod's UID stays under its root: a UID that is not
// one plain path component is refused, and nothing is created or removed.
func TestPodPathsNeverLeaveTheirRoot(t *testing.T) {
	root := t.TempDir()
	r := &Runtime{cfg: Config{DataDir: filepath.Join(root, "data", "agent"), LogRoot: filepath.Join(root, "logs", "pods"), CgroupRoot: "/ledgerlet"}}
	victim := filepath.Join(root, "victim")
	if err := os.Mkdir(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, uid := range []string{"../../../escape", "..", ".", "a/b", "", "../../victim", "x\x00"} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-n", Namespace: "default", UID: types.UID(uid)}}
		vol := &corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
		if p, err := r.volumeHostPath(pod, vol); err == nil {
			t.Errorf("uid %q: emptyDir at %s", uid, p)
		}
		c := &corev1.Container{Name: "c"}
		if _, err := r.containerMounts(pod, c, 0); err == nil {
			t.Errorf("uid %q: termination message file created", uid)
		}
		if p, err := r.PodDataDir(uid); err == nil {
			t.Errorf("uid %q: data dir %s", uid, p)
		}
		if err := r.RemovePodData(uid); err == nil {
			t.Errorf("uid %q: RemovePodData succeeded", uid)
		}
		if p, err := PodLogDir(r.cfg.LogRoot, pod); err == nil {
			t.Errorf("uid %q: log dir %s", uid, p)
		}
		if _, err := r.sandboxConfig(pod, 0); err == nil {
			t.Errorf("uid %q: sandbox config built", uid)
		}
		for _, d := range []cgroupDriver{cgroupfsDriver, systemdDriver} {
			if p, err := podCgroupParent(d, "/ledgerlet", uid); err == nil {
				t.Errorf("uid %q: cgroup parent %s", uid, p)
			}
		}
		if _, err := os.Stat(filepath.Join(root, "escape")); err == nil {
			t.Fatalf("uid %q: a directory was created outside the data dir", uid)
		}
		if _, err := os.Stat(victim); err != nil {
			t.Fatalf("uid %q: a directory outside the data dir was removed: %v", uid, err)
		}
	}
	// A plain UID works.
	if p, err := r.EmptyDirPath("6f1c2b0e-7d2a", "scratch"); err != nil || p != filepath.Join(r.cfg.DataDir, "pods", "6f1c2b0e-7d2a", "volumes", "empty-dir", "scratch") {
		t.Errorf("EmptyDirPath = %s, %v", p, err)
	}
}
