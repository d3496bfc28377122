package runtime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	criv1 "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerOptions are the per-run facts CreateContainer needs beyond the pod spec.
type ContainerOptions struct {
	// RestartCount numbers this run of the container: 0 for the first, previous+1 after. It is
	// also the CRI attempt and names the log file, as with the kubelet.
	RestartCount int
	// ImageRef is what EnsureImage returned; empty means the spec's image name.
	ImageRef string
	// Type is ContainerTypeRegular (default) or ContainerTypeInit.
	Type ContainerType
	// Fields feed fieldRef environment variables. An empty PodIP is filled from the sandbox.
	Fields FieldValues
}

// CreateContainer creates (but does not start) container c of pod in sandboxID.
func (r *Runtime) CreateContainer(ctx context.Context, pod *corev1.Pod, c *corev1.Container, sandboxID string, opts ContainerOptions) (string, error) {
	id, err := r.createContainer(ctx, pod, c, sandboxID, opts)
	if err != nil {
		return "", fmt.Errorf("create container %q of %s: %w", c.Name, podString(pod), err)
	}
	r.log.Info("container created", "pod", podString(pod), "container", c.Name, "id", id, "restartCount", opts.RestartCount)
	return id, nil
}

func (r *Runtime) createContainer(ctx context.Context, pod *corev1.Pod, c *corev1.Container, sandboxID string, opts ContainerOptions) (string, error) {
	if opts.Type == "" {
		opts.Type = ContainerTypeRegular
	}
	// The runtime wants the sandbox's config again; rebuild it from the pod with the attempt
	// the sandbox really has, and take the pod IP for status.podIP from the same answer.
	sb, err := r.sandboxStatus(ctx, sandboxID)
	if err != nil {
		return "", err
	}
	if opts.Fields.PodIP == "" {
		opts.Fields.PodIP = sb.GetNetwork().GetIp()
	}
	if len(opts.Fields.PodIPs) == 0 && opts.Fields.PodIP != "" {
		opts.Fields.PodIPs = []string{opts.Fields.PodIP}
		for _, ip := range sb.GetNetwork().GetAdditionalIps() {
			opts.Fields.PodIPs = append(opts.Fields.PodIPs, ip.GetIp())
		}
	}
	sandboxCfg, err := r.sandboxConfig(pod, sb.GetMetadata().GetAttempt())
	if err != nil {
		return "", err
	}

	env, err := ResolveEnv(pod, c, opts.Fields)
	if err != nil {
		return "", err
	}
	mounts, err := r.containerMounts(pod, c, opts.RestartCount)
	if err != nil {
		return "", err
	}
	// The runtime opens the log file but does not create its directory.
	logPath := ContainerLogPath(c.Name, opts.RestartCount)
	if err := os.MkdirAll(filepath.Join(sandboxCfg.LogDirectory, c.Name), 0o755); err != nil {
		return "", fmt.Errorf("create log directory: %w", err)
	}
	image := opts.ImageRef
	if image == "" {
		image = c.Image
	}
	envs := make([]*criv1.KeyValue, len(env))
	for i, e := range env {
		envs[i] = &criv1.KeyValue{Key: e.Name, Value: []byte(e.Value)}
	}
	cfg := &criv1.ContainerConfig{
		Metadata:    &criv1.ContainerMetadata{Name: c.Name, Attempt: uint32(opts.RestartCount)},
		Image:       &criv1.ImageSpec{Image: image, UserSpecifiedImage: c.Image},
		Command:     ExpandCommand(c.Command, env),
		Args:        ExpandCommand(c.Args, env),
		WorkingDir:  c.WorkingDir,
		Envs:        envs,
		Mounts:      mounts,
		Labels:      containerLabels(pod, c, r.cfg.ManagedBy),
		Annotations: containerAnnotations(pod, c, opts.RestartCount, opts.Type),
		LogPath:     logPath,
		Stdin:       c.Stdin,
		StdinOnce:   c.StdinOnce,
		Tty:         c.TTY,
		Linux: &criv1.LinuxContainerConfig{
			Resources:       linuxResources(c),
			SecurityContext: containerSecurityContext(pod, c, r.cfg.SeccompRoot),
		},
	}

	cfg.Linux.Resources.OomScoreAdj = oomScoreAdj(pod, c, nodeMemoryCapacity())

	cctx, cancel := r.callCtx(ctx)
	defer cancel()
	resp, err := r.rs.CreateContainer(cctx, &criv1.CreateContainerRequest{
		PodSandboxId: sandboxID, Config: cfg, SandboxConfig: sandboxCfg,
	})
	if err != nil {
		return "", err
	}
	return resp.ContainerId, nil
}

// StartContainer starts a created container.
func (r *Runtime) StartContainer(ctx context.Context, containerID string) error {
	ctx, cancel := r.callCtx(ctx)
	defer cancel()
	if _, err := r.rs.StartContainer(ctx, &criv1.StartContainerRequest{ContainerId: containerID}); err != nil {
		return fmt.Errorf("start container %s: %w", containerID, err)
	}
	r.log.Info("container started", "id", containerID)
	return nil
}

// StopContainer sends the image's stop signal (SIGTERM by default), waits up to grace, then
// SIGKILLs. Grace is rounded up to whole seconds, the CRI's unit; zero kills at once.
// Stopping a stopped or missing container succeeds.
func (r *Runtime) StopContainer(ctx context.Context, containerID string, grace time.Duration) error {
	secs := int64((grace + time.Second - 1) / time.Second)
	// The call itself lasts up to grace; the timeout must not cut it short.
	ctx, cancel := context.WithTimeout(ctx, grace+r.cfg.RequestTimeout)
	defer cancel()
	start := time.Now()
	if _, err := r.rs.StopContainer(ctx, &criv1.StopContainerRequest{ContainerId: containerID, Timeout: secs}); err != nil {
		if isNotFound(err) {
			return nil
		}
		if r.exitedAfterAll(ctx, containerID) {
			r.log.Info("container stopped (its runtime failed the kill as it exited)", "id", containerID, "grace", secs, "err", err)
			return nil
		}
		return fmt.Errorf("stop container %s with %ds grace: %w", containerID, secs, err)
	}
	r.log.Info("container stopped", "id", containerID, "grace", secs, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// stopRaceWait is how long a failed stop waits for the container to show
// it exited all the same.
const stopRaceWait = 2 * time.Second

// exitedAfterAll reports whether a container whose stop failed has exited
// anyway. containerd 1.6 fails the kill that ends the grace period when the
// container exits at that very moment ("ttrpc: closed": its shim went with
// it), then reports the exit a few ms later; the stop did what it was asked.
func (r *Runtime) exitedAfterAll(ctx context.Context, containerID string) bool {
	deadline := time.Now().Add(stopRaceWait)
	for {
		st, err := r.ContainerStatus(ctx, containerID)
		if isNotFound(err) || (err == nil && st.State == ContainerExited) {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// RemoveContainer deletes a stopped container (a running one is killed first by the
// runtime). Its log file stays. Removing a missing container succeeds.
func (r *Runtime) RemoveContainer(ctx context.Context, containerID string) error {
	ctx, cancel := r.callCtx(ctx)
	defer cancel()
	_, err := r.rs.RemoveContainer(ctx, &criv1.RemoveContainerRequest{ContainerId: containerID})
	if isLostTask(err) {
		// See losttask.go: CRI reports the container stopped, and its task
		// runs on where CRI cannot reach it.
		r.log.Warn("container has a task its runtime lost track of (a start cut short); killing it", "id", containerID)
		if kerr := r.killLostTask(ctx, containerID); kerr != nil {
			return fmt.Errorf("remove container %s: %w; killing the task it has left: %w", containerID, err, kerr)
		}
		_, err = r.rs.RemoveContainer(ctx, &criv1.RemoveContainerRequest{ContainerId: containerID})
	}
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("remove container %s: %w", containerID, err)
	}
	r.log.Info("container removed", "id", containerID)
	return nil
}

// linuxResources maps requests and limits like the kubelet: cpu request → shares, cpu limit →
// CFS quota over a 100ms period, memory limit → hard limit.
func linuxResources(c *corev1.Container) *criv1.LinuxContainerResources {
	const (
		minShares     = 2
		sharesPerCPU  = 1024
		quotaPeriod   = 100000 // µs
		minQuotaValue = 1000
	)
	res := &criv1.LinuxContainerResources{}
	cpuReq, hasReq := c.Resources.Requests[corev1.ResourceCPU]
	cpuLim, hasLim := c.Resources.Limits[corev1.ResourceCPU]
	// The API server defaults a missing request to the limit; static pods skip that step.
	if !hasReq && hasLim {
		cpuReq, hasReq = cpuLim, true
	}
	res.CpuShares = minShares
	if hasReq {
		if s := cpuReq.MilliValue() * sharesPerCPU / 1000; s > minShares {
			res.CpuShares = s
		}
	}
	if hasLim {
		res.CpuPeriod = quotaPeriod
		res.CpuQuota = max(cpuLim.MilliValue()*quotaPeriod/1000, minQuotaValue)
	}
	if mem, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
		res.MemoryLimitInBytes = mem.Value()
	}
	return res
}

// containerSecurityContext merges pod- and container-level settings, container winning, and
// repeats the sandbox's namespace choices (the runtime applies pid/ipc per container).
func containerSecurityContext(pod *corev1.Pod, c *corev1.Container, seccompRoot string) *criv1.LinuxContainerSecurityContext {
	sc := &criv1.LinuxContainerSecurityContext{NamespaceOptions: namespaceOptions(pod)}
	containerSecurityProfiles(pod, c, seccompRoot, sc)
	if psc := pod.Spec.SecurityContext; psc != nil {
		if psc.RunAsUser != nil {
			sc.RunAsUser = &criv1.Int64Value{Value: *psc.RunAsUser}
		}
		if psc.RunAsGroup != nil {
			sc.RunAsGroup = &criv1.Int64Value{Value: *psc.RunAsGroup}
		}
		sc.SupplementalGroups = append(sc.SupplementalGroups, psc.SupplementalGroups...)
		if psc.FSGroup != nil {
			sc.SupplementalGroups = append(sc.SupplementalGroups, *psc.FSGroup)
		}
	}
	csc := c.SecurityContext
	if csc == nil {
		return sc
	}
	if csc.RunAsUser != nil {
		sc.RunAsUser = &criv1.Int64Value{Value: *csc.RunAsUser}
	}
	if csc.RunAsGroup != nil {
		sc.RunAsGroup = &criv1.Int64Value{Value: *csc.RunAsGroup}
	}
	if csc.Privileged != nil {
		sc.Privileged = *csc.Privileged
	}
	if csc.ReadOnlyRootFilesystem != nil {
		sc.ReadonlyRootfs = *csc.ReadOnlyRootFilesystem
	}
	if csc.AllowPrivilegeEscalation != nil {
		sc.NoNewPrivs = !*csc.AllowPrivilegeEscalation
	}
	if caps := csc.Capabilities; caps != nil {
		sc.Capabilities = &criv1.Capability{}
		for _, a := range caps.Add {
			sc.Capabilities.AddCapabilities = append(sc.Capabilities.AddCapabilities, string(a))
		}
		for _, d := range caps.Drop {
			sc.Capabilities.DropCapabilities = append(sc.Capabilities.DropCapabilities, string(d))
		}
	}
	return sc
}
