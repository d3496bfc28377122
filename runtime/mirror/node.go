package mirror

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	goruntime "runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// maxPods is the pod capacity the Node reports (the kubelet's --max-pods default).
const maxPods = 110

// ensureNode returns this node's Node, registering it if it is missing and
// registration is on.
func (a *Agent) ensureNode(ctx context.Context) (*corev1.Node, error) {
	nodes := a.client.Nodes()
	node, err := nodes.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	switch {
	case err == nil:
		return node, nil
	case !apierrors.IsNotFound(err):
		return nil, lost("get node %s: %v", a.cfg.NodeName, err)
	case !a.cfg.RegisterNode:
		return nil, lost("node %s is not registered and node registration is off", a.cfg.NodeName)
	}
	node, err = nodes.Create(ctx, a.initialNode(), metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		node, err = nodes.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	}
	if err != nil {
		return nil, lost("register node %s: %v", a.cfg.NodeName, err)
	}
	a.log.Info("registered node", "node", node.Name, "uid", node.UID)
	return node, nil
}

// initialNode is the Node as the kubelet registers it: well-known labels,
// the configured taints, and a first status.
func (a *Agent) initialNode() *corev1.Node {
	os, arch := a.facts.os, a.facts.arch
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: a.cfg.NodeName,
			Labels: map[string]string{
				corev1.LabelHostname:      a.cfg.NodeName,
				corev1.LabelOSStable:      os,
				corev1.LabelArchStable:    arch,
				"beta.kubernetes.io/os":   os,
				"beta.kubernetes.io/arch": arch,
			},
		},
		Spec: corev1.NodeSpec{Taints: append([]corev1.Taint(nil), a.cfg.Taints...)},
	}
	node.Status = a.desiredStatus(node.Status, time.Now())
	return node
}

// statusReporter patches the Node's status when it changed, and at least
// every NodeStatusReport; liveness itself is the lease's.
type statusReporter struct {
	a        *Agent
	current  *corev1.Node // as the apiserver last returned it
	reported time.Time    // last successful patch
}

func newStatusReporter(a *Agent, node *corev1.Node) *statusReporter {
	return &statusReporter{a: a, current: node}
}

func (r *statusReporter) run(ctx context.Context) error {
	for {
		if err := r.sync(ctx, time.Now()); err != nil {
			if _, ok := err.(*lostError); ok {
				return err
			}
			if ctx.Err() != nil {
				return nil
			}
			r.a.log.Warn("node status not reported", "err", err)
		}
		// Until this process has seen the runtime, look again soon: the
		// first report waits for that fact, not for the next interval.
		wait := r.a.cfg.RenewInterval
		if !r.a.runtimeSeen.Load() {
			wait = min(wait, 250*time.Millisecond)
		}
		if !sleep(ctx, wait) {
			return nil
		}
	}
}

// RuntimeReadinessGrace is how long after the agent starts a runtime not yet
// connected is not reported as the node being NotReady: until this process
// has seen the runtime, its readiness is not a fact of this run. Reporting the
// node NotReady at every restart of the agent would have the node lifecycle
// controller mark every pod on it NotReady (MarkPodsNotReady), taking the
// control plane's own pods out of their endpoints.
const RuntimeReadinessGrace = 10 * time.Second

func (r *statusReporter) sync(ctx context.Context, now time.Time) error {
	if r.a.cfg.RuntimeReady() {
		r.a.runtimeSeen.Store(true)
	} else if !r.a.runtimeSeen.Load() && time.Since(r.a.started) < RuntimeReadinessGrace {
		return nil // the lease keeps the node alive meanwhile
	}
	want := r.a.desiredStatus(r.current.Status, now)
	if !r.reported.IsZero() && now.Sub(r.reported) < r.a.cfg.NodeStatusReport && sameStatus(r.current.Status, want) {
		return nil
	}
	patch, err := nodeStatusPatch(r.current, want)
	if err != nil {
		return fmt.Errorf("node status patch: %w", err)
	}
	node, err := r.a.client.Nodes().Patch(ctx, r.current.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if apierrors.IsNotFound(err) {
		return lost("node %s was deleted", r.current.Name)
	}
	if err != nil {
		return fmt.Errorf("patch node %s status: %w", r.current.Name, err)
	}
	r.current, r.reported = node, now
	return nil
}

// desiredStatus is the node's status as of now, built on what the apiserver
// holds (cur) so that what others set there (images, other conditions,
// extended resources) stays and transition times move only on transitions.
func (a *Agent) desiredStatus(cur corev1.NodeStatus, now time.Time) corev1.NodeStatus {
	st := *cur.DeepCopy()
	f := a.facts
	ready := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue,
		Reason: "KubeletReady", Message: "ledgerlet is posting ready status"}
	if !a.cfg.RuntimeReady() {
		ready = corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionFalse,
			Reason: "KubeletNotReady", Message: "container runtime is down"}
	}
	ours := []corev1.NodeCondition{
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "ledgerlet has sufficient memory available"},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "ledgerlet has no disk pressure"},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", Message: "ledgerlet has sufficient PID available"},
		ready,
	}
	for _, c := range ours {
		c.LastHeartbeatTime = metav1.NewTime(now)
		c.LastTransitionTime = metav1.NewTime(now)
		i := conditionIndex(st.Conditions, c.Type)
		if i < 0 {
			st.Conditions = append(st.Conditions, c)
			continue
		}
		if st.Conditions[i].Status == c.Status {
			c.LastTransitionTime = st.Conditions[i].LastTransitionTime
		}
		st.Conditions[i] = c
	}

	st.Addresses = nil
	if ip, err := netip.ParseAddr(a.cfg.NodeIP); err == nil {
		st.Addresses = append(st.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip.String()})
	}
	st.Addresses = append(st.Addresses, corev1.NodeAddress{Type: corev1.NodeHostName, Address: a.cfg.NodeName})

	capacity := corev1.ResourceList{
		corev1.ResourcePods: *resource.NewQuantity(maxPods, resource.DecimalSI),
	}
	if f.cpus > 0 {
		capacity[corev1.ResourceCPU] = *resource.NewQuantity(int64(f.cpus), resource.DecimalSI)
	}
	if f.memory > 0 {
		capacity[corev1.ResourceMemory] = *resource.NewQuantity(f.memory, resource.BinarySI)
	}
	if st.Capacity == nil {
		st.Capacity = corev1.ResourceList{}
	}
	if st.Allocatable == nil {
		st.Allocatable = corev1.ResourceList{}
	}
	for name, q := range capacity {
		// Nothing is reserved for system daemons: allocatable is capacity.
		st.Capacity[name], st.Allocatable[name] = q, q
	}

	st.NodeInfo = corev1.NodeSystemInfo{
		MachineID: f.machineID, SystemUUID: f.systemUUID, BootID: f.bootID,
		KernelVersion: f.kernel, OSImage: f.osImage,
		ContainerRuntimeVersion: a.cfg.RuntimeVersion(),
		KubeletVersion:          kubeletVersion(a.cfg.Version),
		OperatingSystem:         f.os, Architecture: f.arch,
	}
	// No kubelet API is served: port 0 tells the apiserver not to dial one.
	st.DaemonEndpoints = corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 0}}
	return st
}

func conditionIndex(cs []corev1.NodeCondition, t corev1.NodeConditionType) int {
	for i := range cs {
		if cs[i].Type == t {
			return i
		}
	}
	return -1
}

// sameStatus compares two statuses without their heartbeat times.
func sameStatus(a, b corev1.NodeStatus) bool {
	strip := func(s corev1.NodeStatus) corev1.NodeStatus {
		s = *s.DeepCopy()
		for i := range s.Conditions {
			s.Conditions[i].LastHeartbeatTime = metav1.Time{}
		}
		return s
	}
	return apiequality.Semantic.DeepEqual(strip(a), strip(b))
}

// nodeStatusPatch is a strategic merge patch taking cur's status to st, as
// the kubelet's (component-helpers PatchNodeStatus) takes it: conditions
// merge by type, so others' conditions stay; addresses are replaced whole,
// as their merge key (type) is not unique. It names only the fields
// desiredStatus sets and only where they differ, so it is built here rather
// than diffed by strategicpatch, whose OpenAPI machinery (gnostic,
// kube-openapi) would be a tenth of the agent's binary (issue 11: RSS).
func nodeStatusPatch(cur *corev1.Node, st corev1.NodeStatus) ([]byte, error) {
	old := cur.Status
	status := map[string]any{}
	var conds []corev1.NodeCondition
	for _, c := range st.Conditions {
		if i := conditionIndex(old.Conditions, c.Type); i < 0 || !apiequality.Semantic.DeepEqual(old.Conditions[i], c) {
			conds = append(conds, c)
		}
	}
	if len(conds) > 0 {
		status["conditions"] = conds
	}
	if !apiequality.Semantic.DeepEqual(old.Addresses, st.Addresses) {
		addrs := make([]any, 0, len(st.Addresses)+1)
		for _, ad := range st.Addresses {
			addrs = append(addrs, map[string]any{"type": string(ad.Type), "address": ad.Address})
		}
		status["addresses"] = append(addrs, map[string]any{"$patch": "replace"})
	}
	for key, lists := range map[string][2]corev1.ResourceList{
		"capacity": {old.Capacity, st.Capacity}, "allocatable": {old.Allocatable, st.Allocatable},
	} {
		if d := resourceDiff(lists[0], lists[1]); len(d) > 0 {
			status[key] = d
		}
	}
	if old.NodeInfo != st.NodeInfo {
		status["nodeInfo"] = st.NodeInfo
	}
	if old.DaemonEndpoints != st.DaemonEndpoints {
		status["daemonEndpoints"] = st.DaemonEndpoints
	}
	return json.Marshal(map[string]any{"status": status})
}

// resourceDiff is the merge patch of one resource list to another: what
// differs, and null for what went.
func resourceDiff(old, next corev1.ResourceList) map[string]any {
	d := map[string]any{}
	for name, q := range next {
		if o, ok := old[name]; !ok || o.Cmp(q) != 0 {
			d[string(name)] = q.String()
		}
	}
	for name := range old {
		if _, ok := next[name]; !ok {
			d[string(name)] = nil
		}
	}
	return d
}

// kubeletVersion is what `kubectl get nodes` shows as VERSION: the
// Kubernetes API version ledgerlet is built against, with the agent's own
// version as semver build metadata (as k3s does, "v1.37.2+k3s1"), so tools
// that parse it as a Kubernetes version still can.
func kubeletVersion(agent string) string {
	meta := "ledgerlet"
	if agent != "" {
		var b strings.Builder
		for _, r := range agent {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.':
				b.WriteRune(r)
			default:
				b.WriteByte('-')
			}
		}
		if s := strings.Trim(b.String(), "."); s != "" {
			meta += "." + strings.ReplaceAll(s, "..", ".")
		}
	}
	return kubeAPIVersion() + "+" + meta
}

// kubeAPIVersion maps the k8s.io/api module version (v0.X.Y) to the
// Kubernetes version it belongs to (v1.X.Y).
func kubeAPIVersion() string {
	const fallback = "v1.37.2"
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return fallback
	}
	for _, dep := range info.Deps {
		if dep.Path == "k8s.io/api" {
			if rest, ok := strings.CutPrefix(dep.Version, "v0."); ok {
				return "v1." + rest
			}
		}
	}
	return fallback
}

// nodeFacts are what the Node reports about the machine, read once.
type nodeFacts struct {
	os, arch                      string
	cpus                          int
	memory                        int64 // bytes
	bootID, machineID, systemUUID string
	kernel, osImage               string
}

func readNodeFacts() nodeFacts {
	f := nodeFacts{os: goruntime.GOOS, arch: goruntime.GOARCH, cpus: goruntime.NumCPU()}
	read := func(paths ...string) string {
		for _, p := range paths {
			if b, err := os.ReadFile(p); err == nil {
				if s := strings.TrimSpace(string(b)); s != "" {
					return s
				}
			}
		}
		return ""
	}
	f.bootID = read("/proc/sys/kernel/random/boot_id")
	f.machineID = read("/etc/machine-id", "/var/lib/dbus/machine-id")
	f.systemUUID = read("/sys/class/dmi/id/product_uuid")
	f.kernel = read("/proc/sys/kernel/osrelease")
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		f.osImage = osReleaseName(b)
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		f.memory = memTotal(b)
	}
	return f
}

// memTotal is MemTotal of /proc/meminfo, in bytes (0 if absent).
func memTotal(meminfo []byte) int64 {
	sc := bufio.NewScanner(bytes.NewReader(meminfo))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}

// osReleaseName is PRETTY_NAME of /etc/os-release.
func osReleaseName(osRelease []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(osRelease))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
			if s, err := strconv.Unquote(v); err == nil {
				return s
			}
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}
