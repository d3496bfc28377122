package replay

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector"
)

// Span states of a timeline lane.
const (
	SpanRunning     = "running"     // the container (every app container of the pod) runs
	SpanCreating    = "creating"    // planned or created, not running yet; back-off over, restart due
	SpanWaiting     = "waiting"     // a failed step waits for its retry (ErrImagePull, CreateContainerError…)
	SpanBackoff     = "backoff"     // crash-loop back-off after an exit
	SpanExited      = "exited"      // exited and not restarted (its restart policy, or the pod is going)
	SpanTerminating = "terminating" // being stopped, or the pod's manifest is gone and it is torn down
	SpanUp          = "up"          // node lanes: the agent runs, the runtime or apiserver answers
	SpanDown        = "down"        // node lanes: the agent is not running, or the runtime or apiserver is lost
)

// Marker kinds of a timeline lane.
const (
	MarkManifest     = "manifest"       // ManifestAdded or ManifestChanged, with the diff
	MarkRemoved      = "removed"        // ManifestRemoved
	MarkRejected     = "rejected"       // ManifestRejected: the previous version keeps running
	MarkAgentStart   = "agent-start"    // AgentStarted after a clean stop
	MarkAgentCrash   = "agent-crash"    // AgentStarted with no AgentStopped before it
	MarkAgentStop    = "agent-stop"     // AgentStopped
	MarkRuntimeDown  = "runtime-down"   // RuntimeDisconnected
	MarkApiserverOff = "apiserver-down" // ApiserverDisconnected
	MarkMirror       = "mirror"         // a MirrorCreate, MirrorDelete or MirrorStatus intent (and its outcome)
)

// Lane kinds.
const (
	LaneNode      = "node"
	LanePod       = "pod"
	LaneContainer = "container"
)

// Timeline is what happened over a window, as lanes of coloured spans and
// markers: one lane each for the agent, the runtime and (when mirrors are
// kept) the apiserver, then one per pod followed by one per container.
type Timeline struct {
	Since   time.Time `json:"since"`
	Until   time.Time `json:"until"`
	FromSeq uint64    `json:"fromSeq"` // the first event in the window (0: none)
	ToSeq   uint64    `json:"toSeq"`   // the last event in the window
	// Buckets is the resolution the lanes were reduced to: no span is
	// shorter than Window/Buckets unless it stands alone, and markers closer
	// than that are one marker with a count.
	Buckets int    `json:"buckets"`
	Lanes   []Lane `json:"lanes"`
}

// Lane is one row of a timeline.
type Lane struct {
	ID        string   `json:"id"` // "node/agent", "pod/NS/NAME", "pod/NS/NAME/CONTAINER"
	Kind      string   `json:"kind"`
	Pod       string   `json:"pod,omitempty"`
	Container string   `json:"container,omitempty"`
	Init      bool     `json:"init,omitempty"`
	Label     string   `json:"label"`
	Spans     []Span   `json:"spans"`
	Markers   []Marker `json:"markers"`
}

// Span is a stretch of time in one state.
type Span struct {
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	State  string    `json:"state"`
	Detail string    `json:"detail,omitempty"`
	// Merged > 1: the span stands for that many spans, each shorter than a
	// bucket; State is the one that lasted longest among them and Worst the
	// most severe.
	Merged int    `json:"merged,omitempty"`
	Worst  string `json:"worst,omitempty"`

	mix *[len(spanStates)]time.Duration // merged spans: time per state, by index in spanStates
}

// Marker is a point event on a lane.
type Marker struct {
	Time    time.Time `json:"time"`
	Seq     uint64    `json:"seq"`
	Kind    string    `json:"kind"`
	Summary string    `json:"summary"`
	Diff    string    `json:"diff,omitempty"`
	// Count > 1: the marker stands for that many of its kind from First to
	// Time; Seq, Summary and Diff are the newest one's.
	Count int       `json:"count,omitempty"`
	First time.Time `json:"first,omitzero"`
}

// TimelineOptions says which window to draw and at what resolution.
type TimelineOptions struct {
	Filter // Pod: only this pod's lanes (the node lanes always); Since/Until zero: the log's first/last event
	// Buckets is the horizontal resolution (pixels of the page, columns of
	// the terminal); 0 means 1200.
	Buckets int
	// MaxMarkers per lane; more are merged into counted markers. 0 means 80.
	MaxMarkers int
}

// BuildTimeline reads the window from r and reduces it to lanes. It folds
// the projection as it goes (state at the window start from the newest
// snapshot), so every span agrees with what `pods` showed at that time.
func BuildTimeline(ctx context.Context, r Reader, opt TimelineOptions) (*Timeline, error) {
	if opt.Buckets <= 0 {
		opt.Buckets = 1200
	}
	if opt.MaxMarkers <= 0 {
		opt.MaxMarkers = 80
	}
	tl := &Timeline{Since: opt.Since, Until: opt.Until, Buckets: opt.Buckets}
	first, last := r.FirstSeq(), r.LastSeq()
	if last == 0 || last < first {
		return tl, nil
	}
	if tl.Since.IsZero() {
		t, err := eventTime(ctx, r, first)
		if err != nil {
			return nil, err
		}
		tl.Since = t
	}
	if tl.Until.IsZero() {
		t, err := eventTime(ctx, r, last)
		if err != nil {
			return nil, err
		}
		tl.Until = t
	}
	if !tl.Until.After(tl.Since) {
		tl.Until = tl.Since.Add(time.Second)
	}
	f := Filter{Since: tl.Since, Until: tl.Until}
	from, to, err := f.Range(r)
	empty := err == errEmpty
	if err != nil && !empty {
		return nil, err
	}
	if to == 0 {
		to = last
	}
	if empty || from > last {
		from, to = last+1, last
	}
	st, err := StateAt(ctx, r, from-1)
	if err != nil {
		return nil, fmt.Errorf("timeline: state at the window start: %w", err)
	}
	px := tl.Until.Sub(tl.Since) / time.Duration(opt.Buckets)
	b := newTimelineBuilder(st, tl.Since, opt.Pod, max(px, 1))
	if from <= to {
		tl.FromSeq, tl.ToSeq = from, to
		if err := r.Read(ctx, from, to, func(e eventlog.Event) error {
			b.event(e)
			return nil
		}); err != nil {
			return nil, fmt.Errorf("timeline: read events %d..%d: %w", from, to, err)
		}
	}
	tl.Lanes = b.finish(tl.Until)
	for i := range tl.Lanes {
		tl.Lanes[i].Markers = capMarkers(tl.Lanes[i].Markers, tl.Since, max(px, 1), tl.Until.Sub(tl.Since), opt.MaxMarkers)
	}
	return tl, nil
}

func eventTime(ctx context.Context, r Reader, seq uint64) (time.Time, error) {
	var t time.Time
	err := r.Read(ctx, seq, seq, func(e eventlog.Event) error { t = e.Time; return nil })
	if err != nil {
		return t, fmt.Errorf("timeline: read event %d: %w", seq, err)
	}
	return t, nil
}

// laneBuilder accumulates one lane's spans and markers.
type laneBuilder struct {
	lane  Lane
	order int // containers: position in the spec (init containers first)

	state, detail string
	since, until  time.Time // until: the state ends by itself then (a back-off)

	curID   string // containers: the instance the lane follows
	changes *int   // containers: counts the pod's container changes, so the pod lane is derived only then

	// Spans are reduced as they close: one shorter than px joins the group
	// being gathered, which becomes one span once it covers px.
	px         time.Duration
	group      Span
	groupFirst Span
	groupN     int
}

// set moves the lane to state at t (state "" ends the lane's presence).
func (l *laneBuilder) set(t time.Time, state, detail string, until time.Time) {
	l.expire(t)
	if state == l.state && detail == l.detail {
		l.until = until
		return
	}
	if l.changes != nil {
		*l.changes++
	}
	l.close(t)
	l.state, l.detail, l.since, l.until = state, detail, t, until
}

// expire ends a back-off whose time has passed by t: the restart is due.
func (l *laneBuilder) expire(t time.Time) {
	if l.state == "" || l.until.IsZero() || !l.until.Before(t) {
		return
	}
	at := l.until
	l.close(at)
	l.state, l.detail, l.since, l.until = SpanCreating, "back-off over, restart due", at, time.Time{}
}

func (l *laneBuilder) close(t time.Time) {
	if l.state != "" && t.After(l.since) {
		l.emit(Span{Start: l.since, End: t, State: l.state, Detail: l.detail})
	}
}

func (l *laneBuilder) emit(s Span) {
	if s.End.Sub(s.Start) >= l.px {
		l.flushGroup()
		l.lane.Spans = appendSpan(l.lane.Spans, s)
		return
	}
	if l.groupN == 0 {
		l.group, l.groupFirst = Span{Start: s.Start, End: s.Start}, s
	}
	l.group.addMix(s)
	l.group.End = s.End
	l.groupN++
	if l.group.End.Sub(l.group.Start) >= l.px {
		l.flushGroup()
	}
}

func (l *laneBuilder) flushGroup() {
	switch l.groupN {
	case 0:
		return
	case 1:
		l.lane.Spans = appendSpan(l.lane.Spans, l.groupFirst)
	default:
		g := l.group
		g.settle()
		l.lane.Spans = appendSpan(l.lane.Spans, g)
	}
	l.group, l.groupFirst, l.groupN = Span{}, Span{}, 0
}

func (l *laneBuilder) mark(m Marker) int {
	l.lane.Markers = append(l.lane.Markers, m)
	return len(l.lane.Markers) - 1
}

type podLanes struct {
	pod        *laneBuilder
	containers map[string]*laneBuilder
	names      []string // of containers, sorted
	spec       []byte   // the newest spec seen, for the next manifest diff
}

type pendingMark struct {
	lane   *laneBuilder
	marker int // index in lane.Markers, -1: none
	pod    string
	action pb.Action
	name   string // container
}

type timelineBuilder struct {
	st                        *projector.State
	only                      string // pod filter
	agent, runtime, apiserver *laneBuilder
	pods                      map[string]*podLanes
	intents                   map[uint64]pendingMark
	apiserverShown            bool
	px                        time.Duration
	changes                   int
}

func newTimelineBuilder(st *projector.State, since time.Time, only string, px time.Duration) *timelineBuilder {
	b := &timelineBuilder{st: st, only: only, px: px, pods: map[string]*podLanes{}, intents: map[uint64]pendingMark{}}
	b.agent = &laneBuilder{lane: Lane{ID: "node/agent", Kind: LaneNode, Label: "agent"}, px: px}
	b.runtime = &laneBuilder{lane: Lane{ID: "node/runtime", Kind: LaneNode, Label: "container runtime"}, px: px}
	b.apiserver = &laneBuilder{lane: Lane{ID: "node/apiserver", Kind: LaneNode, Label: "apiserver"}, px: px}
	if st.Seq > 0 {
		b.agent.set(since, upDown(st.Agent.Running), agentDetail(st), time.Time{})
		b.runtime.set(since, upDown(st.Runtime.Connected), runtimeDetail(st), time.Time{})
		if st.Agent.Apiserver {
			b.apiserverShown = true
			b.apiserver.set(since, upDown(st.Apiserver.Connected), apiserverDetail(st), time.Time{})
		}
	}
	now := st.SteadyAt(since.UnixNano(), 0)
	for key, p := range st.Pods {
		if only != "" && key != only {
			continue
		}
		pl := b.podLanes(key, p, since)
		pl.spec = p.Spec
		v := p.View(now)
		for _, cv := range v.Containers {
			l := b.container(pl, key, cv.Name, since)
			l.curID = cv.ContainerID
			state, detail, until := viewState(st, p, cv)
			l.set(since, state, detail, until)
		}
		b.derivePod(key, since)
	}
	return b
}

func upDown(ok bool) string {
	if ok {
		return SpanUp
	}
	return SpanDown
}

func agentDetail(st *projector.State) string {
	if st.Agent.Running {
		return fmt.Sprintf("agent %s running on %s", st.Agent.Version, st.Agent.NodeName)
	}
	if st.Agent.StopReason != "" {
		return "agent stopped: " + st.Agent.StopReason
	}
	return "agent not running"
}

func runtimeDetail(st *projector.State) string {
	if st.Runtime.Connected {
		return fmt.Sprintf("%s %s at %s", st.Runtime.Name, st.Runtime.Version, st.Runtime.Endpoint)
	}
	if st.Runtime.Reason != "" {
		return "runtime unreachable: " + st.Runtime.Reason
	}
	return "runtime not connected"
}

func apiserverDetail(st *projector.State) string {
	if st.Apiserver.Connected {
		return fmt.Sprintf("apiserver %s (%s)", st.Apiserver.Host, st.Apiserver.Version)
	}
	if st.Apiserver.Reason != "" {
		return "apiserver unreachable: " + st.Apiserver.Reason
	}
	return "apiserver not connected"
}

// viewState is a container's lane state from its view (at the window start).
func viewState(st *projector.State, p *projector.Pod, cv projector.ContainerView) (state, detail string, until time.Time) {
	switch {
	case cv.State == pb.StateRunning:
		return SpanRunning, fmt.Sprintf("running (restarts %d)", cv.RestartCount), time.Time{}
	case cv.State == "waiting" && cv.Reason == "CrashLoopBackOff":
		if b := p.Backoff[cv.Name]; b != nil {
			return SpanBackoff, backoffDetail(cv.ExitCode, "", b.Delay), time.Unix(0, st.WallOf(b.NextStart)).UTC()
		}
		return SpanBackoff, "CrashLoopBackOff", time.Time{}
	case cv.State == "waiting" && cv.Reason != "":
		return SpanWaiting, failureDetail(p, cv.Name, cv.Reason), time.Time{}
	case cv.State == pb.StateExited:
		return SpanExited, exitDetail(cv.ExitCode, cv.Reason), time.Time{}
	}
	return SpanCreating, "waiting to start", time.Time{}
}

func backoffDetail(code int32, reason string, delay int64) string {
	return fmt.Sprintf("%s, back-off %s", exitDetail(code, reason), time.Duration(delay))
}

func exitDetail(code int32, reason string) string {
	if reason == "" {
		return fmt.Sprintf("exited %d", code)
	}
	return fmt.Sprintf("exited %d (%s)", code, reason)
}

func failureDetail(p *projector.Pod, name, reason string) string {
	if f := p.Failures[name]; f != nil && f.Message != "" {
		return reason + ": " + f.Message
	}
	return reason
}

func (b *timelineBuilder) podLanes(key string, p *projector.Pod, t time.Time) *podLanes {
	if pl := b.pods[key]; pl != nil {
		return pl
	}
	pl := &podLanes{
		pod:        &laneBuilder{lane: Lane{ID: "pod/" + key, Kind: LanePod, Pod: key, Label: key}, px: b.px},
		containers: map[string]*laneBuilder{},
	}
	b.pods[key] = pl
	if p != nil {
		b.specContainers(pl, key, p, t)
	}
	return pl
}

// specContainers makes a lane for every container of the pod's spec, so a
// container that never started still shows (as creating or waiting).
func (b *timelineBuilder) specContainers(pl *podLanes, key string, p *projector.Pod, t time.Time) {
	spec := p.DecodeSpec()
	if spec == nil {
		return
	}
	i := 0
	add := func(c corev1.Container, init bool) {
		l := b.container(pl, key, c.Name, t)
		l.order, l.lane.Init = i, init
		i++
	}
	for _, c := range spec.Spec.InitContainers {
		add(c, true)
	}
	for _, c := range spec.Spec.Containers {
		add(c, false)
	}
}

func (b *timelineBuilder) container(pl *podLanes, key, name string, _ time.Time) *laneBuilder {
	if l := pl.containers[name]; l != nil {
		return l
	}
	l := &laneBuilder{lane: Lane{ID: "pod/" + key + "/" + name, Kind: LaneContainer, Pod: key, Container: name, Label: name},
		order: 1000 + len(pl.containers), px: b.px, changes: &b.changes}
	pl.containers[name] = l
	pl.names = append(pl.names, name)
	sort.Strings(pl.names)
	return l
}

// event folds e into the state and moves the lanes it concerns.
func (b *timelineBuilder) event(e eventlog.Event) {
	wasRunning := b.st.Agent.Running
	b.st.Apply(e)
	t := e.Time
	switch d := e.Data.(type) {
	case *pb.AgentStarted:
		kind, sum := MarkAgentStart, fmt.Sprintf("agent %s started (pid %d)", d.Version, d.Pid)
		if wasRunning {
			kind, sum = MarkAgentCrash, fmt.Sprintf("agent %s started after a crash: no clean stop was recorded (pid %d)", d.Version, d.Pid)
		}
		b.agent.mark(Marker{Time: t, Seq: e.Seq, Kind: kind, Summary: sum})
		b.agent.set(t, SpanUp, agentDetail(b.st), time.Time{})
		b.runtime.set(t, SpanDown, "runtime not connected yet in this run", time.Time{})
		if d.Apiserver {
			b.apiserverShown = true
			b.apiserver.set(t, SpanDown, "apiserver not connected yet in this run", time.Time{})
		} else {
			b.apiserver.set(t, "", "", time.Time{})
		}
		return
	case *pb.AgentStopped:
		b.agent.mark(Marker{Time: t, Seq: e.Seq, Kind: MarkAgentStop, Summary: "agent stopped: " + d.Reason})
		b.agent.set(t, SpanDown, agentDetail(b.st), time.Time{})
		b.runtime.set(t, "", "", time.Time{})
		b.apiserver.set(t, "", "", time.Time{})
		return
	case *pb.RuntimeConnected:
		b.runtime.set(t, SpanUp, runtimeDetail(b.st), time.Time{})
		return
	case *pb.RuntimeDisconnected:
		b.runtime.mark(Marker{Time: t, Seq: e.Seq, Kind: MarkRuntimeDown, Summary: Summary(e)})
		b.runtime.set(t, SpanDown, runtimeDetail(b.st), time.Time{})
		return
	case *pb.ApiserverConnected:
		b.apiserverShown = true
		b.apiserver.set(t, SpanUp, apiserverDetail(b.st), time.Time{})
		return
	case *pb.ApiserverDisconnected:
		b.apiserverShown = true
		b.apiserver.mark(Marker{Time: t, Seq: e.Seq, Kind: MarkApiserverOff, Summary: Summary(e)})
		b.apiserver.set(t, SpanDown, apiserverDetail(b.st), time.Time{})
		return
	}
	if e.Pod == "" || (b.only != "" && e.Pod != b.only) {
		return
	}
	p := b.st.Pods[e.Pod]
	pl := b.pods[e.Pod]
	changes := b.changes
	if pl == nil {
		if p == nil {
			return // came and went in one event (an outcome for a pod already gone)
		}
		pl = b.podLanes(e.Pod, p, t)
	}
	switch d := e.Data.(type) {
	case *pb.ManifestAdded:
		b.manifest(pl, e, p, "added", d.PodJson, d.Uid)
	case *pb.ManifestChanged:
		b.manifest(pl, e, p, "changed", d.PodJson, d.Uid)
	case *pb.ManifestRemoved:
		pl.pod.mark(Marker{Time: t, Seq: e.Seq, Kind: MarkRemoved, Summary: fmt.Sprintf("manifest %s removed: the pod is torn down", d.Path)})
	case *pb.ManifestRejected:
		sum := fmt.Sprintf("edit of %s rejected: %s", d.Path, d.Reason)
		if p != nil && !p.Removed && p.Spec != nil {
			sum += fmt.Sprintf(" (version %s keeps running)", shortUID(p.UID))
		}
		pl.pod.mark(Marker{Time: t, Seq: e.Seq, Kind: MarkRejected, Summary: sum})
	case *pb.Intent:
		pm := pendingMark{pod: e.Pod, action: pb.Action(d.Action), name: d.Container, marker: -1}
		switch pm.action {
		case pb.ActionMirrorCreate, pb.ActionMirrorDelete, pb.ActionMirrorStatus:
			pm.lane = pl.pod
			pm.marker = pl.pod.mark(Marker{Time: t, Seq: e.Seq, Kind: MarkMirror, Summary: Summary(e)})
		case pb.ActionStartContainer:
			l := b.container(pl, e.Pod, d.Container, t)
			if l.state != SpanRunning {
				l.set(t, SpanCreating, fmt.Sprintf("starting (attempt %d)", d.Attempt), time.Time{})
			}
		case pb.ActionStopContainer:
			if l := pl.containers[d.Container]; l != nil && (l.curID == d.ContainerId || l.curID == "") && l.state == SpanRunning {
				l.set(t, SpanTerminating, fmt.Sprintf("stopping (grace %ds): %s", d.GracePeriodSeconds, d.Reason), time.Time{})
			}
		}
		b.intents[e.Seq] = pm
	case *pb.Outcome:
		pm, ok := b.intents[d.IntentSeq]
		if !ok {
			break
		}
		delete(b.intents, d.IntentSeq)
		if pm.marker >= 0 {
			m := &pm.lane.lane.Markers[pm.marker]
			if d.Ok {
				m.Summary += " — done"
			} else {
				m.Summary += " — failed: " + strings.TrimSpace(d.Reason+" "+d.Error)
			}
		}
		if pm.action == pb.ActionStartContainer {
			l := b.container(pl, e.Pod, pm.name, t)
			switch {
			case d.Ok:
				l.curID = d.ContainerId
				l.set(t, SpanRunning, "running", time.Time{})
			case d.Reason == pb.ReasonReconciled:
			default:
				reason := d.Reason
				if p != nil {
					if f := p.Failures[pm.name]; f != nil && f.Count > 1 && (reason == "ErrImagePull" || reason == "ErrImageNeverPull") {
						reason = "ImagePullBackOff"
					}
				}
				l.set(t, SpanWaiting, strings.TrimSpace(reason+": "+d.Error), time.Time{})
			}
		}
	case *pb.ContainerObserved:
		l := b.container(pl, e.Pod, d.Container, t)
		l.lane.Init = l.lane.Init || d.Init
		current := p != nil && d.Uid == p.UID
		switch d.State {
		case pb.StateRunning, pb.StateCreated:
			if l.curID != d.ContainerId && !current && l.curID != "" {
				break // an old version's instance, seen while the new one runs
			}
			l.curID = d.ContainerId
			if d.State == pb.StateRunning {
				l.set(t, SpanRunning, fmt.Sprintf("running (restarts %d)", d.Attempt), time.Time{})
			} else {
				l.set(t, SpanCreating, "created", time.Time{})
			}
		case pb.StateExited:
			if l.curID != "" && l.curID != d.ContainerId {
				break
			}
			l.curID = d.ContainerId
			var bo *projector.Backoff
			if current {
				bo = p.Backoff[d.Container]
			}
			// Back-off deadlines are steady times (projector.Clock).
			if bo != nil && !p.Removed && bo.NextStart > b.st.Clock.Steady && restartsAfter(p, d.ExitCode) {
				l.set(t, SpanBackoff, backoffDetail(d.ExitCode, d.Reason, bo.Delay), time.Unix(0, b.st.WallOf(bo.NextStart)).UTC())
			} else {
				l.set(t, SpanExited, exitDetail(d.ExitCode, d.Reason), time.Time{})
			}
		}
	case *pb.ContainerGone:
		if l := pl.containers[d.Container]; l != nil && l.curID == d.ContainerId {
			l.curID = ""
			if p == nil || p.Removed || !inSpec(p, d.Container) {
				l.set(t, "", "", time.Time{})
			}
		}
	}
	switch e.Data.(type) {
	case *pb.ManifestAdded, *pb.ManifestChanged, *pb.ManifestRemoved, *pb.ContainerGone, *pb.SandboxGone:
	default:
		if changes == b.changes && p != nil && !p.Removed && pl.pod.state != "" {
			return // no container lane moved: the pod lane stays
		}
	}
	b.derivePod(e.Pod, t)
}

func (b *timelineBuilder) manifest(pl *podLanes, e eventlog.Event, p *projector.Pod, verb string, spec []byte, uid string) {
	diff := ManifestDiff(pl.spec, spec)
	pl.spec = spec
	pl.pod.mark(Marker{Time: e.Time, Seq: e.Seq, Kind: MarkManifest, Diff: diff,
		Summary: fmt.Sprintf("manifest %s (version %s)", verb, shortUID(uid))})
	if p != nil {
		b.specContainers(pl, e.Pod, p, e.Time)
	}
}

func shortUID(uid string) string {
	if len(uid) > 8 {
		return uid[:8]
	}
	return uid
}

func inSpec(p *projector.Pod, name string) bool {
	spec := p.DecodeSpec()
	if spec == nil {
		return false
	}
	for _, c := range spec.Spec.InitContainers {
		if c.Name == name {
			return true
		}
	}
	for _, c := range spec.Spec.Containers {
		if c.Name == name {
			return true
		}
	}
	return false
}

// restartsAfter: the pod's restart policy restarts a container that exited with code.
func restartsAfter(p *projector.Pod, code int32) bool {
	policy := corev1.RestartPolicyAlways
	if spec := p.DecodeSpec(); spec != nil && spec.Spec.RestartPolicy != "" {
		policy = spec.Spec.RestartPolicy
	}
	return policy == corev1.RestartPolicyAlways || (policy == corev1.RestartPolicyOnFailure && code != 0)
}

// spanStates are the span states in name order (merged spans' mix is
// indexed by it).
var spanStates = [...]string{SpanBackoff, SpanCreating, SpanDown, SpanExited, SpanRunning, SpanTerminating, SpanUp, SpanWaiting}

func stateIndex(state string) int {
	for i, s := range spanStates {
		if s == state {
			return i
		}
	}
	return 0
}

// spanSeverity orders states for a pod lane (the worst container decides)
// and for merged spans (Worst).
var spanSeverity = map[string]int{
	SpanUp: 0, SpanRunning: 0, SpanExited: 1, SpanCreating: 2, SpanTerminating: 3, SpanWaiting: 4, SpanBackoff: 5, SpanDown: 6,
}

// derivePod sets the pod lane from the state and its container lanes: gone
// when the state forgot the pod, terminating when its manifest is gone,
// otherwise the worst of its containers (running only when all run).
func (b *timelineBuilder) derivePod(key string, t time.Time) {
	pl := b.pods[key]
	if pl == nil {
		return
	}
	p := b.st.Pods[key]
	switch {
	case p == nil:
		pl.pod.set(t, "", "", time.Time{})
		for _, l := range pl.containers {
			l.set(t, "", "", time.Time{})
		}
		return
	case p.Removed:
		pl.pod.set(t, SpanTerminating, "manifest removed; tearing down", time.Time{})
		return
	}
	state, detail, until := SpanRunning, "all containers running", time.Time{}
	apps, running, exited := 0, 0, 0
	for _, name := range pl.names {
		l := pl.containers[name]
		l.expire(t)
		if l.lane.Init && (l.state == SpanExited || l.state == "") {
			continue // an init container that finished (or was removed) is done
		}
		apps++
		switch l.state {
		case SpanRunning:
			running++
			continue
		case SpanExited:
			exited++
			continue
		case "":
			if !inSpec(p, name) {
				apps--
				continue
			}
		}
		ls := l.state
		if ls == "" {
			ls = SpanCreating
		}
		if spanSeverity[ls] > spanSeverity[state] || state == SpanRunning {
			state, detail, until = ls, name+": "+l.detail, l.until
			if l.detail == "" {
				detail = name + ": not started"
			}
		}
	}
	switch {
	case apps == 0:
		state, detail, until = SpanCreating, "no container yet", time.Time{}
	case state == SpanRunning && exited > 0 && running == 0:
		state, detail = SpanExited, "every container exited"
	case state == SpanRunning && exited > 0:
		detail = fmt.Sprintf("%d of %d containers running", running, apps)
	}
	pl.pod.set(t, state, detail, until)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// finish closes every lane at until, reduces it to the resolution and
// orders the lanes: node lanes, then each pod followed by its containers.
func (b *timelineBuilder) finish(until time.Time) []Lane {
	var all []*laneBuilder
	node := []*laneBuilder{b.agent, b.runtime}
	if b.apiserverShown {
		node = append(node, b.apiserver)
	}
	all = append(all, node...)
	for _, key := range sortedKeys(b.pods) {
		pl := b.pods[key]
		all = append(all, pl.pod)
		cs := make([]*laneBuilder, 0, len(pl.containers))
		for _, l := range pl.containers {
			cs = append(cs, l)
		}
		sort.Slice(cs, func(i, j int) bool {
			if cs[i].order != cs[j].order {
				return cs[i].order < cs[j].order
			}
			return cs[i].lane.Container < cs[j].lane.Container
		})
		all = append(all, cs...)
	}
	out := make([]Lane, 0, len(all))
	for _, l := range all {
		l.expire(until)
		l.close(until)
		l.flushGroup()
		for i := range l.lane.Spans {
			if l.lane.Spans[i].Merged > 1 {
				l.lane.Spans[i].Detail = mixDetail(l.lane.Spans[i])
			}
		}
		if l.lane.Spans == nil {
			l.lane.Spans = []Span{}
		}
		if l.lane.Markers == nil {
			l.lane.Markers = []Marker{}
		}
		out = append(out, l.lane)
	}
	return out
}

// addMix adds s to a merged span.
func (g *Span) addMix(s Span) {
	if g.mix == nil {
		g.mix = new([len(spanStates)]time.Duration)
	}
	if s.mix != nil {
		for i, v := range s.mix {
			g.mix[i] += v
		}
	} else {
		g.mix[stateIndex(s.State)] += s.End.Sub(s.Start)
	}
	g.Merged += max(s.Merged, 1)
	w := s.Worst
	if w == "" {
		w = s.State
	}
	if g.Worst == "" || spanSeverity[w] > spanSeverity[g.Worst] {
		g.Worst = w
	}
}

// settle picks the merged span's state: the longest-lasting one.
func (g *Span) settle() {
	best, bestD := "", time.Duration(-1)
	for i, k := range spanStates {
		if d := g.mix[i]; d > 0 && (d > bestD || (d == bestD && spanSeverity[k] > spanSeverity[best])) {
			best, bestD = k, d
		}
	}
	g.State = best
}

// appendSpan coalesces s into the previous span when both are one state and
// touch, so a crash loop merged bucket by bucket is one long span.
func appendSpan(out []Span, s Span) []Span {
	if n := len(out); n > 0 {
		p := &out[n-1]
		if p.State == s.State && p.End.Equal(s.Start) && (p.Merged > 1 || s.Merged > 1 || p.Detail == s.Detail) {
			if p.Merged <= 1 {
				q := Span{Start: p.Start, End: p.Start}
				q.addMix(*p)
				*p = Span{Start: q.Start, End: q.End, State: p.State, Merged: q.Merged, Worst: q.Worst, mix: q.mix}
			}
			p.addMix(s)
			p.End = s.End
			p.settle()
			return out
		}
	}
	return append(out, s)
}

func mixDetail(s Span) string {
	total := s.End.Sub(s.Start)
	type share struct {
		state string
		d     time.Duration
	}
	var shares []share
	for i, k := range spanStates {
		if s.mix[i] > 0 {
			shares = append(shares, share{k, s.mix[i]})
		}
	}
	sort.SliceStable(shares, func(i, j int) bool { return shares[i].d > shares[j].d })
	parts := make([]string, 0, len(shares))
	for _, sh := range shares {
		pct := 0
		if total > 0 {
			pct = int(100 * sh.d / total)
		}
		parts = append(parts, fmt.Sprintf("%s %d%%", sh.state, pct))
	}
	return fmt.Sprintf("%d changes: %s", s.Merged, strings.Join(parts, ", "))
}

// capMarkers merges markers of a kind closer than a bucket into one
// counted marker; the bucket widens until a lane holds at most maxMarkers.
func capMarkers(ms []Marker, since time.Time, px, window time.Duration, maxMarkers int) []Marker {
	if len(ms) == 0 {
		return ms
	}
	for w := px; ; w *= 2 {
		out := bucketMarkers(ms, since, w)
		if len(out) <= maxMarkers || w > window {
			return out
		}
	}
}

// bucketMarkers merges markers of one kind that fall in one bucket of width w.
func bucketMarkers(ms []Marker, since time.Time, w time.Duration) []Marker {
	type key struct {
		kind   string
		bucket int64
	}
	idx := map[key]int{}
	var out []Marker
	for _, m := range ms {
		k := key{m.Kind, int64(m.Time.Sub(since) / w)}
		i, ok := idx[k]
		if !ok {
			idx[k] = len(out)
			out = append(out, m)
			continue
		}
		o := &out[i]
		n := max(o.Count, 1) + max(m.Count, 1)
		first := o.First
		if first.IsZero() {
			first = o.Time
		}
		*o = m
		o.Count, o.First = n, first
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out
}
