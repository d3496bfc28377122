package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"

	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/runtime/containerlogs"
)

// The runtime's half of rotation (a reopened log is written again) and of
// removal (a removed container's log goes; the pod's log directory goes with
// its data).
func TestReopenedLogIsWrittenAndRemovedLogsGo(t *testing.T) {
	r := newTestRuntime(t)
	ctx := context.Background()
	pod := testPod(t, "chatty", corev1.Container{
		Name: "talk", Image: testImage,
		Command: []string{"sh", "-c", "i=0; while true; do i=$((i+1)); echo line $i; sleep 0.05; done"},
	})
	s := startPod(ctx, t, r, pod)
	uid := string(pod.UID)
	live, err := containerlogs.Path(r.cfg.LogRoot, pod.Namespace, pod.Name, uid, "talk", 0)
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, live, "line 3")
	rotated := live + ".20260102-150405"
	if err := os.Rename(live, rotated); err != nil {
		t.Fatal(err)
	}
	if err := r.ReopenContainerLog(ctx, s.containerIDs["talk"]); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	waitLog(t, live, "line")

	id := s.containerIDs["talk"]
	if err := r.StopContainer(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.ReopenContainerLog(ctx, id); err == nil {
		t.Error("reopen of a stopped container succeeded; rotation relies on its failure to put the file back")
	}
	if out := r.Execute(ctx, Job{Pod: "default/chatty", Intent: &pb.Intent{Action: string(pb.ActionRemoveContainer), Uid: uid, Container: "talk", ContainerId: id}}); !out.Ok {
		t.Fatalf("remove container: %s", out.Error)
	}
	for _, f := range []string{live, rotated} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s of the removed container still there (%v)", f, err)
		}
	}
	podDir := filepath.Dir(filepath.Dir(live))
	if _, err := os.Stat(podDir); err != nil {
		t.Fatalf("pod log dir gone with a container, before the pod: %v", err)
	}
	if err := r.StopPodSandbox(ctx, s.sandboxID); err != nil {
		t.Fatal(err)
	}
	if out := r.Execute(ctx, Job{Pod: "default/chatty", Intent: &pb.Intent{Action: string(pb.ActionRemoveSandbox), Uid: uid, SandboxId: s.sandboxID, RemovePodData: true}}); !out.Ok {
		t.Fatalf("remove sandbox with the pod's data: %s", out.Error)
	}
	if _, err := os.Stat(podDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod log dir %s still there after the pod's data went (%v)", podDir, err)
	}
}
