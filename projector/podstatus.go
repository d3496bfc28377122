package projector

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

// Reasons and messages of the status a mirror pod publishes, spelled as the
// kubelet spells them (pkg/kubelet/status, pkg/kubelet/images) so that
// kubectl and controllers read a ledgerlet pod like a kubelet one.
const (
	reasonContainerCreating  = "ContainerCreating"
	reasonPodInitializing    = "PodInitializing"
	reasonCrashLoopBackOff   = "CrashLoopBackOff"
	reasonErrImagePull       = "ErrImagePull"
	reasonImagePullBackOff   = "ImagePullBackOff"
	reasonCompleted          = "Completed"
	reasonError              = "Error"
	reasonStatusUnknown      = "ContainerStatusUnknown"
	reasonPodCompleted       = "PodCompleted"
	reasonPodFailed          = "PodFailed"
	reasonContainersNotReady = "ContainersNotReady"
	reasonNotInitialized     = "ContainersNotInitialized"
	reasonGatesNotReady      = "ReadinessGatesNotReady"
	reasonSandboxNotReady    = "PodSandboxNotReady"

	// containerIDScheme prefixes runtime IDs in the API (kubelet: "<runtime>://<id>").
	containerIDScheme = "containerd://"
)

// APIStatus is the status the pod's mirror publishes, as the kubelet would
// report it for the same containers. It is computed from the pod's recorded
// state alone: every time in it is a recorded time (truncated to seconds, as
// the API serializes times), never a clock, so the same state always gives
// the same status and StatusHash can tell the planner whether a patch is due.
//
// Without a clock, a container that exited and will be restarted is shown
// waiting in CrashLoopBackOff (every exit starts a back-off here), and an
// image pull that failed more than once as ImagePullBackOff: both are what
// holds until the planner's next action is observed.
func (p *Pod) APIStatus(nodeIP string) corev1.PodStatus {
	spec := p.DecodeSpec()
	var ps corev1.PodSpec
	if spec != nil {
		ps = spec.Spec
	} else {
		ps = observedSpec(p)
	}
	b := statusBuilder{p: p, spec: &ps, podName: p.Name + "_" + p.Namespace + "(" + p.UID + ")"}
	b.latest, b.previous = p.latestByName()
	b.versionAt = max(p.FirstSeen, p.UpdatedAt)

	var st corev1.PodStatus
	hasInit := len(ps.InitContainers) > 0
	for i := range ps.InitContainers {
		st.InitContainerStatuses = append(st.InitContainerStatuses, b.container(&ps.InitContainers[i], true, hasInit))
	}
	for i := range ps.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, b.container(&ps.Containers[i], false, hasInit))
	}
	// The kubelet's status manager sorts app containers by name and keeps
	// init containers in spec order (normalizeStatus).
	sort.SliceStable(st.ContainerStatuses, func(i, j int) bool {
		return st.ContainerStatuses[i].Name < st.ContainerStatuses[j].Name
	})

	st.Phase = b.phase(st.InitContainerStatuses, st.ContainerStatuses)
	st.Conditions = b.conditions(st)

	if ip, ok := validIP(nodeIP); ok {
		st.HostIP = ip
		st.HostIPs = []corev1.HostIP{{IP: ip}}
	}
	if ip := b.podIP(nodeIP); ip != "" {
		st.PodIP = ip
		st.PodIPs = []corev1.PodIP{{IP: ip}}
	}
	if p.FirstSeen > 0 {
		t := apiTime(p.FirstSeen)
		st.StartTime = &t
	}
	st.QOSClass = qosClass(&ps)
	return st
}

// StatusHash identifies a status: the first 16 hex characters of the SHA-256
// of its JSON encoding (struct fields in declaration order, map keys sorted,
// times in seconds), so equal statuses hash equally in every run.
func StatusHash(st corev1.PodStatus) string {
	b, err := json.Marshal(st)
	if err != nil {
		// A PodStatus holds no values JSON cannot encode; should that ever
		// change, the error text still hashes deterministically.
		b = []byte("unencodable status: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}

// digestConditions are the pod conditions the node publishes; others (set by
// controllers: DisruptionTarget, readiness gates) are not the node's to undo.
var digestConditions = map[corev1.PodConditionType]bool{
	corev1.PodReady: true, corev1.ContainersReady: true, corev1.PodInitialized: true,
	corev1.PodScheduled: true, corev1.PodReadyToStartContainers: true,
}

// MirrorStatusDigest identifies the part of a status that the node decides
// and that round-trips through the apiserver unchanged: the phase, the
// node's condition statuses, and each container's ID, state, readiness and
// restart count. The mirror watcher digests what the apiserver holds, the
// planner what the node would publish; a difference is another writer's.
func MirrorStatusDigest(st corev1.PodStatus) string {
	var b strings.Builder
	b.WriteString(string(st.Phase))
	conds := make([]string, 0, len(st.Conditions))
	for _, c := range st.Conditions {
		if digestConditions[c.Type] {
			conds = append(conds, string(c.Type)+"="+string(c.Status))
		}
	}
	sort.Strings(conds)
	for _, c := range conds {
		b.WriteString("|" + c)
	}
	for _, list := range [][]corev1.ContainerStatus{st.InitContainerStatuses, st.ContainerStatuses} {
		cs := make([]string, 0, len(list))
		for _, c := range list {
			state := "waiting"
			switch {
			case c.State.Running != nil:
				state = "running"
			case c.State.Terminated != nil:
				state = "terminated"
			}
			cs = append(cs, fmt.Sprintf("%s,%s,%s,%t,%d", c.Name, c.ContainerID, state, c.Ready, c.RestartCount))
		}
		sort.Strings(cs)
		b.WriteString("#" + strings.Join(cs, ";"))
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])[:16]
}

// observedSpec stands in for the spec of a pod the manifests never named
// (an orphan being torn down): its containers as the runtime shows them.
func observedSpec(p *Pod) corev1.PodSpec {
	var ps corev1.PodSpec
	seen := map[string]bool{}
	for _, c := range sortedContainers(p) {
		if seen[c.Name] {
			continue
		}
		seen[c.Name] = true
		if c.Init {
			ps.InitContainers = append(ps.InitContainers, corev1.Container{Name: c.Name})
		} else {
			ps.Containers = append(ps.Containers, corev1.Container{Name: c.Name})
		}
	}
	ps.RestartPolicy = corev1.RestartPolicyAlways
	return ps
}

type statusBuilder struct {
	p                *Pod
	spec             *corev1.PodSpec
	podName          string // "name_namespace(uid)", as the kubelet names pods in messages
	latest, previous map[string]*Container
	// versionAt is when the current version of the pod was recorded: the
	// earliest a condition of this version can have changed.
	versionAt int64
}

// container renders one container's status: its newest instance of the
// current UID decides the state, the one before it (or the newest, while it
// waits to be restarted) the last state.
func (b *statusBuilder) container(c *corev1.Container, init, podHasInit bool) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image}
	cur, prev := b.latest[c.Name], b.previous[c.Name]
	fail := b.p.Failures[c.Name]
	if prev != nil && prev.State == pb.StateExited {
		cs.LastTerminationState.Terminated = terminated(prev)
	}
	waitingDefault := reasonContainerCreating
	if podHasInit {
		waitingDefault = reasonPodInitializing
	}
	if cur == nil {
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: waitingDefault}
		if fail != nil {
			cs.State.Waiting = b.failed(c, fail)
		}
	} else {
		cs.ContainerID = containerIDScheme + cur.ID
		cs.ImageID = cur.ImageRef
		cs.RestartCount = int32(min(cur.Attempt, math.MaxInt32))
		switch cur.State {
		case pb.StateRunning:
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: apiTime(cur.StartedAt)}
		case pb.StateExited:
			t := terminated(cur)
			switch {
			case fail != nil:
				cs.State.Waiting = b.failed(c, fail)
				cs.LastTerminationState.Terminated = t
			case !b.p.Removed && b.restarts(c, init, cur.ExitCode):
				msg := "restarting failed container=" + c.Name + " pod=" + b.podName
				if bo := b.p.Backoff[c.Name]; bo != nil && bo.Delay > 0 {
					msg = "back-off " + time.Duration(bo.Delay).String() + " " + msg
				}
				cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reasonCrashLoopBackOff, Message: msg}
				cs.LastTerminationState.Terminated = t
			default:
				cs.State.Terminated = t
			}
		case pb.StateUnknown:
			if cur.StartedAt > 0 {
				// As the kubelet reports a container it lost track of.
				cs.State.Terminated = &corev1.ContainerStateTerminated{
					ExitCode: 137, Reason: reasonStatusUnknown, ContainerID: cs.ContainerID,
					Message: "The container could not be located when the pod was terminated",
				}
			} else {
				cs.State.Waiting = &corev1.ContainerStateWaiting{}
			}
		default: // created, not started yet
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reasonContainerCreating}
			if fail != nil {
				cs.State.Waiting = b.failed(c, fail)
			}
		}
	}
	// Started and ready as the probes (and postStart hook) say; a regular
	// init container is ready once it completed.
	started := cur != nil && cs.State.Running != nil && b.p.ContainerStarted(cur)
	cs.Started = &started
	switch {
	case init && !isSidecar(c):
		cs.Ready = cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0
	default:
		cs.Ready = started && b.p.ContainerReady(cur)
	}
	return cs
}

// failed is the waiting state of a container whose last start failed.
func (b *statusBuilder) failed(c *corev1.Container, f *Failure) *corev1.ContainerStateWaiting {
	w := &corev1.ContainerStateWaiting{Reason: f.Reason, Message: f.Message}
	if w.Reason == "" {
		w.Reason = reasonContainerCreating
	}
	if f.Reason == reasonErrImagePull && f.Count > 1 {
		// Failed again and backing off before the next pull, as the kubelet shows it.
		w.Reason = reasonImagePullBackOff
		w.Message = fmt.Sprintf("Back-off pulling image %q: %s: %s", c.Image, reasonErrImagePull, f.Message)
	}
	return w
}

// restarts says whether an exited container will be started again (the
// kubelet's podutil.ContainerShouldRestart without restart rules).
func (b *statusBuilder) restarts(c *corev1.Container, init bool, exitCode int32) bool {
	switch {
	case isSidecar(c):
		return true
	case init:
		return exitCode != 0 && b.spec.RestartPolicy != corev1.RestartPolicyNever
	case c.RestartPolicy != nil:
		return restarts(corev1.RestartPolicy(*c.RestartPolicy), exitCode)
	}
	return restarts(b.spec.RestartPolicy, exitCode)
}

func terminated(c *Container) *corev1.ContainerStateTerminated {
	reason := c.Reason
	if reason == "" {
		reason = reasonCompleted
		if c.ExitCode != 0 {
			reason = reasonError
		}
	}
	return &corev1.ContainerStateTerminated{
		ExitCode: c.ExitCode, Reason: reason, ContainerID: containerIDScheme + c.ID,
		StartedAt: apiTime(c.StartedAt), FinishedAt: apiTime(c.FinishedAt),
	}
}

// phase is the kubelet's getPhase (with container restart rules on, as in
// Kubernetes 1.35+) over the rendered container statuses.
func (b *statusBuilder) phase(inits, apps []corev1.ContainerStatus) corev1.PodPhase {
	byName := func(list []corev1.ContainerStatus, name string) *corev1.ContainerStatus {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
		return nil
	}
	pendingInit, pendingSidecars, initFailedForGood := 0, 0, 0
	var unknown, running, waiting, stopped, stoppedForGood, succeeded int
	for i := range b.spec.InitContainers {
		c := &b.spec.InitContainers[i]
		cs := byName(inits, c.Name)
		if isSidecar(c) {
			switch {
			case cs == nil:
				pendingSidecars++
				unknown++
			case cs.State.Running != nil:
				if cs.Started == nil || !*cs.Started {
					pendingSidecars++
				}
				running++
			case cs.State.Terminated != nil, cs.LastTerminationState.Terminated != nil:
				// stopped sidecars do not count towards the phase
			default:
				pendingSidecars++
				waiting++
			}
			continue
		}
		switch {
		case cs == nil, cs.State.Running != nil:
			pendingInit++
		case cs.State.Terminated != nil:
			if code := cs.State.Terminated.ExitCode; code != 0 && !b.restarts(c, true, code) {
				initFailedForGood++
			}
		case cs.LastTerminationState.Terminated != nil:
			if code := cs.LastTerminationState.Terminated.ExitCode; code != 0 && !b.restarts(c, true, code) {
				initFailedForGood++
			}
		default:
			pendingInit++
		}
	}
	for i := range b.spec.Containers {
		c := &b.spec.Containers[i]
		cs := byName(apps, c.Name)
		switch {
		case cs == nil:
			unknown++
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			stopped++
			code := cs.State.Terminated.ExitCode
			if !b.restarts(c, false, code) {
				stoppedForGood++
			}
			if code == 0 {
				succeeded++
			}
		case cs.LastTerminationState.Terminated != nil:
			stopped++
			if !b.restarts(c, false, cs.LastTerminationState.Terminated.ExitCode) {
				stoppedForGood++
			}
		default:
			waiting++
		}
	}
	initialized := false // a regular container of this pod has run
	for i := range b.spec.Containers {
		if b.latest[b.spec.Containers[i].Name] != nil {
			initialized = true
		}
	}
	switch {
	case initFailedForGood > 0:
		return corev1.PodFailed
	case pendingInit > 0 || (pendingSidecars > 0 && !initialized) || waiting > 0:
		return corev1.PodPending
	case running > 0 && unknown == 0:
		return corev1.PodRunning
	case running == 0 && stopped > 0 && unknown == 0:
		switch {
		case stopped != stoppedForGood:
			return corev1.PodRunning // restarting
		case stopped == succeeded:
			return corev1.PodSucceeded
		}
		return corev1.PodFailed
	}
	return corev1.PodPending
}

// conditions are the kubelet-owned pod conditions, in the kubelet's order.
// A condition's lastTransitionTime is the newest recorded time of the facts
// that decide it, which is when it last became what it is.
func (b *statusBuilder) conditions(st corev1.PodStatus) []corev1.PodCondition {
	cond := func(t corev1.PodConditionType, ok bool, at int64, reason, msg string) corev1.PodCondition {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, Reason: reason, Message: msg,
			LastTransitionTime: apiTime(max(at, b.p.FirstSeen))}
		if ok {
			c.Status = corev1.ConditionTrue
		}
		return c
	}
	out := make([]corev1.PodCondition, 0, 5)

	// PodReadyToStartContainers: a ready sandbox with its network exists.
	ready, newest := b.sandboxes()
	if ready != nil {
		out = append(out, cond(corev1.PodReadyToStartContainers, true, ready.CreatedAt, "", ""))
	} else {
		at := b.versionAt
		if newest != nil {
			at = max(at, newest.CreatedAt)
		}
		out = append(out, cond(corev1.PodReadyToStartContainers, false, at, reasonSandboxNotReady, ""))
	}

	// Initialized: every init container completed (sidecars: started), or a
	// regular container already ran.
	var incomplete []string
	initAt := b.versionAt // True since the last init container completed
	for i := range b.spec.InitContainers {
		c := &b.spec.InitContainers[i]
		cs := st.InitContainerStatuses[i]
		if (isSidecar(c) && !*cs.Started) || (!isSidecar(c) && !cs.Ready) {
			incomplete = append(incomplete, c.Name)
		}
		if cur := b.latest[c.Name]; cur != nil {
			if isSidecar(c) {
				initAt = max(initAt, cur.StartedAt)
			} else {
				initAt = max(initAt, cur.FinishedAt)
			}
		}
	}
	appStarted := false
	for _, cs := range st.ContainerStatuses {
		appStarted = appStarted || cs.State.Running != nil || cs.State.Terminated != nil
	}
	switch {
	case st.Phase == corev1.PodSucceeded:
		out = append(out, cond(corev1.PodInitialized, true, initAt, reasonPodCompleted, ""))
	case appStarted || len(incomplete) == 0:
		out = append(out, cond(corev1.PodInitialized, true, initAt, "", ""))
	default:
		out = append(out, cond(corev1.PodInitialized, false, b.versionAt, reasonNotInitialized,
			fmt.Sprintf("containers with incomplete status: %s", incomplete)))
	}

	// ContainersReady and Ready: every app container (and sidecar) ready.
	// True since the last of them became ready; False since the first of
	// the unready ones stopped (or this version began, if it never ran).
	var unready []string
	readySince, unreadySince := b.versionAt, int64(math.MaxInt64)
	note := func(name string, isReady bool) {
		cur := b.latest[name]
		switch {
		case isReady:
			readySince = max(readySince, cur.StartedAt)
		case cur != nil && cur.State == pb.StateExited:
			unready = append(unready, name)
			unreadySince = min(unreadySince, max(cur.FinishedAt, b.versionAt))
		case b.previous[name] != nil && b.previous[name].State == pb.StateExited:
			unready = append(unready, name)
			unreadySince = min(unreadySince, max(b.previous[name].FinishedAt, b.versionAt))
		default:
			unready = append(unready, name)
			unreadySince = min(unreadySince, b.versionAt)
		}
	}
	for i := range b.spec.InitContainers {
		if isSidecar(&b.spec.InitContainers[i]) {
			note(b.spec.InitContainers[i].Name, st.InitContainerStatuses[i].Ready)
		}
	}
	for _, cs := range st.ContainerStatuses {
		note(cs.Name, cs.Ready)
	}
	readyAt := readySince
	if len(unready) > 0 {
		readyAt = unreadySince
	}
	var containersReady corev1.PodCondition
	switch {
	case st.Phase == corev1.PodSucceeded:
		containersReady = cond(corev1.ContainersReady, false, readyAt, reasonPodCompleted, "")
	case st.Phase == corev1.PodFailed:
		containersReady = cond(corev1.ContainersReady, false, readyAt, reasonPodFailed, "")
	case len(unready) > 0:
		containersReady = cond(corev1.ContainersReady, false, readyAt, reasonContainersNotReady,
			fmt.Sprintf("containers with unready status: %s", unready))
	default:
		containersReady = cond(corev1.ContainersReady, true, readyAt, "", "")
	}
	podReady := containersReady
	podReady.Type = corev1.PodReady
	if containersReady.Status == corev1.ConditionTrue && len(b.spec.ReadinessGates) > 0 {
		// Readiness gates are conditions others set on the mirror; none is
		// known here, so the pod is not ready (as the kubelet reports it
		// until they appear).
		var msgs []string
		for _, g := range b.spec.ReadinessGates {
			msgs = append(msgs, fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", string(g.ConditionType)))
		}
		podReady.Status = corev1.ConditionFalse
		podReady.Reason = reasonGatesNotReady
		podReady.Message = strings.Join(msgs, ", ")
	}
	out = append(out, podReady, containersReady)

	out = append(out, cond(corev1.PodScheduled, true, b.p.FirstSeen, "", ""))
	return out
}

// sandboxes returns the newest ready sandbox of the current version and the
// newest sandbox of the current UID at all (nil when there is none).
func (b *statusBuilder) sandboxes() (ready, newest *Sandbox) {
	for _, sb := range sortedSandboxes(b.p) {
		if b.p.UID == "" || sb.UID != b.p.UID {
			continue
		}
		newest = sb
		if sb.State == pb.StateReady && !sb.Stale {
			ready = sb
		}
	}
	return ready, newest
}

// podIP is the node's address for a host-network pod, else the newest ready
// sandbox's; with no ready sandbox, the last one's address stays reported
// (the kubelet keeps a stopped pod's IPs).
func (b *statusBuilder) podIP(nodeIP string) string {
	if b.spec.HostNetwork {
		ip, _ := validIP(nodeIP)
		return ip
	}
	var last string
	var readyIP string
	for _, sb := range sortedSandboxes(b.p) {
		if b.p.UID == "" || sb.UID != b.p.UID {
			continue
		}
		ip, ok := validIP(sb.IP)
		if !ok {
			continue
		}
		last = ip
		if sb.State == pb.StateReady && !sb.Stale {
			readyIP = ip
		}
	}
	if readyIP != "" {
		return readyIP
	}
	return last
}

// validIP returns s in canonical form if it is an IP address; the apiserver
// rejects a status carrying anything else.
func validIP(s string) (string, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return "", false
	}
	return a.String(), true
}

// apiTime is a recorded unix-nanosecond time as the API carries it: whole
// seconds, UTC. Zero (never recorded) stays the zero time.
func apiTime(ns int64) metav1.Time {
	if ns <= 0 {
		return metav1.Time{}
	}
	return metav1.NewTime(time.Unix(ns/int64(time.Second), 0).UTC())
}

// qosClass is the pod's QoS class as the apiserver computes it when the
// mirror is created (pkg/apis/core/v1/helper/qos.ComputePodQOS, Kubernetes
// 1.37); the status must carry the same value, as qosClass is immutable.
func qosClass(spec *corev1.PodSpec) corev1.PodQOSClass {
	if r := spec.Resources; r != nil && podLevelResourcesSet(r) {
		return requirementsQOS(r)
	}
	var q corev1.PodQOSClass
	for _, list := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range list {
			cq := requirementsQOS(&list[i].Resources)
			switch {
			case cq == corev1.PodQOSBurstable:
				return cq
			case q == "":
				q = cq
			case q != cq:
				return corev1.PodQOSBurstable
			}
		}
	}
	if q == "" {
		q = corev1.PodQOSBestEffort
	}
	return q
}

func podLevelResourcesSet(r *corev1.ResourceRequirements) bool {
	supported := func(l corev1.ResourceList) bool {
		for name := range l {
			if name == corev1.ResourceCPU || name == corev1.ResourceMemory || strings.HasPrefix(string(name), corev1.ResourceHugePagesPrefix) {
				return true
			}
		}
		return false
	}
	return supported(r.Requests) || supported(r.Limits)
}

func requirementsQOS(r *corev1.ResourceRequirements) corev1.PodQOSClass {
	if len(r.Requests) == 0 && len(r.Limits) == 0 {
		return corev1.PodQOSBestEffort
	}
	var q corev1.PodQOSClass
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		rq := resourceQOS(r, name)
		switch {
		case rq == corev1.PodQOSBurstable:
			return rq
		case q == "":
			q = rq
		case q != rq:
			return corev1.PodQOSBurstable
		}
	}
	return q
}

func resourceQOS(r *corev1.ResourceRequirements, name corev1.ResourceName) corev1.PodQOSClass {
	lim := r.Limits[name]
	req, ok := r.Requests[name]
	if !ok {
		// The apiserver defaults a missing request to its limit before it
		// computes the class (SetDefaults_Pod); do the same for specs that
		// were not defaulted.
		req = lim
	}
	switch {
	case !req.Equal(lim):
		return corev1.PodQOSBurstable
	case req.IsZero():
		return corev1.PodQOSBestEffort
	}
	return corev1.PodQOSGuaranteed
}
