package runtime

import (
	"context"
	"fmt"

	criv1 "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ledgerlet/ledgerlet/runtime/containerlogs"
)

// LogRoot is the root of the pod log directories (Config.LogRoot).
func (r *Runtime) LogRoot() string { return r.cfg.LogRoot }

// ReopenContainerLog asks the runtime to write a running container's log to
// a new file at its path: the rotation (containerlogs.Rotator) renamed the
// old one. It fails when the container is not running.
func (r *Runtime) ReopenContainerLog(ctx context.Context, containerID string) error {
	ctx, cancel := r.callCtx(ctx)
	defer cancel()
	if _, err := r.rs.ReopenContainerLog(ctx, &criv1.ReopenContainerLogRequest{ContainerId: containerID}); err != nil {
		return fmt.Errorf("reopen log of container %s: %w", containerID, err)
	}
	return nil
}

// removeContainerLog deletes a container instance's log, rotated files
// included, before the container itself goes, as the kubelet does: a
// container the planner removes is one whose log nobody will ask for (the
// previous dead instance of each container is kept, and its log with it).
// A container the runtime no longer knows has nothing left to find its log
// by; the pod's log directory goes with the pod's data.
func (r *Runtime) removeContainerLog(ctx context.Context, containerID string) error {
	oc, err := r.ContainerStatus(ctx, containerID)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("find log of container %s: %w", containerID, err)
	}
	live, err := containerlogs.Path(r.cfg.LogRoot, oc.PodNamespace, oc.PodName, oc.PodUID, oc.Name, uint32(oc.RestartCount))
	if err != nil {
		return nil // labels that name no log we made
	}
	if err := containerlogs.RemoveInstance(live); err != nil {
		return fmt.Errorf("remove log of container %s: %w", containerID, err)
	}
	return nil
}
