package projector

import (
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"

	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

// Back-off, as the kubelet's: 10s doubling to 5 min, reset after 10 min of running.
const (
	BackoffInitial = int64(10 * time.Second)
	BackoffMax     = int64(300 * time.Second)
	BackoffReset   = int64(10 * time.Minute)

	TeardownRetryInitial = int64(time.Second)
	TeardownRetryMax     = int64(time.Minute)
)

// ReasonStartError is containerd's reason for a container whose task never
// started.
const ReasonStartError = "StartError"

// Mirror actions that fail are retried sooner than container starts: the
// apiserver answering again should be seen within a second.
const (
	MirrorRetryInitial = int64(500 * time.Millisecond)
	MirrorRetryMax     = int64(10 * time.Second)
)

// Decision is one planned action for one pod.
type Decision struct {
	Pod    string
	Intent *pb.Intent
}

// Resolution settles an intent that an earlier run of the agent recorded
// without its outcome: this run has re-observed the lane's world (the
// runtime relisted, the mirrors listed), so the state already says what the
// action did, and the intent is closed as Reconciled.
type Resolution struct {
	Pod       string
	IntentSeq uint64
}

// Plan is what the planner decided at one point.
type Plan struct {
	Now       int64 // the steady time planned at (see Clock; ns)
	Decisions []Decision
	// Reconcile lists dangling intents of earlier runs to settle first.
	Reconcile []Resolution
	// Wake is the earliest steady time at which planning again could decide
	// something new without any new event (a back-off expiring); 0 if none.
	// Wake-Now is a duration: wait that long, never until a wall time.
	Wake int64
}

type laneKey struct {
	pod  string
	lane pb.Lane
}

// Plan compares desired and observed state at steady time now (s.SteadyAt of
// a clock reading; never a wall time) and decides, for each
// pod and lane independently, at most one next action. A pod's lane with an
// intent still pending gets nothing: the actions of one lane of a pod are
// strictly sequential, while its other lane goes on (a slow apiserver never
// holds back a restart). The result depends only on s and now.
//
// Nothing is planned on another run's facts: before this run's AgentStarted
// is folded nothing at all, the runtime lane only once the runtime connected
// (and was relisted) in this run, the mirror lane only once the apiserver
// answered and listed this node's mirrors in this run, and nothing is removed
// for want of a manifest until every configured source listed in this run.
func (s *State) Plan(now int64) Plan {
	plan := Plan{Now: now}
	if !s.Agent.Running {
		return plan
	}
	ready := map[pb.Lane]bool{
		pb.LaneRuntime: s.Runtime.Connected,
		pb.LaneMirror:  s.mirrorLaneReady(),
	}
	busy := map[laneKey]bool{}
	for _, seq := range sortedSeqs(s.Pending) {
		in := s.Pending[seq]
		lane := in.Action.Lane()
		busy[laneKey{in.Pod, lane}] = true
		if seq < s.Agent.StartSeq && ready[lane] {
			plan.Reconcile = append(plan.Reconcile, Resolution{Pod: in.Pod, IntentSeq: seq})
		}
	}
	if len(plan.Reconcile) > 0 {
		return plan // settle the past before deciding anything new
	}
	orphansOK := s.sourcesSynced()
	keys := make([]string, 0, len(s.Pods))
	for k := range s.Pods {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := s.Pods[k]
		if p.Spec == nil && !orphansOK {
			// Not named by any manifest we know, and the sources have not yet
			// finished listing: it may be wanted. Touch nothing.
			continue
		}
		var in *pb.Intent
		var wake int64
		if ready[pb.LaneRuntime] && !busy[laneKey{k, pb.LaneRuntime}] {
			in, wake = p.plan(now)
			if in != nil {
				plan.Decisions = append(plan.Decisions, Decision{Pod: k, Intent: in})
			}
			plan.Wake = minWake(plan.Wake, futureOnly(wake, now))
		}
		if ready[pb.LaneMirror] && !busy[laneKey{k, pb.LaneMirror}] {
			in, wake = p.planMirror(s.Agent.NodeIP, now)
			if in != nil {
				plan.Decisions = append(plan.Decisions, Decision{Pod: k, Intent: in})
			}
			plan.Wake = minWake(plan.Wake, futureOnly(wake, now))
		}
	}
	if ready[pb.LaneRuntime] && orphansOK {
		in, wake := s.planCleanup(busy, plan.Decisions, now)
		plan.Decisions = append(plan.Decisions, in...)
		plan.Wake = minWake(plan.Wake, futureOnly(wake, now))
	}
	return plan
}

func futureOnly(wake, now int64) int64 {
	if wake > now {
		return wake
	}
	return 0
}

func sortedSeqs(m map[uint64]*PendingIntent) []uint64 {
	out := make([]uint64, 0, len(m))
	for seq := range m {
		out = append(out, seq)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// mirrorLaneReady: mirrors are kept (a kubeconfig was given), and in this
// run the apiserver answered as this node and listed its mirrors.
func (s *State) mirrorLaneReady() bool {
	return s.Agent.Apiserver && s.Apiserver.Connected && s.Apiserver.MirrorsSynced
}

// sourcesSynced is true once every source configured in this run has
// listed in this run.
func (s *State) sourcesSynced() bool {
	if len(s.Sources) == 0 {
		return false
	}
	for _, src := range s.Sources {
		if !src.Synced {
			return false
		}
	}
	return true
}

// planMirror decides the pod's next mirror action, as the kubelet's syncPod
// does for static pods: a mirror that is missing is created; one that is
// being deleted, is of another config hash or has no static pod any more is
// deleted (then created again if the pod is desired); a current one gets the
// pod's status when it changed.
func (p *Pod) planMirror(nodeIP string, now int64) (*pb.Intent, int64) {
	if f := p.Failures[mirrorFailureKey]; f != nil && now < f.NextTry {
		return nil, f.NextTry
	}
	desired := !p.Removed && p.Spec != nil
	m := p.Mirror
	switch {
	case m != nil && !desired:
		return &pb.Intent{Action: string(pb.ActionMirrorDelete), Uid: p.UID, MirrorUid: m.UID, Reason: "no static pod"}, 0
	case m != nil && m.Deleting:
		return &pb.Intent{Action: string(pb.ActionMirrorDelete), Uid: p.UID, MirrorUid: m.UID, Reason: "mirror pod being deleted"}, 0
	case m != nil && m.ConfigMirror != p.ConfigHash:
		return &pb.Intent{Action: string(pb.ActionMirrorDelete), Uid: p.UID, MirrorUid: m.UID, ConfigHash: m.ConfigMirror,
			Reason: "mirror pod of another version"}, 0
	case m == nil && desired:
		return &pb.Intent{Action: string(pb.ActionMirrorCreate), Uid: p.UID, ConfigHash: p.ConfigHash, Reason: "no mirror pod"}, 0
	case m != nil:
		st := p.APIStatus(nodeIP)
		h, dg := StatusHash(st), MirrorStatusDigest(st)
		if h != m.StatusHash {
			return &pb.Intent{Action: string(pb.ActionMirrorStatus), Uid: p.UID, MirrorUid: m.UID, StatusHash: h, StatusDigest: dg,
				Reason: "status changed"}, 0
		}
		// What was published was since changed by another writer (the node
		// lifecycle controller marks every pod of a node it thought lost
		// NotReady, and leaves it to the node to say otherwise): publish again,
		// as the kubelet's status manager reconciles against the apiserver.
		if m.ObservedDigest != "" && m.ObservedDigest != dg {
			return &pb.Intent{Action: string(pb.ActionMirrorStatus), Uid: p.UID, MirrorUid: m.UID, StatusHash: h, StatusDigest: dg,
				Reason: "mirror status changed by another writer"}, 0
		}
	}
	return nil, 0
}

// mirrorFailureKey names mirror failures in Pod.Failures.
const mirrorFailureKey = "mirror:"

// plan decides the pod's next action, or the time to look again.
func (p *Pod) plan(now int64) (*pb.Intent, int64) {
	spec := p.decoded
	desired := !p.Removed && spec != nil
	keep := ""
	if desired {
		keep = p.UID
	}
	// Whatever is not the current pod goes first, fully, before the new one
	// starts: never two versions at once.
	if in, wake := p.teardown(keep, now); in != nil || wake != 0 {
		return in, wake
	}
	if !desired {
		return nil, 0
	}

	sb := p.readySandbox()
	if sb == nil {
		if f := p.Failures[""]; f != nil && now < f.NextTry {
			return nil, f.NextTry
		}
		return &pb.Intent{Action: string(pb.ActionRunSandbox), Uid: p.UID, Attempt: p.nextSandboxAttempt(), Reason: "no ready sandbox"}, 0
	}

	policy := spec.Spec.RestartPolicy
	grace := int64(30)
	if g := spec.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = *g
	}
	if in, wake := p.planPostStart(grace, now); in != nil || wake != 0 {
		return in, wake
	}
	in, wake, blocked := p.planInit(spec, sb, grace, now)
	if in != nil || blocked {
		return in, wake
	}
	for i := range spec.Spec.Containers {
		c := &spec.Spec.Containers[i]
		cur := p.latest(c.Name, sb.ID)
		if cur == nil {
			in, w := p.start(c, sb, false, grace, now, "container not started")
			if in != nil {
				return in, 0
			}
			wake = minWake(wake, w)
			continue
		}
		if cur.State == pb.StateCreated {
			return p.removeUnstarted(cur, now)
		}
		if cur.State != pb.StateExited {
			if in, w := p.probeKill(c, cur, grace, now); in != nil || w != 0 {
				if in != nil {
					return in, 0
				}
				wake = minWake(wake, w)
			}
			continue
		}
		restart := policy == corev1.RestartPolicyAlways || policy == "" ||
			(policy == corev1.RestartPolicyOnFailure && cur.ExitCode != 0)
		if !restart {
			continue
		}
		in, w := p.restart(c, sb, cur, false, grace, now, "container exited")
		if in != nil {
			return in, 0
		}
		wake = minWake(wake, w)
	}
	// Keep one dead instance per container name (for logs --previous and
	// the last state), like the kubelet's garbage collector: an exited
	// instance goes once a newer one has exited too.
	for _, c := range sortedContainers(p) {
		if c.State == pb.StateExited && c.UID == p.UID {
			if dead := p.latestExited(c.Name); dead != nil && dead.ID != c.ID && dead.Attempt > c.Attempt {
				return p.retryable(&pb.Intent{Action: string(pb.ActionRemoveContainer), Uid: c.UID, Container: c.Name, ContainerId: c.ID,
					Reason: "superseded by a newer attempt"}, now)
			}
		}
	}
	return nil, wake
}

// planInit decides the init containers' next action, as the kubelet's
// computeInitContainerActions: regular init containers run in order to
// completion; a native sidecar (restartPolicy Always) is started, and the
// next one follows once it is started (running, its startup probe passed);
// a sidecar that exits is restarted under the back-off whatever the pod's
// restart policy. Once the app containers started (the pod is initialized)
// regular init containers are done and a sidecar's restart no longer holds
// the app containers back. When the pod is finished — its app containers
// exited for good, or an init container failed under restartPolicy Never —
// the sidecars are stopped, the last started first. blocked: the app
// containers must wait.
func (p *Pod) planInit(spec *corev1.Pod, sb *Sandbox, grace, now int64) (in *pb.Intent, wake int64, blocked bool) {
	policy := spec.Spec.RestartPolicy
	initialized := false
	for i := range spec.Spec.Containers {
		initialized = initialized || p.latest(spec.Spec.Containers[i].Name, sb.ID) != nil
	}
	if initialized && p.appsFinished(spec, sb) {
		in, wake := p.stopSidecars(spec, sb, grace, now, "the pod's containers completed")
		return in, wake, true
	}
	for i := range spec.Spec.InitContainers {
		c := &spec.Spec.InitContainers[i]
		cur := p.latest(c.Name, sb.ID)
		if isSidecar(c) {
			in, w, started := p.planSidecar(c, sb, cur, grace, now)
			if in != nil {
				return in, 0, true
			}
			wake = minWake(wake, w)
			if !started && !initialized {
				return nil, wake, true // the next init container waits for this one
			}
			continue
		}
		if initialized {
			continue // regular init containers ran before the app containers
		}
		switch {
		case cur == nil:
			in, w := p.start(c, sb, true, grace, now, "init container not run")
			return in, minWake(wake, w), true
		case cur.State == pb.StateCreated:
			in, w := p.removeUnstarted(cur, now)
			return in, minWake(wake, w), true
		case cur.State == pb.StateRunning || cur.State == pb.StateUnknown:
			return nil, wake, true // wait for it to finish
		case cur.ExitCode == 0:
			continue
		case policy == corev1.RestartPolicyNever:
			// The pod has failed: only its sidecars still have to stop.
			in, w := p.stopSidecars(spec, sb, grace, now, "an init container failed")
			return in, w, true
		default:
			in, w := p.restart(c, sb, cur, true, grace, now, "init container failed")
			return in, minWake(wake, w), true
		}
	}
	return nil, wake, false
}

// planSidecar decides a native sidecar's next action; started: it runs and
// its startup probe (if any) passed, so the init sequence may go on.
func (p *Pod) planSidecar(c *corev1.Container, sb *Sandbox, cur *Container, grace, now int64) (*pb.Intent, int64, bool) {
	switch {
	case cur == nil:
		in, w := p.start(c, sb, true, grace, now, "sidecar not started")
		return in, w, false
	case cur.State == pb.StateCreated:
		in, w := p.removeUnstarted(cur, now)
		return in, w, false
	case cur.State == pb.StateRunning:
		in, w := p.probeKill(c, cur, grace, now)
		return in, w, in == nil && p.ContainerStarted(cur)
	case cur.State == pb.StateExited:
		in, w := p.restart(c, sb, cur, true, grace, now, "sidecar exited")
		return in, w, false
	}
	return nil, 0, false // unknown: wait for the runtime to say
}

// appsFinished: every app container ran in this sandbox and exited for good
// under the pod's restart policy.
func (p *Pod) appsFinished(spec *corev1.Pod, sb *Sandbox) bool {
	for i := range spec.Spec.Containers {
		cur := p.latest(spec.Spec.Containers[i].Name, sb.ID)
		if cur == nil || cur.State != pb.StateExited || restarts(spec.Spec.RestartPolicy, cur.ExitCode) {
			return false
		}
	}
	return true
}

// stopSidecars stops the running sidecars, the last one started first (the
// reverse of their order in the spec), as the kubelet does when a pod ends.
func (p *Pod) stopSidecars(spec *corev1.Pod, sb *Sandbox, grace, now int64, why string) (*pb.Intent, int64) {
	for i := len(spec.Spec.InitContainers) - 1; i >= 0; i-- {
		c := &spec.Spec.InitContainers[i]
		if !isSidecar(c) {
			continue
		}
		if cur := p.latest(c.Name, sb.ID); cur != nil && cur.State == pb.StateRunning {
			return p.retryable(stopContainer(cur, grace, "sidecar stopped: "+why), now)
		}
	}
	return nil, 0
}

// isSidecar: an init container with restartPolicy Always (a native sidecar).
func isSidecar(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// Reasons of the stops the planner decides when a probe fails, in the
// kubelet's words ("Liveness probe failed: …" is its event message).
const (
	reasonLivenessFailed = "liveness probe failed"
	reasonStartupFailed  = "startup probe failed"
)

// reasonFailedPostStart is the reason of the stop of a container whose
// postStart hook failed (the kubelet's kill message).
const reasonFailedPostStart = "FailedPostStartHook"

// killReason is what the view shows for an instance stopped for reason:
// the kubelet's kill reason for a failed probe or hook, else "".
func killReason(reason string) string {
	switch reason {
	case reasonLivenessFailed:
		return ReasonLivenessProbe
	case reasonStartupFailed:
		return ReasonStartupProbe
	case reasonFailedPostStart:
		return ReasonFailedPostStartHook
	}
	return ""
}

// minGraceAfterPreStop: after a preStop hook the container still gets this
// many seconds before SIGKILL (the kubelet's minimumGracePeriodInSeconds).
const minGraceAfterPreStop = 2

// stopContainer plans the stop of a running container as the kubelet's
// killContainer: its preStop hook first (RunPreStop) when it has one not yet
// run and there is grace to run it in, then StopContainer with what the hook
// left of the grace period. Both carry the same reason.
func stopContainer(c *Container, grace int64, reason string) *pb.Intent {
	in := &pb.Intent{Action: string(pb.ActionStopContainer), Uid: c.UID, Container: c.Name, ContainerId: c.ID,
		SandboxId: c.SandboxID, GracePeriodSeconds: grace, Reason: reason}
	switch {
	case c.HasPreStop && !c.PreStopDone && grace > 0:
		in.Action = string(pb.ActionRunPreStop)
	case c.PreStopDone:
		in.GracePeriodSeconds = max(grace-c.PreStopSeconds, minGraceAfterPreStop)
	}
	return in
}

// planPostStart runs a started container's postStart hook before anything
// else happens in the pod (the kubelet runs it inside the start, so the next
// container waits for it), and stops a container whose hook failed.
func (p *Pod) planPostStart(grace, now int64) (*pb.Intent, int64) {
	for _, c := range sortedContainers(p) {
		if c.UID != p.UID || c.Stale || c.State != pb.StateRunning {
			continue
		}
		switch {
		case c.PostStartPending:
			return &pb.Intent{Action: string(pb.ActionRunPostStart), Uid: c.UID, Container: c.Name, ContainerId: c.ID,
				SandboxId: c.SandboxID, Reason: "container started"}, 0
		case c.PostStartError != "":
			return p.retryable(stopContainer(c, grace, reasonFailedPostStart), now)
		}
	}
	return nil, 0
}

// probeKill stops a running container whose liveness or startup probe
// failed, as the kubelet's computePodActions does; the restart policy and
// back-off then decide when it runs again. The grace is the probe's
// terminationGracePeriodSeconds when set, else the pod's.
func (p *Pod) probeKill(c *corev1.Container, cur *Container, grace, now int64) (*pb.Intent, int64) {
	if cur.State != pb.StateRunning {
		return nil, 0
	}
	var probe *corev1.Probe
	var reason string
	switch {
	case c.LivenessProbe != nil && cur.Liveness != nil && !cur.Liveness.Success:
		probe, reason = c.LivenessProbe, reasonLivenessFailed
	case c.StartupProbe != nil && cur.Startup != nil && !cur.Startup.Success:
		probe, reason = c.StartupProbe, reasonStartupFailed
	default:
		return nil, 0
	}
	if g := probe.TerminationGracePeriodSeconds; g != nil {
		grace = *g
	}
	return p.retryable(stopContainer(cur, grace, reason), now)
}

// removeUnstarted clears a container that was created but never started:
// the agent died between the two CRI calls (no intent is pending for the
// pod, or it would not be planned for). A fresh start follows.
func (p *Pod) removeUnstarted(c *Container, now int64) (*pb.Intent, int64) {
	return p.retryable(&pb.Intent{Action: string(pb.ActionRemoveContainer), Uid: c.UID, Container: c.Name, ContainerId: c.ID,
		SandboxId: c.SandboxID, Reason: "created but never started"}, now)
}

// retryable returns in unless a step on the same object failed recently:
// every failing step backs off (containerd refuses to remove a container it
// is still starting; retrying at once floods the log).
func (p *Pod) retryable(in *pb.Intent, now int64) (*pb.Intent, int64) {
	if f := p.Failures[objectKey(in.ContainerId, in.SandboxId)]; f != nil && now < f.NextTry {
		return nil, f.NextTry
	}
	return in, 0
}

func minWake(a, b int64) int64 {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

// teardown returns the next step in removing everything not of UID keep,
// or the time to retry a step that failed.
func (p *Pod) teardown(keep string, now int64) (*pb.Intent, int64) {
	step := func(in *pb.Intent) (*pb.Intent, int64) { return p.retryable(in, now) }
	cs := sortedContainers(p)
	// App containers stop before the init containers still running (native
	// sidecars), and sidecars in the reverse of the order they started.
	for _, c := range stopOrder(cs) {
		if !c.keptBy(keep) && c.State != pb.StateExited {
			return step(stopContainer(c, c.graceOr(30), teardownReason(keep)))
		}
	}
	sbs := sortedSandboxes(p)
	// A sandbox that is not ready cannot host containers: stop what runs in
	// it, then replace it.
	for _, sb := range sbs {
		if sb.keptBy(keep) && sb.State != pb.StateReady {
			for _, c := range cs {
				if c.SandboxID == sb.ID && c.State != pb.StateExited {
					return step(stopContainer(c, c.graceOr(30), "sandbox not ready"))
				}
			}
		}
	}
	for _, c := range cs {
		if !c.keptBy(keep) {
			return step(&pb.Intent{Action: string(pb.ActionRemoveContainer), Uid: c.UID, Container: c.Name, ContainerId: c.ID, Reason: teardownReason(keep)})
		}
	}
	for _, sb := range sbs {
		if !sb.keptBy(keep) && sb.State == pb.StateReady {
			return step(&pb.Intent{Action: string(pb.ActionStopSandbox), Uid: sb.UID, SandboxId: sb.ID, Reason: teardownReason(keep)})
		}
	}
	for _, sb := range sbs {
		if !sb.keptBy(keep) || sb.State != pb.StateReady {
			// The pod's data (emptyDirs) and cgroup go with the last sandbox
			// of a UID that is no longer desired — never while it continues.
			removeData := sb.UID != keep && p.onlySandboxOf(sb)
			return step(&pb.Intent{Action: string(pb.ActionRemoveSandbox), Uid: sb.UID, SandboxId: sb.ID,
				RemovePodData: removeData, Reason: teardownReason(keep)})
		}
	}
	return nil, 0
}

// stopOrder orders containers for stopping a pod: app containers by ID,
// then init containers, the most recently started first.
func stopOrder(cs []*Container) []*Container {
	out := make([]*Container, 0, len(cs))
	var inits []*Container
	for _, c := range cs {
		if c.Init {
			inits = append(inits, c)
		} else {
			out = append(out, c)
		}
	}
	sort.SliceStable(inits, func(i, j int) bool { return inits[i].StartedAt > inits[j].StartedAt })
	return append(out, inits...)
}

// onlySandboxOf: no other sandbox of sb's UID is known.
func (p *Pod) onlySandboxOf(sb *Sandbox) bool {
	for id, o := range p.Sandboxes {
		if id != sb.ID && o.UID == sb.UID {
			return false
		}
	}
	return true
}

func (c *Container) keptBy(uid string) bool { return uid != "" && c.UID == uid && !c.Stale }
func (sb *Sandbox) keptBy(uid string) bool  { return uid != "" && sb.UID == uid && !sb.Stale }

// objectKey names a runtime object in Pod.Failures (teardown steps fail per object).
func objectKey(containerID, sandboxID string) string {
	if containerID != "" {
		return "id:" + containerID
	}
	return "id:" + sandboxID
}

func teardownReason(keep string) string {
	if keep == "" {
		return "pod no longer desired"
	}
	return "replaced by a new version of the pod"
}

func (c *Container) graceOr(def int64) int64 {
	if c.Grace > 0 {
		return c.Grace
	}
	return def
}

func (p *Pod) readySandbox() *Sandbox {
	var best *Sandbox
	for _, sb := range sortedSandboxes(p) {
		if sb.UID == p.UID && sb.State == pb.StateReady && !sb.Stale {
			best = sb // sorted by creation: the newest wins
		}
	}
	return best
}

func (p *Pod) nextSandboxAttempt() uint32 {
	var n uint32
	found := false
	for _, sb := range p.Sandboxes {
		if sb.UID == p.UID && (!found || sb.Attempt >= n) {
			n, found = sb.Attempt, true
		}
	}
	if found {
		return n + 1
	}
	return 0
}

// latest is the newest instance (highest attempt) of a container of the
// current UID, within sandbox sandboxID when it is not empty.
func (p *Pod) latest(name, sandboxID string) *Container {
	var best *Container
	for _, c := range sortedContainers(p) {
		if c.UID != p.UID || c.Name != name || (sandboxID != "" && c.SandboxID != sandboxID) {
			continue
		}
		if best == nil || c.Attempt > best.Attempt {
			best = c
		}
	}
	return best
}

// latestExited is the newest exited instance of a container of the current UID.
func (p *Pod) latestExited(name string) *Container {
	var best *Container
	for _, c := range sortedContainers(p) {
		if c.UID == p.UID && c.Name == name && c.State == pb.StateExited && (best == nil || c.Attempt > best.Attempt) {
			best = c
		}
	}
	return best
}

// start plans the first run of a container in this sandbox; its attempt
// continues the count from earlier sandboxes so restart counts never go back.
func (p *Pod) start(c *corev1.Container, sb *Sandbox, init bool, grace, now int64, why string) (*pb.Intent, int64) {
	if f := p.Failures[c.Name]; f != nil && now < f.NextTry {
		return nil, f.NextTry
	}
	var attempt uint32
	if prev := p.latest(c.Name, ""); prev != nil {
		attempt = prev.Attempt + 1
	}
	return p.startIntent(c, sb, init, attempt, grace, why), 0
}

func (p *Pod) restart(c *corev1.Container, sb *Sandbox, cur *Container, init bool, grace, now int64, why string) (*pb.Intent, int64) {
	if b := p.Backoff[c.Name]; b != nil && now < b.NextStart {
		return nil, b.NextStart
	}
	if f := p.Failures[c.Name]; f != nil && now < f.NextTry {
		return nil, f.NextTry
	}
	return p.startIntent(c, sb, init, cur.Attempt+1, grace, why), 0
}

func (p *Pod) startIntent(c *corev1.Container, sb *Sandbox, init bool, attempt uint32, grace int64, why string) *pb.Intent {
	reason := why
	if init {
		reason = "init: " + why
	}
	return &pb.Intent{Action: string(pb.ActionStartContainer), Uid: p.UID, Container: c.Name, Attempt: attempt,
		Image: c.Image, SandboxId: sb.ID, GracePeriodSeconds: grace, Reason: reason}
}

// noteExit folds a container's exit into its back-off; steady is the exit's
// steady time (see Clock), which the back-off counts from.
func (p *Pod) noteExit(c *Container, steady int64) {
	if p.Backoff == nil {
		p.Backoff = map[string]*Backoff{}
	}
	b := p.Backoff[c.Name]
	if b == nil {
		b = &Backoff{}
		p.Backoff[c.Name] = b
	}
	if a, ok := p.Interrupted[c.Name]; ok && a == c.Attempt {
		delete(p.Interrupted, c.Name)
		if c.Reason == ReasonStartError {
			// The agent died while starting it: not a crash of the
			// container, so no back-off; start it again at once.
			b.NextStart = steady
			return
		}
	}
	ran := c.FinishedAt - c.StartedAt
	if c.StartedSteady != 0 {
		// How long it ran by the steady clock: a wall clock stepped while
		// it ran says nothing about that.
		ran = steady - c.StartedSteady
	}
	switch {
	case b.Delay == 0 || (c.StartedAt > 0 && c.FinishedAt > 0 && ran >= BackoffReset):
		b.Delay = BackoffInitial
	default:
		b.Delay = min(b.Delay*2, BackoffMax)
	}
	b.Exits++
	b.NextStart = steady + b.Delay
}

// applyOutcome folds what an action did into the observed state, so the
// planner does not repeat it before the next relist confirms it.
//
// now is the outcome's wall time (what records show), steady its steady
// time (what deadlines count from).
func (s *State) applyOutcome(in *PendingIntent, d *pb.Outcome, now, steady int64) {
	if in.Action == pb.ActionCleanupPod {
		if d.Reason != pb.ReasonReconciled {
			s.cleanupOutcome(in, d, now, steady)
		}
		return
	}
	p := s.Pods[in.Pod]
	if p == nil {
		return
	}
	switch in.Action {
	case pb.ActionRunPostStart, pb.ActionRunPreStop:
		// A hook runs once per instance, whatever its outcome: a failed
		// preStop does not hold the stop back (as the kubelet), a failed
		// postStart stops the instance, and one an agent crash cut short is
		// not run again (its effect is unknown; running it twice could harm).
		if c := p.Containers[in.ContainerID]; c != nil {
			if in.Action == pb.ActionRunPreStop {
				c.PreStopDone, c.PreStopSeconds = true, (steady-in.Steady)/int64(time.Second)
			} else {
				c.PostStartPending = false
				if !d.Ok && d.Reason != pb.ReasonReconciled {
					c.PostStartError = d.Error
					if c.PostStartError == "" {
						c.PostStartError = d.Reason
					}
				}
			}
		}
		return
	}
	if d.Reason == pb.ReasonReconciled {
		// The relist already told the truth. A start cut short by the
		// agent's own death is remembered, so its failure is not the
		// container's (see noteExit).
		if in.Action == pb.ActionStartContainer && in.UID == p.UID {
			for _, c := range p.Containers {
				if c.UID == in.UID && c.Name == in.Container && c.Attempt == in.Attempt &&
					c.State == pb.StateExited && c.Reason == ReasonStartError {
					// Already seen ending: undo the back-off it was given.
					if b := p.Backoff[c.Name]; b != nil {
						b.NextStart = steady
					}
					return
				}
			}
			if p.Interrupted == nil {
				p.Interrupted = map[string]uint32{}
			}
			p.Interrupted[in.Container] = in.Attempt
		}
		return
	}
	key, base, ceiling := in.Container, BackoffInitial, BackoffMax
	switch in.Action {
	case pb.ActionRunSandbox:
		key = ""
	case pb.ActionStartContainer:
	case pb.ActionMirrorCreate, pb.ActionMirrorDelete, pb.ActionMirrorStatus:
		key, base, ceiling = mirrorFailureKey, MirrorRetryInitial, MirrorRetryMax
	default:
		// Teardown steps usually fail for a moment (a container still
		// starting); retry them sooner.
		key, base, ceiling = objectKey(in.ContainerID, in.SandboxID), TeardownRetryInitial, TeardownRetryMax
	}
	if !d.Ok && d.Reason == pb.ReasonNameReserved {
		// An earlier run's create is still under way: look again soon.
		base, ceiling = TeardownRetryInitial, TeardownRetryMax
	}
	if !d.Ok {
		if p.Failures == nil {
			p.Failures = map[string]*Failure{}
		}
		f := p.Failures[key]
		if f == nil {
			f = &Failure{}
			p.Failures[key] = f
		}
		f.Count++
		f.Reason, f.Message, f.At = d.Reason, d.Error, now
		f.NextTry = steady + min(base<<min(f.Count-1, 10), ceiling)
		return
	}
	delete(p.Failures, key)
	switch in.Action {
	case pb.ActionRunSandbox:
		if p.Sandboxes == nil {
			p.Sandboxes = map[string]*Sandbox{}
		}
		p.Sandboxes[d.SandboxId] = &Sandbox{ID: d.SandboxId, UID: in.UID, Attempt: in.Attempt, State: pb.StateReady, IP: d.Ip, CreatedAt: now,
			Stale: in.Generation != p.Generation}
	case pb.ActionStartContainer:
		if p.Containers == nil {
			p.Containers = map[string]*Container{}
		}
		p.Containers[d.ContainerId] = &Container{ID: d.ContainerId, UID: in.UID, SandboxID: in.SandboxID, Name: in.Container,
			Attempt: in.Attempt, State: pb.StateRunning, StartedAt: now, StartedSteady: steady, Grace: in.Grace, Stale: in.Generation != p.Generation,
			ImageRef: d.ImageRef, Init: in.Init, PostStartPending: in.PostStart, HasPreStop: in.PreStop}
	case pb.ActionStopContainer:
		if c := p.Containers[in.ContainerID]; c != nil && c.State != pb.StateExited {
			c.State, c.FinishedAt = pb.StateExited, now
			if c.Reason == "" {
				c.Reason = "Killed"
			}
			// An exit is an exit, whichever of the outcome and the relist
			// tells it first: a container stopped for a failed probe backs
			// off like one that crashed (CrashLoopBackOff counts it).
			if c.UID == p.UID {
				p.noteExit(c, steady)
			}
		}
	case pb.ActionRemoveContainer:
		delete(p.Containers, in.ContainerID)
		s.dropIfGone(p)
	case pb.ActionStopSandbox:
		if sb := p.Sandboxes[in.SandboxID]; sb != nil {
			sb.State = pb.StateNotReady
		}
	case pb.ActionRemoveSandbox:
		delete(p.Sandboxes, in.SandboxID)
		if lo := s.Leftovers[in.UID]; lo != nil && in.RemovePodData {
			lo.Cleaned, lo.Failure = steady, nil
		}
		s.dropIfGone(p)
	case pb.ActionMirrorCreate:
		p.Mirror = &Mirror{UID: d.MirrorUid, ConfigMirror: in.ConfigHash, Since: now}
	case pb.ActionMirrorDelete:
		if p.Mirror != nil && p.Mirror.UID == in.MirrorUID {
			p.Mirror = nil
			s.dropIfGone(p)
		}
	case pb.ActionMirrorStatus:
		if p.Mirror != nil && p.Mirror.UID == in.MirrorUID {
			p.Mirror.StatusHash = in.StatusHash
			if in.StatusDigest != "" {
				p.Mirror.ObservedDigest = in.StatusDigest
			}
		}
	}
}

// LeftoverRecheck is how long a cleaned UID is still watched on disk: a
// sandbox create an earlier run left in flight in containerd can recreate
// the pod's cgroup after it was removed.
const LeftoverRecheck = int64(10 * time.Minute)

// planCleanup removes what UIDs no longer desired left on the node (cgroup,
// data) once the runtime holds nothing of them and every source has listed:
// the removal planned with a UID's last sandbox may have been cut short by a
// crash or failed, or containerd may have created a cgroup for a sandbox that
// never came to be. One step per pod key at a time, like every runtime step.
func (s *State) planCleanup(busy map[laneKey]bool, planned []Decision, now int64) ([]Decision, int64) {
	taken := map[string]bool{}
	for _, d := range planned {
		if pb.Action(d.Intent.Action).Lane() == pb.LaneRuntime {
			taken[d.Pod] = true
		}
	}
	uids := make([]string, 0, len(s.Leftovers))
	for uid := range s.Leftovers {
		uids = append(uids, uid)
	}
	sort.Strings(uids)
	var out []Decision
	var wake int64
next:
	for _, uid := range uids {
		lo := s.Leftovers[uid]
		if lo.Cleaned != 0 || busy[laneKey{lo.Pod, pb.LaneRuntime}] || taken[lo.Pod] {
			continue
		}
		for _, p := range s.Pods {
			if p.UID == uid && !p.Removed && p.Spec != nil {
				continue next // still desired: its data is in use
			}
			for _, sb := range p.Sandboxes {
				if sb.UID == uid {
					continue next
				}
			}
			for _, c := range p.Containers {
				if c.UID == uid {
					continue next
				}
			}
		}
		if f := lo.Failure; f != nil && now < f.NextTry {
			wake = minWake(wake, f.NextTry)
			continue
		}
		taken[lo.Pod] = true
		out = append(out, Decision{Pod: lo.Pod, Intent: &pb.Intent{Action: string(pb.ActionCleanupPod), Uid: uid,
			Reason: "data of a removed pod may remain"}})
	}
	return out, wake
}

// cleanupOutcome folds a CleanupPod's outcome into the UID's leftover.
func (s *State) cleanupOutcome(in *PendingIntent, d *pb.Outcome, now, steady int64) {
	lo := s.Leftovers[in.UID]
	if lo == nil {
		return
	}
	if d.Ok {
		lo.Cleaned, lo.Failure = steady, nil
		return
	}
	f := lo.Failure
	if f == nil {
		f = &Failure{}
		lo.Failure = f
	}
	f.Count++
	f.Reason, f.Message, f.At = d.Reason, d.Error, now
	f.NextTry = steady + min(TeardownRetryInitial<<min(f.Count-1, 10), TeardownRetryMax)
}

// pruneLeftovers forgets UIDs cleaned longer than LeftoverRecheck ago (in
// steady time).
func (s *State) pruneLeftovers(steady int64) {
	for uid, lo := range s.Leftovers {
		if lo.Cleaned != 0 && steady-lo.Cleaned > LeftoverRecheck {
			delete(s.Leftovers, uid)
		}
	}
}
