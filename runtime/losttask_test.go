package runtime

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	corev1 "k8s.io/api/core/v1"
	criv1 "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestIsLostTask(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{status.Error(codes.FailedPrecondition, `failed to delete containerd container "c1": cannot delete running task c1: failed precondition`), true},
		{status.Error(codes.Unknown, `failed to set removing state for container "c1": container is in starting state, can't be removed`), false},
		{status.Error(codes.FailedPrecondition, "some other precondition"), false},
		{status.Error(codes.NotFound, "cannot delete running task c1"), false},
		{errors.New("cannot delete running task c1"), false},
		{nil, false},
	} {
		if got := isLostTask(tc.err); got != tc.want {
			t.Errorf("isLostTask(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestRemoveKillsATaskTheRuntimeLostTrackOf is containerd#11037 as it hit the
// kill -9 torture test: a start cut short leaves a task CRI does not track,
// and CRI refuses every removal of its container. The task is made here the
// way the cut-short start leaves it, behind CRI's back through containerd's
// own API (the race itself shows up in about one cut-short start in thirty).
func TestRemoveKillsATaskTheRuntimeLostTrackOf(t *testing.T) {
	r := newTestRuntime(t)
	ctx := context.Background()
	pod := testPod(t, "losttask", corev1.Container{Name: "main", Image: testImage, Command: []string{"sleep", "3600"}})
	sb, err := r.RunPodSandbox(ctx, pod, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { teardown(t, r, pod, started{sandboxID: sb}) })
	id := createContainer(ctx, t, r, pod, &pod.Spec.Containers[0], sb)
	pid := startTaskBehindCRI(ctx, t, r, id)
	if !processAlive(pid) {
		t.Fatalf("the task's process %d is not running", pid)
	}
	// What CRI alone answers: the container is not running, and it cannot go.
	if st, err := r.ContainerStatus(ctx, id); err != nil || st.State == ContainerRunning {
		t.Fatalf("CRI reports %+v (%v), want a container it does not run", st, err)
	}
	if _, err := r.rs.RemoveContainer(ctx, &criv1.RemoveContainerRequest{ContainerId: id}); !isLostTask(err) {
		t.Fatalf("CRI's own removal answered %v, want the lost-task refusal", err)
	}

	if err := r.RemoveContainer(ctx, id); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if _, err := r.ContainerStatus(ctx, id); !isNotFound(err) {
		t.Errorf("container still there after removal: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the task's process %d outlived the removal", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startTaskBehindCRI creates and starts the task of a CRI-created container
// through containerd's snapshots and tasks services, with no stdio, and
// returns its pid. CRI never hears of it.
func startTaskBehindCRI(ctx context.Context, t *testing.T, r *Runtime, id string) int {
	t.Helper()
	call := func(method string, req []byte) []byte {
		resp, err := r.invokeContainerd(ctx, method, req)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		return resp
	}
	// MountsRequest {snapshotter = 1; key = 2}: CRI names the snapshot after the container.
	mounts := call("/containerd.services.snapshots.v1.Snapshots/Mounts", appendString(appendString(nil, 1, "overlayfs"), 2, id))
	// MountsResponse {repeated Mount mounts = 1} → CreateTaskRequest {container_id = 1; repeated Mount rootfs = 3}.
	create := appendString(nil, 1, id)
	if err := eachField(mounts, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num == 1 && typ == protowire.BytesType {
			create = protowire.AppendTag(create, 3, protowire.BytesType)
			create = protowire.AppendBytes(create, v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// CreateTaskResponse {container_id = 1; uint32 pid = 2}.
	var pid int
	if err := eachField(call("/containerd.services.tasks.v1.Tasks/Create", create), func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num == 2 && typ == protowire.VarintType {
			n, _ := protowire.ConsumeVarint(v)
			pid = int(n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	call("/containerd.services.tasks.v1.Tasks/Start", appendString(nil, 1, id))
	return pid
}

// processAlive reports a process that exists (the shim reaps its exits).
func processAlive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }
