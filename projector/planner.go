package projector

import (
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"

	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

// Actions the planner decides on. Each is one Intent event; the runtime
// driver carries it out and records an Outcome.
const (
	ActionRunSandbox      = "RunSandbox"      // create and start the pod sandbox
	ActionStartContainer  = "StartContainer"  // ensure the image, create and start one container
	ActionStopContainer   = "StopContainer"   // SIGTERM, then SIGKILL after the grace period
	ActionRemoveContainer = "RemoveContainer" // delete an exited container
	ActionStopSandbox     = "StopSandbox"     // stop the sandbox (its containers are already stopped)
	ActionRemoveSandbox   = "RemoveSandbox"   // delete the sandbox; the pod's cgroup and emptyDirs when it was the last
)

// Observed states of sandboxes and containers.
const (
	StateReady    = "ready"
	StateNotReady = "notready"
	StateCreated  = "created"
	StateRunning  = "running"
	StateExited   = "exited"
	StateUnknown  = "unknown"
)

// Back-off, as the kubelet's: 10s doubling to 5 min, reset after 10 min of running.
const (
	BackoffInitial = int64(10 * time.Second)
	BackoffMax     = int64(300 * time.Second)
	BackoffReset   = int64(10 * time.Minute)

	TeardownRetryInitial = int64(time.Second)
	TeardownRetryMax     = int64(time.Minute)
)

// ReasonReconciled marks the outcome of an intent whose effect was never
// recorded (the agent died mid-action); the runtime was re-listed instead.
const ReasonReconciled = "Reconciled"

// Decision is one planned action for one pod.
type Decision struct {
	Pod    string
	Intent *pb.Intent
}

// Plan is what the planner decided at one point.
type Plan struct {
	Decisions []Decision
	// Wake is the earliest time (unix ns) at which planning again could decide
	// something new without any new event (a back-off expiring); 0 if none.
	Wake int64
}

// Plan compares desired and observed state at time now and decides, for each
// pod independently, at most one next action. A pod with an intent still
// pending gets nothing: actions on a pod are strictly sequential. The result
// depends only on s and now.
func (s *State) Plan(now int64) Plan {
	var plan Plan
	if !s.Runtime.Connected {
		return plan
	}
	busy := map[string]bool{}
	for _, in := range s.Pending {
		busy[in.Pod] = true
	}
	orphansOK := s.sourcesSynced()
	keys := make([]string, 0, len(s.Pods))
	for k := range s.Pods {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if busy[k] {
			continue
		}
		p := s.Pods[k]
		if p.Spec == nil && !orphansOK {
			// Not named by any manifest we know, and the sources have not yet
			// finished listing: it may be wanted. Touch nothing.
			continue
		}
		in, wake := p.plan(now)
		if in != nil {
			plan.Decisions = append(plan.Decisions, Decision{Pod: k, Intent: in})
		}
		if wake > now && (plan.Wake == 0 || wake < plan.Wake) {
			plan.Wake = wake
		}
	}
	return plan
}

// sourcesSynced is true once every known source has listed in this run.
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
		return &pb.Intent{Action: ActionRunSandbox, Uid: p.UID, Attempt: p.nextSandboxAttempt(), Reason: "no ready sandbox"}, 0
	}

	policy := spec.Spec.RestartPolicy
	grace := int64(30)
	if g := spec.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = *g
	}
	for i := range spec.Spec.InitContainers {
		c := &spec.Spec.InitContainers[i]
		cur := p.latest(c.Name, sb.ID)
		switch {
		case cur == nil:
			return p.start(c, sb, true, grace, now, "init container not run")
		case cur.State == StateCreated:
			return p.removeUnstarted(cur)
		case cur.State == StateRunning || cur.State == StateUnknown:
			return nil, 0 // wait for it to finish
		case cur.ExitCode == 0:
			continue
		case policy == corev1.RestartPolicyNever:
			return nil, 0 // the pod has failed
		default:
			return p.restart(c, sb, cur, true, grace, now, "init container failed")
		}
	}
	var wake int64
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
		if cur.State == StateCreated {
			return p.removeUnstarted(cur)
		}
		if cur.State != StateExited {
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
	// Keep one dead instance per container name (for logs and last state),
	// like the kubelet; remove older ones.
	for _, c := range sortedContainers(p) {
		if c.State == StateExited && c.UID == p.UID {
			if latest := p.latest(c.Name, ""); latest != nil && latest.ID != c.ID && latest.Attempt > c.Attempt {
				return &pb.Intent{Action: ActionRemoveContainer, Uid: c.UID, Container: c.Name, ContainerId: c.ID, Reason: "superseded by a newer attempt"}, 0
			}
		}
	}
	return nil, wake
}

// removeUnstarted clears a container that was created but never started:
// the agent died between the two CRI calls (no intent is pending for the
// pod, or it would not be planned for). A fresh start follows.
func (p *Pod) removeUnstarted(c *Container) (*pb.Intent, int64) {
	return &pb.Intent{Action: ActionRemoveContainer, Uid: c.UID, Container: c.Name, ContainerId: c.ID,
		SandboxId: c.SandboxID, Reason: "created but never started"}, 0
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
	step := func(in *pb.Intent) (*pb.Intent, int64) {
		if f := p.Failures[objectKey(in.ContainerId, in.SandboxId)]; f != nil && now < f.NextTry {
			return nil, f.NextTry
		}
		return in, 0
	}
	cs := sortedContainers(p)
	for _, c := range cs {
		if !c.keptBy(keep) && c.State != StateExited {
			return step(&pb.Intent{Action: ActionStopContainer, Uid: c.UID, Container: c.Name, ContainerId: c.ID,
				SandboxId: c.SandboxID, GracePeriodSeconds: c.graceOr(30), Reason: teardownReason(keep)})
		}
	}
	sbs := sortedSandboxes(p)
	// A sandbox that is not ready cannot host containers: stop what runs in
	// it, then replace it.
	for _, sb := range sbs {
		if sb.keptBy(keep) && sb.State != StateReady {
			for _, c := range cs {
				if c.SandboxID == sb.ID && c.State != StateExited {
					return step(&pb.Intent{Action: ActionStopContainer, Uid: c.UID, Container: c.Name, ContainerId: c.ID,
						SandboxId: sb.ID, GracePeriodSeconds: c.graceOr(30), Reason: "sandbox not ready"})
				}
			}
		}
	}
	for _, c := range cs {
		if !c.keptBy(keep) {
			return step(&pb.Intent{Action: ActionRemoveContainer, Uid: c.UID, Container: c.Name, ContainerId: c.ID, Reason: teardownReason(keep)})
		}
	}
	for _, sb := range sbs {
		if !sb.keptBy(keep) && sb.State == StateReady {
			return step(&pb.Intent{Action: ActionStopSandbox, Uid: sb.UID, SandboxId: sb.ID, Reason: teardownReason(keep)})
		}
	}
	for _, sb := range sbs {
		if !sb.keptBy(keep) || sb.State != StateReady {
			return step(&pb.Intent{Action: ActionRemoveSandbox, Uid: sb.UID, SandboxId: sb.ID, Reason: teardownReason(keep)})
		}
	}
	return nil, 0
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
		if sb.UID == p.UID && sb.State == StateReady && !sb.Stale {
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
	return &pb.Intent{Action: ActionStartContainer, Uid: p.UID, Container: c.Name, Attempt: attempt,
		Image: c.Image, SandboxId: sb.ID, GracePeriodSeconds: grace, Reason: reason}
}

// noteExit folds a container's exit into its back-off.
func (p *Pod) noteExit(c *Container, now int64) {
	if p.Backoff == nil {
		p.Backoff = map[string]*Backoff{}
	}
	b := p.Backoff[c.Name]
	if b == nil {
		b = &Backoff{}
		p.Backoff[c.Name] = b
	}
	ran := c.FinishedAt - c.StartedAt
	switch {
	case b.Delay == 0 || (c.StartedAt > 0 && c.FinishedAt > 0 && ran >= BackoffReset):
		b.Delay = BackoffInitial
	default:
		b.Delay = min(b.Delay*2, BackoffMax)
	}
	b.Exits++
	b.NextStart = now + b.Delay
}

// applyOutcome folds what an action did into the observed state, so the
// planner does not repeat it before the next relist confirms it.
func (s *State) applyOutcome(in *PendingIntent, d *pb.Outcome, now int64) {
	p := s.Pods[in.Pod]
	if p == nil {
		return
	}
	if d.Reason == ReasonReconciled {
		return // the relist already told the truth
	}
	key, base, ceiling := in.Container, BackoffInitial, BackoffMax
	switch in.Action {
	case ActionRunSandbox:
		key = ""
	case ActionStartContainer:
	default:
		// Teardown steps usually fail for a moment (a container still
		// starting); retry them sooner.
		key, base, ceiling = objectKey(in.ContainerID, in.SandboxID), TeardownRetryInitial, TeardownRetryMax
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
		f.NextTry = now + min(base<<min(f.Count-1, 10), ceiling)
		return
	}
	delete(p.Failures, key)
	switch in.Action {
	case ActionRunSandbox:
		if p.Sandboxes == nil {
			p.Sandboxes = map[string]*Sandbox{}
		}
		p.Sandboxes[d.SandboxId] = &Sandbox{ID: d.SandboxId, UID: in.UID, Attempt: in.Attempt, State: StateReady, IP: d.Ip, CreatedAt: now,
			Stale: in.Generation != p.Generation}
	case ActionStartContainer:
		if p.Containers == nil {
			p.Containers = map[string]*Container{}
		}
		p.Containers[d.ContainerId] = &Container{ID: d.ContainerId, UID: in.UID, SandboxID: in.SandboxID, Name: in.Container,
			Attempt: in.Attempt, State: StateRunning, StartedAt: now, Grace: in.Grace, Stale: in.Generation != p.Generation}
	case ActionStopContainer:
		if c := p.Containers[in.ContainerID]; c != nil && c.State != StateExited {
			c.State, c.FinishedAt = StateExited, now
			if c.Reason == "" {
				c.Reason = "Killed"
			}
		}
	case ActionRemoveContainer:
		delete(p.Containers, in.ContainerID)
		s.dropIfGone(p)
	case ActionStopSandbox:
		if sb := p.Sandboxes[in.SandboxID]; sb != nil {
			sb.State = StateNotReady
		}
	case ActionRemoveSandbox:
		delete(p.Sandboxes, in.SandboxID)
		s.dropIfGone(p)
	}
}
