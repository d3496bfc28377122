package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func downwardPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-node1", Namespace: "default", UID: "u1",
			Labels:      map[string]string{"tier": "web", "app": "a\"b"},
			Annotations: map[string]string{"kubernetes.io/config.source": "file"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{
			Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}}}}},
	}
}

func TestDownwardAPIFilesAreTheKubeletsFormat(t *testing.T) {
	mode := int32(0o600)
	item := func(path, field string) corev1.DownwardAPIVolumeFile {
		return corev1.DownwardAPIVolumeFile{Path: path, FieldRef: &corev1.ObjectFieldSelector{FieldPath: field}}
	}
	tests := []struct {
		name string
		vol  corev1.VolumeSource
		want map[string]string // path: content
	}{
		{"metadata", corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
			item("name", "metadata.name"), item("ns", "metadata.namespace"), item("uid", "metadata.uid"),
			item("labels", "metadata.labels"), item("annotations", "metadata.annotations"), item("sub/tier", "metadata.labels['tier']"),
		}}}, map[string]string{
			"name": "web-node1", "ns": "default", "uid": "u1",
			"labels": "app=\"a\\\"b\"\ntier=\"web\"", "annotations": `kubernetes.io/config.source="file"`, "sub/tier": "web",
		}},
		{"projected resources", corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{
				{Path: "mem", Mode: &mode, ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "c", Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}},
			}}},
		}}}, map[string]string{"mem": "64"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, err := downwardAPIFiles(downwardPod(), &corev1.Volume{Name: "v", VolumeSource: tt.vol})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, f := range files {
				got[f.path] = f.content
			}
			for p, want := range tt.want {
				if got[p] != want {
					t.Errorf("%s = %q, want %q", p, got[p], want)
				}
			}
			if len(got) != len(tt.want) {
				t.Errorf("files %v, want %v", got, tt.want)
			}
		})
	}
}

func TestVolumeFilesAreReplacedAndStaleOnesRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "v")
	if err := writeVolumeFiles(dir, []downwardAPIFile{{"a", "1", 0o644}, {"old/b", "2", 0o644}}); err != nil {
		t.Fatal(err)
	}
	if err := writeVolumeFiles(dir, []downwardAPIFile{{"a", "3", 0o600}}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "a"))
	if err != nil || string(b) != "3" {
		t.Fatalf("a = %q, %v", b, err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "a")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(dir, "old", "b")); !os.IsNotExist(err) {
		t.Fatalf("a file of the earlier version is still there: %v", err)
	}
	if err := writeVolumeFiles(dir, []downwardAPIFile{{"../escape", "x", 0o644}}); err == nil || !strings.Contains(err.Error(), "inside the volume") {
		t.Fatalf("a path leaving the volume was written: %v", err)
	}
}

func TestMemoryEmptyDirIsATmpfsUnmountedWithThePod(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	pod := filepath.Join(t.TempDir(), "pod")
	dir := filepath.Join(pod, "volumes", "empty-dir", "cache")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := mountTmpfs(dir, 1<<20); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unmountEmptyDirs(pod) }()
	// A second container of the pod finds it mounted and keeps it.
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := mountTmpfs(dir, 1<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "f")); err != nil {
		t.Fatalf("remounted over the contents: %v", err)
	}
	// sizeLimit is enforced.
	if err := os.WriteFile(filepath.Join(dir, "big"), make([]byte, 2<<20), 0o644); err == nil {
		t.Fatal("wrote 2 MiB into a 1 MiB tmpfs")
	}
	if err := unmountEmptyDirs(pod); err != nil {
		t.Fatal(err)
	}
	if m, _ := isMountPoint(dir); m {
		t.Fatal("still mounted")
	}
	if err := os.RemoveAll(pod); err != nil {
		t.Fatal(err)
	}
}
