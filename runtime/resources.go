package runtime

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/ledgerlet/ledgerlet/projector"
)

// OOM score adjustments by QoS, the kubelet's (pkg/kubelet/qos/policy.go):
// node-critical and Guaranteed containers are killed last, BestEffort ones
// first, Burstable ones by how much of the node's memory they request.
const (
	guaranteedOOMScoreAdj = -997
	bestEffortOOMScoreAdj = 1000
	// systemNodeCritical: a static pod of this priority class is node-critical.
	systemNodeCritical = "system-node-critical"
)

// oomScoreAdj is the kubelet's GetContainerOOMScoreAdjust. Every static pod
// is critical to the kubelet; one of priority class system-node-critical is
// node-critical and gets the Guaranteed score whatever its resources.
func oomScoreAdj(pod *corev1.Pod, c *corev1.Container, memoryCapacity int64) int64 {
	if pod.Spec.PriorityClassName == systemNodeCritical {
		return guaranteedOOMScoreAdj
	}
	switch projector.QOSClass(&pod.Spec) {
	case corev1.PodQOSGuaranteed:
		return guaranteedOOMScoreAdj
	case corev1.PodQOSBestEffort:
		return bestEffortOOMScoreAdj
	}
	if memoryCapacity <= 0 {
		return bestEffortOOMScoreAdj - 1
	}
	score := func(request int64) int64 { return 1000 - (1000*request)/memoryCapacity }
	adj := score(c.Resources.Requests.Memory().Value())
	if isSidecar(c) {
		// A sidecar is not killed before the app containers it serves: its
		// score is at most that of the app container requesting least.
		minRequest := int64(-1)
		for i := range pod.Spec.Containers {
			r := pod.Spec.Containers[i].Resources.Requests.Memory().Value()
			if minRequest < 0 || r < minRequest {
				minRequest = r
			}
		}
		if minRequest >= 0 {
			adj = min(adj, score(minRequest))
		}
	}
	// Above every Guaranteed container's score, below every BestEffort's.
	return min(max(adj, 1000+guaranteedOOMScoreAdj), bestEffortOOMScoreAdj-1)
}

// nodeMemoryCapacity is the node's memory in bytes (MemTotal), 0 if unknown.
func nodeMemoryCapacity() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
