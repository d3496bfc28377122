package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	criv1 "k8s.io/cri-api/pkg/apis/runtime/v1"

	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

// Lifecycle hooks, as the kubelet's handlerRunner: exec (in the container),
// httpGet (to the pod's IP, or 127.0.0.1 on the host network) and sleep.
// Each runs as a planned action of its own — RunPostStart after a start,
// RunPreStop before a stop — so the log holds when it ran and how it ended,
// and the planner, not this file, decides what follows.

// Hook failures, as the kubelet's event reasons.
const (
	ReasonFailedPostStartHook = "FailedPostStartHook"
	ReasonFailedPreStopHook   = "FailedPreStopHook"
)

// postStartTimeout bounds a postStart hook. The kubelet gives it no bound
// and a hung hook wedges the pod for good; here it fails after this long
// and the container is stopped and restarted under the back-off.
const postStartTimeout = 2 * time.Minute

// runPostStart runs the postStart hook of the container the intent names,
// from the spec it was started from.
func (r *Runtime) runPostStart(ctx context.Context, pod *corev1.Pod, in *pb.Intent) error {
	c, _ := findContainer(pod, in.Container)
	if c == nil || c.Lifecycle == nil || c.Lifecycle.PostStart == nil {
		return fmt.Errorf("postStart hook of %q: not in the spec of %s", in.Container, podString(pod))
	}
	target, err := r.hookTarget(ctx, in.SandboxId, in.ContainerId)
	if err != nil {
		return err
	}
	target.ports, target.env = c.Ports, c.Env
	ctx, cancel := context.WithTimeout(ctx, postStartTimeout)
	defer cancel()
	return r.runHook(ctx, c.Lifecycle.PostStart, target, postStartTimeout)
}

// runPreStop runs the preStop hook the container was created with (its
// annotation, as the kubelet restores it: the container may be of a version
// whose spec is gone), for at most the intent's grace period.
func (r *Runtime) runPreStop(ctx context.Context, in *pb.Intent) error {
	cctx, cancel := r.callCtx(ctx)
	resp, err := r.rs.ContainerStatus(cctx, &criv1.ContainerStatusRequest{ContainerId: in.ContainerId})
	cancel()
	if err != nil {
		return fmt.Errorf("preStop hook: get status of container %s: %w", in.ContainerId, err)
	}
	ann := resp.GetStatus().GetAnnotations()
	var h corev1.LifecycleHandler
	if err := json.Unmarshal([]byte(ann[AnnotationContainerPreStopHandler]), &h); err != nil {
		return fmt.Errorf("preStop hook of container %s: no readable handler in its annotation: %w", in.ContainerId, err)
	}
	target, err := r.hookTarget(ctx, in.SandboxId, in.ContainerId)
	if err != nil {
		return err
	}
	if ports := ann[AnnotationContainerPorts]; ports != "" {
		_ = json.Unmarshal([]byte(ports), &target.ports) // named ports only; a number needs none
	}
	grace := time.Duration(in.GracePeriodSeconds) * time.Second
	ctx, cancelHook := context.WithTimeout(ctx, grace)
	defer cancelHook()
	return r.runHook(ctx, &h, target, grace)
}

// hookTarget is where a hook reaches the container: its ID and its pod's address.
func (r *Runtime) hookTarget(ctx context.Context, sandboxID, containerID string) (probeTarget, error) {
	t := probeTarget{containerID: containerID}
	sb, err := r.SandboxStatus(ctx, sandboxID)
	if err != nil {
		return t, fmt.Errorf("hook of container %s: %w", containerID, err)
	}
	t.host = sb.IP
	if sb.HostNetwork || t.host == "" {
		t.host = "127.0.0.1"
	}
	return t, nil
}

// runHook runs one handler; timeout bounds an exec command.
func (r *Runtime) runHook(ctx context.Context, h *corev1.LifecycleHandler, t probeTarget, timeout time.Duration) error {
	switch {
	case h.Exec != nil:
		vars := map[string]string{}
		for _, ev := range t.env {
			if ev.ValueFrom == nil {
				vars[ev.Name] = expand(ev.Value, vars)
			}
		}
		cmd := make([]string, len(h.Exec.Command))
		for i, a := range h.Exec.Command {
			cmd[i] = expand(a, vars)
		}
		res, err := r.ExecSync(ctx, t.containerID, cmd, timeout)
		if err != nil {
			return err
		}
		if res.ExitCode != 0 {
			return fmt.Errorf("command %q exited with %d: %s", strings.Join(cmd, " "), res.ExitCode,
				truncate(strings.TrimSpace(string(res.Stdout)+string(res.Stderr))))
		}
		return nil
	case h.HTTPGet != nil:
		runner := newProbeRunner(r)
		defer runner.close()
		if res, out := runner.runHTTP(ctx, h.HTTPGet, t, timeout); res != probeSuccess {
			return fmt.Errorf("HTTP lifecycle hook %s failed: %s", h.HTTPGet.Path, out)
		}
		return nil
	case h.Sleep != nil:
		t := time.NewTimer(time.Duration(h.Sleep.Seconds) * time.Second)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			// The grace period ran out first: the stop goes on.
			return fmt.Errorf("sleep hook cut short after the grace period: %w", context.Cause(ctx))
		}
	}
	return errors.New("the hook has no handler the kubelet runs (exec, httpGet or sleep)")
}
