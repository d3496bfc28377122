package runtime

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"path/filepath"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Label and annotation keys written on sandboxes and containers. The io.kubernetes.* ones are
// the kubelet's (pkg/kubelet/types/labels.go, pkg/kubelet/kuberuntime/labels.go) so that
// crictl and log shippers that understand kubelet pods understand ours.
const (
	LabelPodName       = "io.kubernetes.pod.name"
	LabelPodNamespace  = "io.kubernetes.pod.namespace"
	LabelPodUID        = "io.kubernetes.pod.uid"
	LabelContainerName = "io.kubernetes.container.name"
	// LabelManaged marks what an agent created; its value is the agent's
	// Config.ManagedBy (the node name), and listing reports only an agent's own.
	LabelManaged = "ledgerlet.io/managed"

	AnnotationContainerHash              = "io.kubernetes.container.hash"
	AnnotationContainerRestartCount      = "io.kubernetes.container.restartCount"
	AnnotationTerminationMessagePath     = "io.kubernetes.container.terminationMessagePath"
	AnnotationTerminationMessagePolicy   = "io.kubernetes.container.terminationMessagePolicy"
	AnnotationContainerPreStopHandler    = "io.kubernetes.container.preStopHandler"
	AnnotationContainerPorts             = "io.kubernetes.container.ports"
	AnnotationContainerType              = "io.kubernetes.container.type"
	AnnotationPodTerminationGracePeriod  = "io.kubernetes.pod.terminationGracePeriod"
	AnnotationPodDeletionGracePeriod     = "io.kubernetes.pod.deletionGracePeriod"
	defaultTerminationMessagePath        = "/dev/termination-log"
	maxHostnameLen                       = 63
	terminationMessageFileSuffix         = ".termination-log"
	managedValue                         = "true"
	defaultTerminationMessagePolicy      = corev1.TerminationMessageReadFile
	defaultTerminationGracePeriodSeconds = 30
)

// ContainerType says which list of the pod spec a container came from.
type ContainerType string

// Container types, as in the kubelet's io.kubernetes.container.type annotation.
const (
	ContainerTypeRegular ContainerType = "container"
	ContainerTypeInit    ContainerType = "init"
)

// sandboxLabels are the pod's own labels overlaid by the identity labels; identity wins so a
// pod cannot masquerade as another by labelling itself io.kubernetes.pod.uid.
func sandboxLabels(pod *corev1.Pod, managedBy string) map[string]string {
	labels := make(map[string]string, len(pod.Labels)+4)
	for k, v := range pod.Labels {
		labels[k] = v
	}
	labels[LabelPodName] = pod.Name
	labels[LabelPodNamespace] = pod.Namespace
	labels[LabelPodUID] = string(pod.UID)
	labels[LabelManaged] = managedBy
	return labels
}

// containerLabels are what the kubelet puts on a container (not the pod's labels) plus ours.
func containerLabels(pod *corev1.Pod, c *corev1.Container, managedBy string) map[string]string {
	return map[string]string{
		LabelPodName:       pod.Name,
		LabelPodNamespace:  pod.Namespace,
		LabelPodUID:        string(pod.UID),
		LabelContainerName: c.Name,
		LabelManaged:       managedBy,
	}
}

// containerAnnotations carry what the kubelet needs to understand a container after a restart
// of the agent: which spec it ran (hash), how many times it restarted, and how to stop it.
func containerAnnotations(pod *corev1.Pod, c *corev1.Container, restartCount int, typ ContainerType) map[string]string {
	a := map[string]string{
		AnnotationContainerHash:            ContainerHash(c),
		AnnotationContainerRestartCount:    strconv.Itoa(restartCount),
		AnnotationTerminationMessagePath:   terminationMessagePath(c),
		AnnotationTerminationMessagePolicy: string(terminationMessagePolicy(c)),
		AnnotationContainerType:            string(typ),
	}
	grace := int64(defaultTerminationGracePeriodSeconds)
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		grace = *pod.Spec.TerminationGracePeriodSeconds
	}
	a[AnnotationPodTerminationGracePeriod] = strconv.FormatInt(grace, 10)
	if pod.DeletionGracePeriodSeconds != nil {
		a[AnnotationPodDeletionGracePeriod] = strconv.FormatInt(*pod.DeletionGracePeriodSeconds, 10)
	}
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		if b, err := json.Marshal(c.Lifecycle.PreStop); err == nil {
			a[AnnotationContainerPreStopHandler] = string(b)
		}
	}
	if len(c.Ports) > 0 {
		if b, err := json.Marshal(c.Ports); err == nil {
			a[AnnotationContainerPorts] = string(b)
		}
	}
	return a
}

// ContainerHash is the kubelet's container hash (since 1.31, PR #124220): FNV-32a over the
// JSON of {name, image} as printed by go-spew's "%#v", in lower-case hex. The spew wrapping
// is reproduced byte for byte ("([]uint8)[123 34 ...]") rather than imported, so the value
// equals what a kubelet would compute and adoption by either agent sees "unchanged".
func ContainerHash(c *corev1.Container) string {
	b, _ := json.Marshal(map[string]string{"name": c.Name, "image": c.Image}) // cannot fail
	var sb strings.Builder
	sb.Grow(len(b)*4 + 12)
	sb.WriteString("([]uint8)[")
	for i, x := range b {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(strconv.Itoa(int(x)))
	}
	sb.WriteString("]")
	h := fnv.New32a()
	_, _ = h.Write([]byte(sb.String()))
	return strconv.FormatUint(uint64(h.Sum32()), 16)
}

func terminationMessagePath(c *corev1.Container) string {
	if c.TerminationMessagePath == "" {
		return defaultTerminationMessagePath
	}
	return c.TerminationMessagePath
}

func terminationMessagePolicy(c *corev1.Container) corev1.TerminationMessagePolicy {
	if c.TerminationMessagePolicy == "" {
		return defaultTerminationMessagePolicy
	}
	return c.TerminationMessagePolicy
}

// PodLogDir is the kubelet's pod log directory: <root>/<namespace>_<name>_<uid>. It is an
// error unless that is one plain path component under root.
func PodLogDir(root string, pod *corev1.Pod) (string, error) {
	if err := checkUID(string(pod.UID)); err != nil {
		return "", fmt.Errorf("log directory of %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return joinUnder(root, fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID))
}

// ContainerLogPath is a container's log relative to its pod log directory,
// <container>/<restartCount>.log, so each restart gets a fresh file and old ones stay readable.
func ContainerLogPath(containerName string, restartCount int) string {
	return filepath.Join(containerName, strconv.Itoa(restartCount)+".log")
}

// podHostname follows the kubelet: spec.hostname if set, else the pod name cut to 63 chars
// without a trailing '-' or '.', which would not be a valid hostname.
func podHostname(pod *corev1.Pod) string {
	h := pod.Spec.Hostname
	if h == "" {
		h = pod.Name
	}
	if len(h) > maxHostnameLen {
		h = strings.TrimRight(h[:maxHostnameLen], "-.")
	}
	return h
}

// podString names a pod in errors and logs.
func podString(pod *corev1.Pod) string {
	return fmt.Sprintf("%s/%s (%s)", pod.Namespace, pod.Name, pod.UID)
}
