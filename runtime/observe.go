package runtime

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"time"

	criv1 "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// SandboxState is whether a sandbox can host containers.
type SandboxState string

// Sandbox states.
const (
	SandboxReady    SandboxState = "ready"
	SandboxNotReady SandboxState = "notready"
)

// ContainerState is where a container is in its life.
type ContainerState string

// Container states, as the CRI reports them.
const (
	ContainerCreated ContainerState = "created"
	ContainerRunning ContainerState = "running"
	ContainerExited  ContainerState = "exited"
	ContainerUnknown ContainerState = "unknown"
)

// ObservedSandbox is one pod sandbox as the runtime reports it.
type ObservedSandbox struct {
	ID           string
	PodUID       string
	PodName      string
	PodNamespace string
	Attempt      uint32
	State        SandboxState
	CreatedAt    time.Time
	// IP is the pod IP; empty for host-network sandboxes and in lists (see Observe).
	IP          string
	HostNetwork bool
	Labels      map[string]string
	Annotations map[string]string
}

// ObservedContainer is one container as the runtime reports it.
type ObservedContainer struct {
	ID           string
	SandboxID    string
	PodUID       string
	PodName      string
	PodNamespace string
	Name         string
	Attempt      uint32
	// RestartCount and Hash come from our annotations, so they survive an agent restart.
	RestartCount int
	Hash         string
	Type         ContainerType
	Image        string
	ImageRef     string
	State        ContainerState
	CreatedAt    time.Time
	// The fields below need ContainerStatus; lists leave them zero (see Observe).
	StartedAt  time.Time
	FinishedAt time.Time
	ExitCode   int32
	// Reason is the runtime's, e.g. "Completed", "Error", "OOMKilled".
	Reason string
	// Message is the runtime's message or, failing that, the termination-message file.
	Message string
	LogPath string
	// GraceSeconds is the termination grace period of the spec it was
	// created from (our annotation); 0 if unknown.
	GraceSeconds int64
}

// ObservedPod groups what the runtime holds for one pod UID.
type ObservedPod struct {
	UID        string
	Name       string
	Namespace  string
	Sandboxes  []ObservedSandbox   // newest first
	Containers []ObservedContainer // newest first
}

// ListSandboxes lists the sandboxes this agent created (labelled ledgerlet.io/managed=true),
// in any state, without IPs.
func (r *Runtime) ListSandboxes(ctx context.Context) ([]ObservedSandbox, error) {
	out, err := r.listSandboxes(ctx, &criv1.PodSandboxFilter{LabelSelector: map[string]string{LabelManaged: r.cfg.ManagedBy}})
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	return out, nil
}

func (r *Runtime) listSandboxes(ctx context.Context, filter *criv1.PodSandboxFilter) ([]ObservedSandbox, error) {
	ctx, cancel := r.callCtx(ctx)
	defer cancel()
	resp, err := r.rs.ListPodSandbox(ctx, &criv1.ListPodSandboxRequest{Filter: filter})
	if err != nil {
		return nil, err
	}
	out := make([]ObservedSandbox, 0, len(resp.Items))
	for _, s := range resp.Items {
		out = append(out, ObservedSandbox{
			ID:           s.Id,
			PodUID:       s.GetMetadata().GetUid(),
			PodName:      s.GetMetadata().GetName(),
			PodNamespace: s.GetMetadata().GetNamespace(),
			Attempt:      s.GetMetadata().GetAttempt(),
			State:        sandboxState(s.State),
			CreatedAt:    nsTime(s.CreatedAt),
			Labels:       s.Labels,
			Annotations:  s.Annotations,
		})
	}
	return out, nil
}

// ListContainers lists the containers this agent created, in any state, without exit details.
func (r *Runtime) ListContainers(ctx context.Context) ([]ObservedContainer, error) {
	out, _, err := r.listContainers(ctx, &criv1.ContainerFilter{LabelSelector: map[string]string{LabelManaged: r.cfg.ManagedBy}})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	return out, nil
}

// listContainers lists what filter selects, and says for each whose it is
// (its ledgerlet.io/managed label).
func (r *Runtime) listContainers(ctx context.Context, filter *criv1.ContainerFilter) ([]ObservedContainer, []string, error) {
	ctx, cancel := r.callCtx(ctx)
	defer cancel()
	resp, err := r.rs.ListContainers(ctx, &criv1.ListContainersRequest{Filter: filter})
	if err != nil {
		return nil, nil, err
	}
	out := make([]ObservedContainer, 0, len(resp.Containers))
	managedBy := make([]string, 0, len(resp.Containers))
	for _, c := range resp.Containers {
		oc := ObservedContainer{
			ID:        c.Id,
			SandboxID: c.PodSandboxId,
			Name:      c.GetMetadata().GetName(),
			Attempt:   c.GetMetadata().GetAttempt(),
			Image:     c.GetImage().GetImage(),
			ImageRef:  c.ImageRef,
			State:     containerState(c.State),
			CreatedAt: nsTime(c.CreatedAt),
		}
		fillFromLabels(&oc, c.Labels, c.Annotations)
		out = append(out, oc)
		managedBy = append(managedBy, c.Labels[LabelManaged])
	}
	return out, managedBy, nil
}

// SandboxStatus reports one sandbox in full, with its IP.
func (r *Runtime) SandboxStatus(ctx context.Context, sandboxID string) (ObservedSandbox, error) {
	s, err := r.sandboxStatus(ctx, sandboxID)
	if err != nil {
		return ObservedSandbox{}, fmt.Errorf("get status of sandbox %s: %w", sandboxID, err)
	}
	return ObservedSandbox{
		ID:           s.Id,
		PodUID:       s.GetMetadata().GetUid(),
		PodName:      s.GetMetadata().GetName(),
		PodNamespace: s.GetMetadata().GetNamespace(),
		Attempt:      s.GetMetadata().GetAttempt(),
		State:        sandboxState(s.State),
		CreatedAt:    nsTime(s.CreatedAt),
		IP:           s.GetNetwork().GetIp(),
		HostNetwork:  s.GetLinux().GetNamespaces().GetOptions().GetNetwork() == criv1.NamespaceMode_NODE,
		Labels:       s.Labels,
		Annotations:  s.Annotations,
	}, nil
}

func (r *Runtime) sandboxStatus(ctx context.Context, sandboxID string) (*criv1.PodSandboxStatus, error) {
	ctx, cancel := r.callCtx(ctx)
	defer cancel()
	resp, err := r.rs.PodSandboxStatus(ctx, &criv1.PodSandboxStatusRequest{PodSandboxId: sandboxID})
	if err != nil {
		return nil, err
	}
	return resp.GetStatus(), nil
}

// ContainerStatus reports one container in full: times, exit code, reason and message.
func (r *Runtime) ContainerStatus(ctx context.Context, containerID string) (ObservedContainer, error) {
	cctx, cancel := r.callCtx(ctx)
	defer cancel()
	resp, err := r.rs.ContainerStatus(cctx, &criv1.ContainerStatusRequest{ContainerId: containerID})
	if err != nil {
		return ObservedContainer{}, fmt.Errorf("get status of container %s: %w", containerID, err)
	}
	s := resp.GetStatus()
	oc := ObservedContainer{
		ID:         s.Id,
		Name:       s.GetMetadata().GetName(),
		Attempt:    s.GetMetadata().GetAttempt(),
		Image:      s.GetImage().GetImage(),
		ImageRef:   s.ImageRef,
		State:      containerState(s.State),
		CreatedAt:  nsTime(s.CreatedAt),
		StartedAt:  nsTime(s.StartedAt),
		FinishedAt: nsTime(s.FinishedAt),
		ExitCode:   s.ExitCode,
		Reason:     s.Reason,
		Message:    s.Message,
		LogPath:    s.LogPath,
	}
	fillFromLabels(&oc, s.Labels, s.Annotations)
	if oc.State == ContainerExited && oc.Message == "" {
		oc.Message = readTerminationMessage(s)
	}
	return oc, nil
}

// Observe reports every pod this agent has in the runtime: all sandboxes with their status
// and all containers with their full status, grouped by pod UID and sorted by UID. Items that
// disappear between the list and the status call are skipped, not reported as errors,
// because removal racing an observation is normal.
func (r *Runtime) Observe(ctx context.Context) ([]ObservedPod, error) {
	sandboxes, err := r.ListSandboxes(ctx)
	if err != nil {
		return nil, fmt.Errorf("observe: %w", err)
	}
	containers, err := r.ListContainers(ctx)
	if err != nil {
		return nil, fmt.Errorf("observe: %w", err)
	}
	pods := map[string]*ObservedPod{}
	pod := func(uid, name, ns string) *ObservedPod {
		p, ok := pods[uid]
		if !ok {
			p = &ObservedPod{UID: uid, Name: name, Namespace: ns}
			pods[uid] = p
		}
		return p
	}
	for _, sb := range sandboxes {
		full, err := r.SandboxStatus(ctx, sb.ID)
		if err != nil {
			if isNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("observe: %w", err)
		}
		p := pod(full.PodUID, full.PodName, full.PodNamespace)
		p.Sandboxes = append(p.Sandboxes, full)
	}
	for _, c := range containers {
		full, err := r.ContainerStatus(ctx, c.ID)
		if err != nil {
			if isNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("observe: %w", err)
		}
		full.SandboxID = c.SandboxID
		p := pod(full.PodUID, full.PodName, full.PodNamespace)
		p.Containers = append(p.Containers, full)
	}
	out := make([]ObservedPod, 0, len(pods))
	for _, p := range pods {
		sort.Slice(p.Sandboxes, func(i, j int) bool { return p.Sandboxes[i].CreatedAt.After(p.Sandboxes[j].CreatedAt) })
		sort.Slice(p.Containers, func(i, j int) bool { return p.Containers[i].CreatedAt.After(p.Containers[j].CreatedAt) })
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UID < out[j].UID })
	return out, nil
}

func fillFromLabels(oc *ObservedContainer, labels, annotations map[string]string) {
	oc.PodUID = labels[LabelPodUID]
	oc.PodName = labels[LabelPodName]
	oc.PodNamespace = labels[LabelPodNamespace]
	if n := labels[LabelContainerName]; n != "" {
		oc.Name = n
	}
	oc.Hash = annotations[AnnotationContainerHash]
	oc.RestartCount, _ = strconv.Atoi(annotations[AnnotationContainerRestartCount])
	oc.Type = ContainerType(annotations[AnnotationContainerType])
	oc.GraceSeconds, _ = strconv.ParseInt(annotations[AnnotationPodTerminationGracePeriod], 10, 64)
}

// readTerminationMessage reads the host side of the container's terminationMessagePath
// mount, at most 4096 bytes as the kubelet allows.
func readTerminationMessage(s *criv1.ContainerStatus) string {
	want := s.Annotations[AnnotationTerminationMessagePath]
	if want == "" {
		return ""
	}
	for _, m := range s.Mounts {
		if m.ContainerPath != want {
			continue
		}
		f, err := os.Open(m.HostPath)
		if err != nil {
			return ""
		}
		defer f.Close()
		b, _ := io.ReadAll(io.LimitReader(f, 4096))
		return string(b)
	}
	return ""
}

func sandboxState(s criv1.PodSandboxState) SandboxState {
	if s == criv1.PodSandboxState_SANDBOX_READY {
		return SandboxReady
	}
	return SandboxNotReady
}

func containerState(s criv1.ContainerState) ContainerState {
	switch s {
	case criv1.ContainerState_CONTAINER_CREATED:
		return ContainerCreated
	case criv1.ContainerState_CONTAINER_RUNNING:
		return ContainerRunning
	case criv1.ContainerState_CONTAINER_EXITED:
		return ContainerExited
	}
	return ContainerUnknown
}

// nsTime converts CRI nanosecond timestamps; 0 means "not yet" and stays the zero time.
func nsTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}
