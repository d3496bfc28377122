package runtime

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	criv1 "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ExecResult is what a command run in a container by ExecSync produced.
type ExecResult struct {
	Stdout, Stderr []byte
	ExitCode       int32
}

// ErrExecTimeout: the command did not finish within its timeout (the
// runtime killed it). A probe counts that as a failure.
var ErrExecTimeout = errors.New("command timed out")

// ExecSync runs cmd in a running container and waits for it, at most
// timeout (the CRI's unit is the second; zero means no limit). A command
// that ran and exited non-zero is not an error: see ExecResult.ExitCode. A
// command that timed out returns an error wrapping ErrExecTimeout; any other
// error means the runtime could not run it (the container is not running,
// the runtime does not answer…).
func (r *Runtime) ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (ExecResult, error) {
	secs := int64((timeout + time.Second - 1) / time.Second)
	// As the kubelet: the command's own timeout, plus room for the runtime
	// to clean up, bounds the call.
	ctx, cancel := context.WithTimeout(ctx, timeout+r.cfg.RequestTimeout)
	defer cancel()
	resp, err := r.rs.ExecSync(ctx, &criv1.ExecSyncRequest{ContainerId: containerID, Cmd: cmd, Timeout: secs})
	if err != nil {
		if isExecTimeout(err) {
			return ExecResult{}, fmt.Errorf("exec %q in container %s: %w after %ds", strings.Join(cmd, " "), containerID, ErrExecTimeout, secs)
		}
		return ExecResult{}, fmt.Errorf("exec %q in container %s: %w", strings.Join(cmd, " "), containerID, err)
	}
	return ExecResult{Stdout: resp.Stdout, Stderr: resp.Stderr, ExitCode: resp.ExitCode}, nil
}

// isExecTimeout recognises the runtime's answer for a command that outlived
// its timeout: DeadlineExceeded, or (containerd 1.6) an Unknown error saying
// the timeout was exceeded.
func isExecTimeout(err error) bool {
	st := status.Convert(err)
	if st.Code() == codes.DeadlineExceeded {
		return true
	}
	msg := st.Message()
	return strings.Contains(msg, "timeout") && strings.Contains(msg, "exceeded")
}
