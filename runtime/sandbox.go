package runtime

import (
	"context"
	"fmt"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	criv1 "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RunPodSandbox creates and starts the sandbox (pause container, namespaces, network) for pod
// and returns its id. attempt distinguishes successive sandboxes of the same pod UID; the
// runtime refuses a second sandbox with the same name, namespace, uid and attempt.
func (r *Runtime) RunPodSandbox(ctx context.Context, pod *corev1.Pod, attempt uint32) (string, error) {
	cfg, err := r.sandboxConfig(pod, attempt)
	if err != nil {
		return "", fmt.Errorf("start sandbox for %s: %w", podString(pod), err)
	}
	// The runtime writes container logs under this directory but does not create it.
	if err := os.MkdirAll(cfg.LogDirectory, 0o755); err != nil {
		return "", fmt.Errorf("start sandbox for %s: create log directory: %w", podString(pod), err)
	}
	if err := r.ensurePodCgroup(pod); err != nil {
		return "", fmt.Errorf("start sandbox for %s: pod cgroup: %w", podString(pod), err)
	}
	ctx, cancel := r.callCtx(ctx)
	defer cancel()
	resp, err := r.rs.RunPodSandbox(ctx, &criv1.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		return "", fmt.Errorf("start sandbox for %s: %w", podString(pod), err)
	}
	r.log.Info("sandbox started", "pod", podString(pod), "sandbox", resp.PodSandboxId, "attempt", attempt)
	return resp.PodSandboxId, nil
}

// StopPodSandbox kills whatever still runs in the sandbox and releases its network. It gives
// containers no grace: stop them with StopContainer first. Stopping a stopped or missing
// sandbox succeeds.
func (r *Runtime) StopPodSandbox(ctx context.Context, sandboxID string) error {
	ctx, cancel := r.callCtx(ctx)
	defer cancel()
	if _, err := r.rs.StopPodSandbox(ctx, &criv1.StopPodSandboxRequest{PodSandboxId: sandboxID}); err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("stop sandbox %s: %w", sandboxID, err)
	}
	r.log.Info("sandbox stopped", "sandbox", sandboxID)
	return nil
}

// RemovePodSandbox deletes a sandbox and any containers still in it. Removing a missing
// sandbox succeeds. The pod cgroup and pod data are separate (RemovePodCgroup, RemovePodData)
// because a pod may get a new sandbox and keep its volumes.
func (r *Runtime) RemovePodSandbox(ctx context.Context, sandboxID string) error {
	ctx, cancel := r.callCtx(ctx)
	defer cancel()
	if _, err := r.rs.RemovePodSandbox(ctx, &criv1.RemovePodSandboxRequest{PodSandboxId: sandboxID}); err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("remove sandbox %s: %w", sandboxID, err)
	}
	r.log.Info("sandbox removed", "sandbox", sandboxID)
	return nil
}

// sandboxConfig is the kubelet's generatePodSandboxConfig, reduced to what static pods use.
// It fails when the pod's log directory or cgroup would not be a plain name under its root.
func (r *Runtime) sandboxConfig(pod *corev1.Pod, attempt uint32) (*criv1.PodSandboxConfig, error) {
	logDir, err := PodLogDir(r.cfg.LogRoot, pod)
	if err != nil {
		return nil, err
	}
	cgroupParent, err := r.PodCgroupParent(string(pod.UID))
	if err != nil {
		return nil, err
	}
	cfg := &criv1.PodSandboxConfig{
		Metadata: &criv1.PodSandboxMetadata{
			Name:      pod.Name,
			Namespace: pod.Namespace,
			Uid:       string(pod.UID),
			Attempt:   attempt,
		},
		LogDirectory: logDir,
		Labels:       sandboxLabels(pod, r.cfg.ManagedBy),
		Annotations:  copyMap(pod.Annotations),
		DnsConfig:    dnsConfig(pod),
		PortMappings: portMappings(pod),
		Linux: &criv1.LinuxPodSandboxConfig{
			CgroupParent: cgroupParent,
			SecurityContext: &criv1.LinuxSandboxSecurityContext{
				NamespaceOptions: namespaceOptions(pod),
				Privileged:       hasPrivilegedContainer(pod),
			},
			Sysctls: sysctls(pod),
		},
	}
	// A hostNetwork pod shares the node's UTS namespace in spirit: the kubelet sends no
	// hostname, and on these machines setting one for a host-network sandbox fails.
	if !pod.Spec.HostNetwork {
		cfg.Hostname = podHostname(pod)
	}
	podSecurityProfiles(pod, r.cfg.SeccompRoot, cfg.Linux.SecurityContext)
	if sc := pod.Spec.SecurityContext; sc != nil {
		lsc := cfg.Linux.SecurityContext
		if sc.RunAsUser != nil {
			lsc.RunAsUser = &criv1.Int64Value{Value: *sc.RunAsUser}
		}
		if sc.RunAsGroup != nil {
			lsc.RunAsGroup = &criv1.Int64Value{Value: *sc.RunAsGroup}
		}
		lsc.SupplementalGroups = append(lsc.SupplementalGroups, sc.SupplementalGroups...)
		if sc.FSGroup != nil {
			lsc.SupplementalGroups = append(lsc.SupplementalGroups, *sc.FSGroup)
		}
	}
	return cfg, nil
}

func namespaceOptions(pod *corev1.Pod) *criv1.NamespaceOption {
	ns := &criv1.NamespaceOption{
		Network: criv1.NamespaceMode_POD,
		Pid:     criv1.NamespaceMode_CONTAINER,
		Ipc:     criv1.NamespaceMode_POD,
	}
	if pod.Spec.HostNetwork {
		ns.Network = criv1.NamespaceMode_NODE
	}
	if pod.Spec.HostIPC {
		ns.Ipc = criv1.NamespaceMode_NODE
	}
	switch {
	case pod.Spec.HostPID:
		ns.Pid = criv1.NamespaceMode_NODE
	case pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace:
		ns.Pid = criv1.NamespaceMode_POD
	}
	return ns
}

// dnsConfig is only sent for dnsPolicy None. Without cluster DNS every other policy resolves
// like the node, which is what the runtime does when given no DNS config.
func dnsConfig(pod *corev1.Pod) *criv1.DNSConfig {
	if pod.Spec.DNSPolicy != corev1.DNSNone || pod.Spec.DNSConfig == nil {
		return nil
	}
	c := pod.Spec.DNSConfig
	out := &criv1.DNSConfig{Servers: c.Nameservers, Searches: c.Searches}
	for _, o := range c.Options {
		if o.Value != nil {
			out.Options = append(out.Options, o.Name+":"+*o.Value)
		} else {
			out.Options = append(out.Options, o.Name)
		}
	}
	return out
}

// portMappings passes hostPort requests on; whether they are honoured depends on the CNI
// configuration (the portmap plugin).
func portMappings(pod *corev1.Pod) []*criv1.PortMapping {
	var out []*criv1.PortMapping
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort == 0 {
				continue
			}
			proto := criv1.Protocol_TCP
			switch p.Protocol {
			case corev1.ProtocolUDP:
				proto = criv1.Protocol_UDP
			case corev1.ProtocolSCTP:
				proto = criv1.Protocol_SCTP
			}
			out = append(out, &criv1.PortMapping{
				Protocol: proto, ContainerPort: p.ContainerPort, HostPort: p.HostPort, HostIp: p.HostIP,
			})
		}
	}
	return out
}

func hasPrivilegedContainer(pod *corev1.Pod) bool {
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range list {
			if c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
				return true
			}
		}
	}
	return false
}

func sysctls(pod *corev1.Pod) map[string]string {
	if pod.Spec.SecurityContext == nil || len(pod.Spec.SecurityContext.Sysctls) == 0 {
		return nil
	}
	out := make(map[string]string, len(pod.Spec.SecurityContext.Sysctls))
	for _, s := range pod.Spec.SecurityContext.Sysctls {
		out[sysctlName(s.Name)] = s.Value
	}
	return out
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// sysctlName converts the API's slash form (net/ipv4/conf/eth0.100/forwarding), where dots
// are part of a component, to the dotted form the runtime writes to /proc/sys.
func sysctlName(s string) string {
	if i := strings.IndexAny(s, "./"); i < 0 || s[i] == '.' {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '.':
			return '/'
		case '/':
			return '.'
		}
		return r
	}, s)
}
