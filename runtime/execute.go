package runtime

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/runtime/containerlogs"
)

// Execute carries out one runtime-lane intent (Runtime is the runtime
// lane's Effector). job.Spec is the spec the intent was planned from; it is
// nil for teardown of a pod no manifest names any more.
func (r *Runtime) Execute(ctx context.Context, job Job) *pb.Outcome {
	out, err := r.execute(ctx, job.Spec, job.Intent)
	if err != nil {
		out.Ok = false
		out.Error = err.Error()
		if out.Reason == "" {
			out.Reason = pb.ReasonRuntimeError
		}
		return out
	}
	out.Ok = true
	return out
}

func (r *Runtime) execute(ctx context.Context, pod *corev1.Pod, in *pb.Intent) (*pb.Outcome, error) {
	out := &pb.Outcome{}
	switch pb.Action(in.Action) {
	case pb.ActionRunSandbox:
		if pod == nil {
			return out, fmt.Errorf("run sandbox: no spec for uid %s", in.Uid)
		}
		id, err := r.RunPodSandbox(ctx, pod, in.Attempt)
		if err != nil {
			out.Reason = createReason(err, "SandboxCreateError")
			return out, err
		}
		out.SandboxId = id
		// A host-network sandbox has no address of its own (CRI reports
		// none; the pod's IP is the node's), so asking would only put one
		// more CRI round trip between the sandbox and its containers.
		if !pod.Spec.HostNetwork {
			if st, err := r.SandboxStatus(ctx, id); err == nil {
				out.Ip = st.IP
			}
		}
		return out, nil

	case pb.ActionStartContainer:
		if pod == nil {
			return out, fmt.Errorf("start container: no spec for uid %s", in.Uid)
		}
		c, typ := findContainer(pod, in.Container)
		if c == nil {
			out.Reason = "CreateContainerConfigError"
			return out, fmt.Errorf("start container %q: not in the spec of %s/%s", in.Container, pod.Namespace, pod.Name)
		}
		ref, err := r.EnsureImage(ctx, pod, c)
		if err != nil {
			out.Reason = imageReason(err)
			return out, err
		}
		out.ImageRef = ref
		if err := r.checkRunAsNonRoot(ctx, pod, c, ref); err != nil {
			out.Reason = string(ErrCreateContainerConfig)
			return out, err
		}
		id, err := r.CreateContainer(ctx, pod, c, in.SandboxId, ContainerOptions{
			RestartCount: int(in.Attempt), ImageRef: ref, Type: typ,
			Fields: FieldValues{NodeName: pod.Spec.NodeName, HostIP: r.cfg.HostIP},
		})
		if err != nil {
			out.Reason = createReason(err, "CreateContainerError")
			return out, err
		}
		if err := r.StartContainer(ctx, id); err != nil {
			// A created-but-never-started container would block the pod:
			// remove it so the retry starts clean.
			if rerr := r.RemoveContainer(context.WithoutCancel(ctx), id); rerr != nil {
				r.log.Warn("remove container that failed to start", "id", id, "err", rerr)
			}
			out.Reason = "RunContainerError"
			return out, err
		}
		out.ContainerId = id
		return out, nil

	case pb.ActionStopContainer:
		grace := time.Duration(in.GracePeriodSeconds) * time.Second
		if err := r.StopContainer(ctx, in.ContainerId, grace); err != nil && !isNotFound(err) {
			return out, err
		}
		return out, nil

	case pb.ActionRemoveContainer:
		if err := r.removeContainerLog(ctx, in.ContainerId); err != nil {
			return out, err
		}
		if err := r.RemoveContainer(ctx, in.ContainerId); err != nil && !isNotFound(err) {
			return out, err
		}
		return out, nil

	case pb.ActionStopSandbox:
		if err := r.StopPodSandbox(ctx, in.SandboxId); err != nil && !isNotFound(err) {
			return out, err
		}
		return out, nil

	case pb.ActionRemoveSandbox:
		if err := r.RemovePodSandbox(ctx, in.SandboxId); err != nil && !isNotFound(err) {
			return out, err
		}
		if in.RemovePodData {
			return out, r.removePodLeftovers(in.Uid)
		}
		return out, nil

	case pb.ActionCleanupPod:
		return out, r.removePodLeftovers(in.Uid)

	case pb.ActionRunPostStart:
		if pod == nil {
			out.Reason = ReasonFailedPostStartHook
			return out, fmt.Errorf("postStart hook: no spec for uid %s", in.Uid)
		}
		if err := r.runPostStart(ctx, pod, in); err != nil {
			out.Reason = ReasonFailedPostStartHook
			return out, err
		}
		return out, nil

	case pb.ActionRunPreStop:
		if err := r.runPreStop(ctx, in); err != nil {
			out.Reason = ReasonFailedPreStopHook
			return out, err
		}
		return out, nil
	}
	return out, fmt.Errorf("unknown action %q", in.Action)
}

func findContainer(pod *corev1.Pod, name string) (*corev1.Container, ContainerType) {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i], ContainerTypeInit
		}
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i], ContainerTypeRegular
		}
	}
	return nil, ""
}

func imageReason(err error) string {
	var reason Reason
	if errors.As(err, &reason) {
		return string(reason)
	}
	return "ErrImagePull"
}

// removePodLeftovers removes what a pod leaves on the node beside runtime
// objects: containerd leaves the pod's cgroup parent behind; emptyDirs and
// the pod's log directory are ours.
func (r *Runtime) removePodLeftovers(uid string) error {
	if err := r.RemovePodCgroup(uid); err != nil {
		return fmt.Errorf("remove cgroup of pod %s: %w", uid, err)
	}
	if err := r.RemovePodData(uid); err != nil {
		return fmt.Errorf("remove data of pod %s: %w", uid, err)
	}
	if err := containerlogs.RemovePod(r.cfg.LogRoot, uid); err != nil {
		return err
	}
	return nil
}

// createReason names a failed create: NameReserved when containerd still
// holds the name for an earlier run's create (its "is reserved for" error),
// which the planner retries soon instead of backing off like a real error.
func createReason(err error, otherwise string) string {
	if strings.Contains(err.Error(), "is reserved for") {
		return pb.ReasonNameReserved
	}
	return otherwise
}
