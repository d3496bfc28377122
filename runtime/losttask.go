package runtime

import (
	"context"
	"fmt"
	"strings"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// A start cut short can leave containerd's CRI plugin with a container it
// reports exited (reason StartError, "failed to create containerd task:
// failed to get task pid: context canceled") while the task it was creating
// lives on in the shim: the plugin's clean-up of a failed start only covers a
// task whose creation returned (containerd#11037, in 1.6 through 2.x). Every
// RemoveContainer then fails with "cannot delete running task", and the pod
// never gets its container back. The agent's own start can be cut short by
// its request timeout, or by the agent being killed mid-call (kill -9 with
// starts in flight made this happen in CI).
//
// CRI offers nothing to stop a container it reports exited, so the removal
// goes one level down, to containerd's tasks service on the same socket:
// kill the task, wait for it to exit, delete it, and remove again. This is
// done only when CRI's own answer names the leftover task, so it cannot
// touch a container CRI still runs, and it is part of the RemoveContainer
// step the planner recorded: a crash midway leaves the same state and the
// same step to retry.

// isLostTask reports CRI refusing a removal because a task it does not
// track still exists.
func isLostTask(err error) bool {
	return status.Code(err) == codes.FailedPrecondition &&
		strings.Contains(status.Convert(err).Message(), "cannot delete running task")
}

const (
	containerdTaskKill   = "/containerd.services.tasks.v1.Tasks/Kill"
	containerdTaskWait   = "/containerd.services.tasks.v1.Tasks/Wait"
	containerdTaskDelete = "/containerd.services.tasks.v1.Tasks/Delete"
)

// killLostTask kills the task of containerID, waits for it to exit and
// deletes it, through containerd's tasks service. A task already gone is
// not an error: the CRI plugin may have reaped it meanwhile.
func (r *Runtime) killLostTask(ctx context.Context, containerID string) error {
	// KillRequest {container_id = 1; exec_id = 2; uint32 signal = 3; bool all = 4}:
	// all, so nothing the task forked survives it.
	kill := appendString(nil, 1, containerID)
	kill = protowire.AppendTag(kill, 3, protowire.VarintType)
	kill = protowire.AppendVarint(kill, uint64(syscall.SIGKILL))
	kill = protowire.AppendTag(kill, 4, protowire.VarintType)
	kill = protowire.AppendVarint(kill, 1)
	if _, err := r.invokeContainerd(ctx, containerdTaskKill, kill); err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("kill task: %w", err)
	}
	// WaitRequest and DeleteTaskRequest: {container_id = 1}. The delete
	// refuses a task whose process has not been reaped, hence the wait.
	byID := appendString(nil, 1, containerID)
	if _, err := r.invokeContainerd(ctx, containerdTaskWait, byID); err != nil && !isNotFound(err) {
		return fmt.Errorf("wait for the killed task: %w", err)
	}
	if _, err := r.invokeContainerd(ctx, containerdTaskDelete, byID); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete task: %w", err)
	}
	return nil
}
