package runtime

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func res(req, lim map[corev1.ResourceName]string) corev1.ResourceRequirements {
	conv := func(m map[corev1.ResourceName]string) corev1.ResourceList {
		if m == nil {
			return nil
		}
		out := corev1.ResourceList{}
		for k, v := range m {
			out[k] = resource.MustParse(v)
		}
		return out
	}
	return corev1.ResourceRequirements{Requests: conv(req), Limits: conv(lim)}
}

// TestPodCgroupLimitsAreTheKubelets: the pod's own cgroup gets the kubelet's
// ResourceConfigForPod: shares from requests, a quota and a memory limit only
// when every container has one, init containers counted by their peak.
func TestPodCgroupLimitsAreTheKubelets(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	type C = corev1.Container
	tests := []struct {
		name      string
		init, app []C
		want      podCgroupLimits
	}{
		{"best effort", nil, []C{{Name: "a"}}, podCgroupLimits{cpuShares: 2, cpuQuotaUS: -1, memoryBytes: -1}},
		{"requests only (kubeadm's control plane)", nil,
			[]C{{Name: "a", Resources: res(map[corev1.ResourceName]string{"cpu": "250m"}, nil)}},
			podCgroupLimits{cpuShares: 256, cpuQuotaUS: -1, memoryBytes: -1}},
		{"guaranteed, two containers", nil, []C{
			{Name: "a", Resources: res(nil, map[corev1.ResourceName]string{"cpu": "500m", "memory": "64Mi"})},
			{Name: "b", Resources: res(nil, map[corev1.ResourceName]string{"cpu": "1", "memory": "32Mi"})},
		}, podCgroupLimits{cpuShares: 1536, cpuQuotaUS: 150000, memoryBytes: 96 << 20}},
		{"one container without a memory limit leaves memory unbounded", nil, []C{
			{Name: "a", Resources: res(nil, map[corev1.ResourceName]string{"cpu": "500m", "memory": "64Mi"})},
			{Name: "b", Resources: res(nil, map[corev1.ResourceName]string{"cpu": "500m"})},
		}, podCgroupLimits{cpuShares: 1024, cpuQuotaUS: 100000, memoryBytes: -1}},
		{"a big init container sets the peak", []C{
			{Name: "i", Resources: res(nil, map[corev1.ResourceName]string{"cpu": "2", "memory": "1Gi"})},
		}, []C{
			{Name: "a", Resources: res(nil, map[corev1.ResourceName]string{"cpu": "500m", "memory": "64Mi"})},
		}, podCgroupLimits{cpuShares: 2048, cpuQuotaUS: 200000, memoryBytes: 1 << 30}},
		{"a sidecar adds to the app containers", []C{
			{Name: "s", RestartPolicy: &always, Resources: res(nil, map[corev1.ResourceName]string{"cpu": "100m", "memory": "16Mi"})},
		}, []C{
			{Name: "a", Resources: res(nil, map[corev1.ResourceName]string{"cpu": "500m", "memory": "64Mi"})},
		}, podCgroupLimits{cpuShares: 614, cpuQuotaUS: 60000, memoryBytes: 80 << 20}},
		{"a tiny limit gets the kubelet's 1 ms quota floor", nil, []C{
			{Name: "a", Resources: res(nil, map[corev1.ResourceName]string{"cpu": "1m"})},
		}, podCgroupLimits{cpuShares: 2, cpuQuotaUS: 1000, memoryBytes: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &corev1.Pod{Spec: corev1.PodSpec{InitContainers: tt.init, Containers: tt.app}}
			if got := podLimits(p); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestPodCgroupHoldsThePodsLimits: on the real runtime, the pod's cgroup has
// the limits before the sandbox runs in it, and the containers run below it.
func TestPodCgroupHoldsThePodsLimits(t *testing.T) {
	r := newTestRuntime(t)
	if r.driver != cgroupfsDriver {
		t.Skip("pod cgroup limits are set with the cgroupfs driver only")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pod := testPod(t, "limits", corev1.Container{Name: "main", Image: testImage, Command: []string{"sleep", "3600"},
		Resources: res(nil, map[corev1.ResourceName]string{"cpu": "300m", "memory": "48Mi"})})
	startPod(ctx, t, r, pod)
	parent, err := r.PodCgroupParent(string(pod.UID))
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := cgroupMountsWithTypes(r.cfg.CgroupFS)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, m := range mounts {
		dir := filepath.Join(m.path, parent)
		want := map[string]string{}
		switch {
		case m.v2 && m.controllers["memory"]:
			want = map[string]string{"memory.max": "50331648", "cpu.max": "30000 100000"}
		case m.v2:
		case m.controllers["memory"]:
			want = map[string]string{"memory.limit_in_bytes": "50331648"}
		case m.controllers["cpu"]:
			want = map[string]string{"cpu.cfs_quota_us": "30000", "cpu.cfs_period_us": "100000", "cpu.shares": "307"}
		}
		for f, v := range want {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(b)); got != v {
				t.Errorf("%s/%s = %s, want %s", dir, f, got, v)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no cgroup controller hierarchy found to check")
	}
}

// TestLocalhostSeccompProfileIsEnforced: a Localhost profile is read from
// the seccomp root and applied: a container whose profile forbids mkdir
// cannot make a directory, one without it can.
func TestLocalhostSeccompProfileIsEnforced(t *testing.T) {
	base := newTestRuntime(t)
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "no-mkdir.json"), []byte(`{"defaultAction":"SCMP_ACT_ALLOW",
		"syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := base.cfg
	cfg.SeccompRoot = root
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() }) // after the pods' teardowns, registered later
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	profile := "no-mkdir.json"
	run := func(name string, sp *corev1.SeccompProfile) string {
		pod := testPod(t, name, corev1.Container{Name: "main", Image: testImage,
			Command:         []string{"sh", "-c", "mkdir /tmp/d && echo made > /dev/termination-log; sleep 3600"},
			SecurityContext: &corev1.SecurityContext{SeccompProfile: sp}})
		s := startPod(ctx, t, r, pod)
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			out, err := r.ExecSync(ctx, s.containerIDs["main"], []string{"sh", "-c", "test -d /tmp/d && echo yes || echo no"}, 5*time.Second)
			if err == nil && len(out.Stdout) > 0 {
				return strings.TrimSpace(string(out.Stdout))
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("%s: exec never answered", name)
		return ""
	}
	if got := run("seccomp-local", &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: &profile}); got != "no" {
		t.Errorf("under the Localhost profile the directory was made (%q)", got)
	}
	if got := run("seccomp-default", &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}); got != "yes" {
		t.Errorf("under RuntimeDefault the directory was not made (%q)", got)
	}
}
