package projector

import (
	"encoding/json"
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"

	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

// PodView is one pod as `ledgerlet pods -o json` shows it (DESIGN.md's CLI
// contract); the live agent and offline replay both render it from State.
type PodView struct {
	Namespace  string          `json:"namespace"`
	Name       string          `json:"name"`
	UID        string          `json:"uid"`
	Source     string          `json:"source"`
	Path       string          `json:"path"`
	Hash       string          `json:"hash"`
	Phase      string          `json:"phase"`
	Status     string          `json:"status"` // kubectl-style: Running, CrashLoopBackOff, ErrImagePull, Terminating…
	Ready      string          `json:"ready"`  // "1/2"
	Restarts   uint32          `json:"restarts"`
	IP         string          `json:"ip,omitempty"`
	QOSClass   string          `json:"qosClass,omitempty"` // Guaranteed, Burstable, BestEffort
	CreatedAt  int64           `json:"createdAt"`
	Removed    bool            `json:"removed,omitempty"`
	Rejection  string          `json:"rejection,omitempty"`
	Mirror     *MirrorView     `json:"mirror"`
	Containers []ContainerView `json:"containers"`
}

// MirrorView is the mirror pod as seen in the apiserver.
type MirrorView struct {
	UID      string `json:"uid"`
	Current  bool   `json:"current"` // config.mirror matches config.hash
	Deleting bool   `json:"deleting,omitempty"`
	// State says whether the mirror is in sync, or why not: synced,
	// status pending, outdated, deleting, missing, orphaned, or
	// "apiserver unreachable: …" while the mirror lane waits.
	State string `json:"state"`
}

// ContainerView is one container of a PodView.
type ContainerView struct {
	Name         string `json:"name"`
	Init         bool   `json:"init,omitempty"`
	State        string `json:"state"` // waiting | running | exited
	ContainerID  string `json:"containerID"`
	RestartCount uint32 `json:"restartCount"`
	ExitCode     int32  `json:"exitCode"`
	Reason       string `json:"reason"`
	StartedAt    int64  `json:"startedAt,omitempty"`
	// Ready: running, started, and its readiness probe (if any) succeeded.
	Ready bool `json:"ready"`
	// Message says more about the state: why a probe fails, why it was killed.
	Message string `json:"message,omitempty"`
	// LastState is how the previous instance ended (kubectl's lastState.terminated).
	LastState *Terminated `json:"lastState,omitempty"`
}

// Terminated is how a container instance ended.
type Terminated struct {
	ContainerID string `json:"containerID"`
	ExitCode    int32  `json:"exitCode"`
	Reason      string `json:"reason"`
	Message     string `json:"message,omitempty"`
	FinishedAt  int64  `json:"finishedAt,omitempty"`
}

// Reasons the view gives an instance the agent stopped because a probe or
// its postStart hook failed (the kubelet's kill reasons), instead of the
// runtime's "Error".
const (
	ReasonLivenessProbe       = "LivenessProbe"
	ReasonStartupProbe        = "StartupProbe"
	ReasonFailedPostStartHook = "FailedPostStartHook"
)

// exitReason is how an exited instance's end is shown: the runtime's reason,
// unless the planner stopped it for a failed probe or hook.
func exitReason(c *Container) (reason, message string) {
	switch c.KilledFor {
	case ReasonLivenessProbe:
		return ReasonLivenessProbe, probeMessage(pb.ProbeLiveness, c.Liveness)
	case ReasonStartupProbe:
		return ReasonStartupProbe, probeMessage(pb.ProbeStartup, c.Startup)
	case ReasonFailedPostStartHook:
		return ReasonFailedPostStartHook, "postStart hook failed: " + c.PostStartError
	}
	return c.Reason, ""
}

func probeMessage(kind pb.ProbeKind, st *ProbeState) string {
	msg := string(kind) + " probe failed"
	if st != nil && st.Output != "" {
		msg += ": " + st.Output
	}
	return msg
}

// specContainer finds a container (init or app) of the pod's spec by name.
func (p *Pod) specContainer(name string) *corev1.Container {
	spec := p.decoded
	if spec == nil {
		return nil
	}
	for i := range spec.Spec.InitContainers {
		if spec.Spec.InitContainers[i].Name == name {
			return &spec.Spec.InitContainers[i]
		}
	}
	for i := range spec.Spec.Containers {
		if spec.Spec.Containers[i].Name == name {
			return &spec.Spec.Containers[i]
		}
	}
	return nil
}

// isInitContainer: the pod's spec names an init container of that name.
func (p *Pod) isInitContainer(name string) bool {
	if p.decoded == nil {
		return false
	}
	for i := range p.decoded.Spec.InitContainers {
		if p.decoded.Spec.InitContainers[i].Name == name {
			return true
		}
	}
	return false
}

// ContainerStarted is the kubelet's containerStatus.started: the instance
// runs, its postStart hook (if any) completed and, if its spec has a startup
// probe, that probe succeeded. A
// container the spec does not name (an orphan, another version) counts as
// having no probes.
func (p *Pod) ContainerStarted(c *Container) bool {
	if c.State != pb.StateRunning || c.PostStartPending || c.PostStartError != "" {
		return false
	}
	if sc := p.specContainer(c.Name); sc != nil && sc.StartupProbe != nil && c.UID == p.UID && !c.Stale {
		return c.Startup != nil && c.Startup.Success
	}
	return true
}

// ContainerReady is the kubelet's containerStatus.ready for a running
// container: started and, if its spec has a readiness probe, that probe's
// last result is a success. A probe not yet through its threshold is not
// ready, as with the kubelet (readiness starts at false).
func (p *Pod) ContainerReady(c *Container) bool {
	if !p.ContainerStarted(c) {
		return false
	}
	if sc := p.specContainer(c.Name); sc != nil && sc.ReadinessProbe != nil && c.UID == p.UID && !c.Stale {
		return c.Readiness != nil && c.Readiness.Success
	}
	return true
}

// Views renders every pod as of the last event, ordered by namespace/name.
func (s *State) Views() []PodView { return s.ViewsAt(s.Clock.Steady) }

// ViewsAt renders every pod as of steady time now (s.SteadyAt of a clock
// reading; it decides whether a back-off is still running), ordered by
// namespace/name.
func (s *State) ViewsAt(now int64) []PodView {
	keys := make([]string, 0, len(s.Pods))
	for k := range s.Pods {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]PodView, 0, len(keys))
	for _, k := range keys {
		p := s.Pods[k]
		v := p.View(now)
		if spec := p.DecodeSpec(); v.IP == "" && spec != nil && spec.Spec.HostNetwork {
			v.IP = s.Agent.NodeIP // the kubelet shows the node's address for host-network pods
		}
		s.mirrorState(p, &v)
		out = append(out, v)
	}
	return out
}

// mirrorState says, when this run keeps mirrors, whether the pod's mirror
// is in sync with it, or why not.
func (s *State) mirrorState(p *Pod, v *PodView) {
	if !s.Agent.Apiserver {
		return
	}
	desired := !p.Removed && p.Spec != nil
	m := v.Mirror
	if m == nil {
		if !desired {
			return
		}
		m = &MirrorView{State: "missing"}
		v.Mirror = m
	}
	switch {
	case !s.Apiserver.Connected:
		reason := s.Apiserver.Reason
		if reason == "" {
			reason = "not connected yet"
		}
		m.State = "apiserver unreachable: " + reason
	case m.UID == "":
	case !desired:
		m.State = "orphaned"
	case m.Deleting:
		m.State = "deleting"
	case !m.Current:
		m.State = "outdated"
	case p.Mirror.StatusHash != StatusHash(p.APIStatus(s.Agent.NodeIP)),
		p.Mirror.ObservedDigest != "" && p.Mirror.ObservedDigest != MirrorStatusDigest(p.APIStatus(s.Agent.NodeIP)):
		m.State = "status pending"
	default:
		m.State = "synced"
	}
}

// DecodeSpec returns the pod's decoded spec (nil if it has none or it is
// unreadable). Callers must not modify it.
func (p *Pod) DecodeSpec() *corev1.Pod { return p.decoded }

func decodeSpec(b []byte) *corev1.Pod {
	if len(b) == 0 {
		return nil
	}
	var pod corev1.Pod
	if err := json.Unmarshal(b, &pod); err != nil {
		return nil
	}
	return &pod
}

// View renders the pod as of steady time now (see ViewsAt).
func (p *Pod) View(now int64) PodView {
	v := PodView{
		Namespace: p.Namespace, Name: p.Name, UID: p.UID, Source: p.Source, Path: p.Path,
		Hash: p.ConfigHash, CreatedAt: p.FirstSeen, Removed: p.Removed, Rejection: p.LastRejection,
		Containers: []ContainerView{},
	}
	if p.Mirror != nil {
		v.Mirror = &MirrorView{UID: p.Mirror.UID, Current: p.Mirror.ConfigMirror == p.ConfigHash, Deleting: p.Mirror.Deleting}
	}
	for _, sb := range sortedSandboxes(p) {
		if sb.UID == p.UID && sb.State == pb.StateReady {
			v.IP = sb.IP
		}
	}
	type slot struct {
		name    string
		init    bool
		sidecar bool // a native sidecar: restarts always, counts in READY
	}
	var slots []slot
	restartPolicy := corev1.RestartPolicyAlways
	if spec := p.DecodeSpec(); spec != nil {
		v.QOSClass = string(QOSClass(&spec.Spec))
		for _, c := range spec.Spec.InitContainers {
			slots = append(slots, slot{c.Name, true, isSidecar(&c)})
		}
		for _, c := range spec.Spec.Containers {
			slots = append(slots, slot{c.Name, false, false})
		}
		if spec.Spec.RestartPolicy != "" {
			restartPolicy = spec.Spec.RestartPolicy
		}
	} else {
		// No spec (an orphan the manifests never named): show what runs.
		seen := map[string]bool{}
		for _, c := range sortedContainers(p) {
			if !seen[c.Name] {
				seen[c.Name] = true
				slots = append(slots, slot{c.Name, c.Init, false})
			}
		}
	}
	latest, previous := p.latestByName()
	ready, apps, sidecars, running, exitedOK, exitedFail := 0, 0, 0, 0, 0, 0
	for _, sl := range slots {
		cv := ContainerView{Name: sl.name, Init: sl.init, State: "waiting"}
		if c := previous[sl.name]; c != nil && c.State == pb.StateExited {
			reason, msg := exitReason(c)
			cv.LastState = &Terminated{ContainerID: c.ID, ExitCode: c.ExitCode, Reason: reason, Message: msg, FinishedAt: c.FinishedAt}
		}
		if c := latest[sl.name]; c != nil {
			cv.ContainerID = c.ID
			cv.RestartCount = c.Attempt
			cv.ExitCode = c.ExitCode
			cv.Reason = c.Reason
			cv.StartedAt = c.StartedAt
			switch c.State {
			case pb.StateRunning:
				cv.State = pb.StateRunning
				cv.Ready = p.ContainerReady(c)
				cv.Message = probeWhy(p, c)
			case pb.StateExited:
				cv.State = pb.StateExited
				cv.Reason, cv.Message = exitReason(c)
			}
		}
		if f := p.Failures[sl.name]; f != nil && cv.State != "running" {
			cv.State = "waiting"
			cv.Reason = f.Reason
			if f.Count > 1 && now < f.NextTry && (f.Reason == "ErrImagePull" || f.Reason == "ErrImageNeverPull") {
				cv.Reason = "ImagePullBackOff"
			}
		} else if b := p.Backoff[sl.name]; b != nil && cv.State == "exited" && now < b.NextStart && (sl.sidecar || restarts(restartPolicy, cv.ExitCode)) {
			cv.State = "waiting"
			cv.Reason = "CrashLoopBackOff"
		}
		if sl.sidecar {
			// As kubectl: a sidecar counts in READY and RESTARTS, not in the phase.
			sidecars++
			v.Restarts += cv.RestartCount
			if cv.Ready {
				ready++
			}
		}
		if !sl.init {
			apps++
			v.Restarts += cv.RestartCount
			switch cv.State {
			case "running":
				running++
				if cv.Ready {
					ready++
				}
			case "exited", "waiting":
				if cv.ContainerID == "" {
					break
				}
				if cv.ExitCode == 0 {
					exitedOK++
				} else {
					exitedFail++
				}
			}
		}
		v.Containers = append(v.Containers, cv)
	}
	v.Ready = strconv.Itoa(ready) + "/" + strconv.Itoa(apps+sidecars)
	switch {
	case apps > 0 && running == apps:
		v.Phase = "Running"
	case apps > 0 && exitedOK == apps && restartPolicy != corev1.RestartPolicyAlways:
		v.Phase = "Succeeded"
	case apps > 0 && exitedOK+exitedFail == apps && exitedFail > 0 && restartPolicy == corev1.RestartPolicyNever:
		v.Phase = "Failed"
	case running > 0:
		v.Phase = "Running"
	case restartPolicy == corev1.RestartPolicyAlways && v.Restarts > 0:
		// Crash-looping: the kubelet keeps such a pod Running, restarting.
		v.Phase = "Running"
	default:
		v.Phase = "Pending"
	}
	v.Status = v.Phase
	for _, cv := range v.Containers {
		if cv.State == "waiting" && cv.Reason != "" {
			v.Status = cv.Reason
			break
		}
	}
	if p.Removed {
		v.Status = "Terminating"
	}
	return v
}

// probeWhy says why a running container is not (yet) started or ready.
func probeWhy(p *Pod, c *Container) string {
	switch {
	case !p.ContainerStarted(c) && c.Startup != nil && !c.Startup.Success:
		return probeMessage(pb.ProbeStartup, c.Startup)
	case c.Liveness != nil && !c.Liveness.Success:
		return probeMessage(pb.ProbeLiveness, c.Liveness)
	case !p.ContainerReady(c) && c.Readiness != nil && !c.Readiness.Success:
		return probeMessage(pb.ProbeReadiness, c.Readiness)
	}
	return ""
}

// latestByName picks, per container name, the newest and the one before it
// among the instances of the current UID.
func (p *Pod) latestByName() (latest, previous map[string]*Container) {
	latest, previous = map[string]*Container{}, map[string]*Container{}
	newer := func(a, b *Container) bool {
		return a.Attempt > b.Attempt || (a.Attempt == b.Attempt && a.StartedAt > b.StartedAt)
	}
	for _, c := range sortedContainers(p) {
		if p.UID != "" && c.UID != p.UID {
			continue
		}
		switch cur := latest[c.Name]; {
		case cur == nil:
			latest[c.Name] = c
		case newer(c, cur):
			previous[c.Name], latest[c.Name] = cur, c
		case previous[c.Name] == nil || newer(c, previous[c.Name]):
			previous[c.Name] = c
		}
	}
	return latest, previous
}

func sortedContainers(p *Pod) []*Container {
	out := make([]*Container, 0, len(p.Containers))
	for _, c := range p.Containers {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func sortedSandboxes(p *Pod) []*Sandbox {
	out := make([]*Sandbox, 0, len(p.Sandboxes))
	for _, sb := range p.Sandboxes {
		out = append(out, sb)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].CreatedAt != out[j].CreatedAt {
			return out[i].CreatedAt < out[j].CreatedAt
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func restarts(policy corev1.RestartPolicy, exitCode int32) bool {
	return policy == corev1.RestartPolicyAlways || policy == "" || (policy == corev1.RestartPolicyOnFailure && exitCode != 0)
}
