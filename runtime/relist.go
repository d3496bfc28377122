package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	criv1 "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector"
)

// listing is one relist of the runtime: what exists, cheaply (no status calls).
type listing struct {
	// before holds the IDs of the objects the state held before the
	// listing began: only those can be recorded gone when it does not list
	// them. (The order of the log says so, not times: a start recorded at
	// a wall time ahead of the listing's, after the clock stepped back,
	// would otherwise be kept for as long as the step.)
	before     map[string]bool
	sandboxes  []ObservedSandbox
	containers []ObservedContainer
}

func (r *Runtime) list(ctx context.Context, before map[string]bool) (listing, error) {
	l := listing{before: before}
	var err error
	if l.sandboxes, err = r.ListSandboxes(ctx); err != nil {
		return l, err
	}
	if l.containers, err = r.ListContainers(ctx); err != nil {
		return l, err
	}
	return l, nil
}

// objectKind is what the state knows an ID to name.
type objectKind int

const (
	unknownObject objectKind = iota
	containerObject
	sandboxObject
)

// lookUp lists the one object id names, as a relist would list it, whoever
// made it: foreign says it is another agent's (the listing is then empty).
// A kind the state knows spares the runtime a second list call.
func (r *Runtime) lookUp(ctx context.Context, id string, kind objectKind, before map[string]bool) (l listing, foreign bool, err error) {
	l.before = before
	if kind != sandboxObject {
		cs, by, err := r.listContainers(ctx, &criv1.ContainerFilter{Id: id})
		if err != nil {
			return l, false, fmt.Errorf("list container %s: %w", id, err)
		}
		for i, c := range cs {
			if c.ID != id {
				continue
			}
			if by[i] != r.cfg.ManagedBy {
				return listing{before: before}, true, nil
			}
			l.containers = append(l.containers, c)
		}
		if len(l.containers) > 0 || kind == containerObject {
			return l, false, nil
		}
	}
	sbs, err := r.listSandboxes(ctx, &criv1.PodSandboxFilter{Id: id})
	if err != nil {
		return l, false, fmt.Errorf("list sandbox %s: %w", id, err)
	}
	for _, sb := range sbs {
		if sb.ID != id {
			continue
		}
		if sb.Labels[LabelManaged] != r.cfg.ManagedBy {
			return listing{before: before}, true, nil
		}
		l.sandboxes = append(l.sandboxes, sb)
	}
	return l, false, nil
}

// podKey is the pod of the first object listed.
func (l listing) podKey() (string, bool) {
	switch {
	case len(l.sandboxes) > 0:
		return l.sandboxes[0].PodNamespace + "/" + l.sandboxes[0].PodName, true
	case len(l.containers) > 0:
		return l.containers[0].PodNamespace + "/" + l.containers[0].PodName, true
	}
	return "", false
}

// shows says whether a listing of one object shows the effect of a change:
// CRI may answer from before it (see ChangesContainerd).
func (l listing) shows(what ChangeKind) bool {
	switch what {
	case ChangeStarted:
		for _, c := range l.containers {
			if c.State == ContainerCreated {
				return false
			}
		}
		return len(l.containers)+len(l.sandboxes) > 0
	case ChangeExited:
		for _, c := range l.containers {
			if c.State != ContainerExited && c.State != ContainerUnknown {
				return false
			}
		}
		for _, sb := range l.sandboxes {
			if sb.State == SandboxReady {
				return false
			}
		}
		return true
	case ChangeDeleted:
		return len(l.containers)+len(l.sandboxes) == 0
	}
	return true
}

// statuser fetches full status for the few objects whose listing changed.
type statuser interface {
	SandboxStatus(ctx context.Context, id string) (ObservedSandbox, error)
	ContainerStatus(ctx context.Context, id string) (ObservedContainer, error)
}

// knownPod is what the projected state holds of one pod's runtime objects.
type knownPod struct {
	sandboxes  map[string]projector.Sandbox
	containers map[string]projector.Container
}

// knownIDs is the set of sandbox and container IDs the state holds.
func knownIDs(s *projector.State) map[string]bool {
	out := map[string]bool{}
	for _, p := range s.Pods {
		for id := range p.Sandboxes {
			out[id] = true
		}
		for id := range p.Containers {
			out[id] = true
		}
	}
	return out
}

// knownObjects copies, by pod key, the sandboxes and containers the state
// holds. The relist compares against this copy so that it never calls the
// runtime while holding the projection's lock (that would stall every fold).
func knownObjects(s *projector.State) map[string]knownPod {
	out := make(map[string]knownPod, len(s.Pods))
	for key, p := range s.Pods {
		k := knownPod{sandboxes: make(map[string]projector.Sandbox, len(p.Sandboxes)), containers: make(map[string]projector.Container, len(p.Containers))}
		for id, sb := range p.Sandboxes {
			k.sandboxes[id] = *sb
		}
		for id, c := range p.Containers {
			k.containers[id] = *c
		}
		out[key] = k
	}
	return out
}

// observations compares a listing with the projected state and returns the
// events that bring the state in line: only changes, unless adopt is set (the
// first relist after the agent starts), when everything found is recorded as
// adopted so the audit trail shows what the agent took over.
//
// Objects the state holds but the runtime no longer lists are recorded gone —
// except those the state learned of after the listing began, which the list
// could not have seen.
func observations(ctx context.Context, st statuser, known map[string]knownPod, l listing, adopt bool) ([]eventlog.Event, error) {
	var evs []eventlog.Event
	listed := map[string]bool{}
	for _, sb := range l.sandboxes {
		listed[sb.ID] = true
		key := sb.PodNamespace + "/" + sb.PodName
		known, ok := known[key].sandboxes[sb.ID]
		if ok && known.State == string(sb.State) {
			if adopt {
				// The ledger already knows it as it is: adopt without asking
				// the runtime for details it has not changed.
				evs = append(evs, eventlog.Event{Pod: key, Data: &pb.SandboxObserved{
					Uid: known.UID, SandboxId: sb.ID, Attempt: sb.Attempt, State: known.State, Ip: known.IP,
					CreatedUnixNano: known.CreatedAt, Adopted: true,
				}})
			}
			continue
		}
		full, err := st.SandboxStatus(ctx, sb.ID)
		if err != nil {
			if isNotFound(err) {
				continue
			}
			return nil, err
		}
		if ok && known.State == string(full.State) && known.IP == full.IP && !adopt {
			continue
		}
		evs = append(evs, eventlog.Event{Pod: key, Data: &pb.SandboxObserved{
			Uid: full.PodUID, SandboxId: full.ID, Attempt: full.Attempt, State: string(full.State), Ip: full.IP,
			CreatedUnixNano: full.CreatedAt.UnixNano(), Adopted: adopt,
		}})
	}
	for _, c := range l.containers {
		listed[c.ID] = true
		key := c.PodNamespace + "/" + c.PodName
		known, ok := known[key].containers[c.ID]
		// An exited container never runs again: a CRI listing that still
		// shows it running is behind what containerd published (see Exit).
		stale := ok && known.State == string(ContainerExited) && (c.State == ContainerRunning || c.State == ContainerCreated)
		if ok && (known.State == string(c.State) || stale) {
			if adopt {
				evs = append(evs, eventlog.Event{Pod: key, Data: &pb.ContainerObserved{
					Uid: known.UID, SandboxId: known.SandboxID, Container: known.Name, ContainerId: c.ID,
					Attempt: known.Attempt, State: known.State, ExitCode: known.ExitCode, Reason: known.Reason,
					StartedUnixNano: known.StartedAt, FinishedUnixNano: known.FinishedAt, Adopted: true, Init: known.Init,
					GracePeriodSeconds: known.Grace,
				}})
			}
			continue
		}
		full, err := st.ContainerStatus(ctx, c.ID)
		if err != nil {
			if isNotFound(err) {
				continue
			}
			return nil, err
		}
		if full.SandboxID == "" {
			full.SandboxID = c.SandboxID
		}
		evs = append(evs, eventlog.Event{Pod: key, Data: containerObserved(full, adopt)})
	}
	for _, key := range sortedKeys(known) {
		p := known[key]
		for _, id := range sortedKeys(p.containers) {
			c := p.containers[id]
			if !listed[id] && l.before[id] {
				evs = append(evs, eventlog.Event{Pod: key, Data: &pb.ContainerGone{Uid: c.UID, ContainerId: id, Container: c.Name}})
			}
		}
		for _, id := range sortedKeys(p.sandboxes) {
			sb := p.sandboxes[id]
			if !listed[id] && l.before[id] {
				evs = append(evs, eventlog.Event{Pod: key, Data: &pb.SandboxGone{Uid: sb.UID, SandboxId: id}})
			}
		}
	}
	return evs, nil
}

// containerObserved is the record of a container's full CRI status.
func containerObserved(full ObservedContainer, adopt bool) *pb.ContainerObserved {
	return &pb.ContainerObserved{
		Uid: full.PodUID, SandboxId: full.SandboxID, Container: full.Name, ContainerId: full.ID,
		Attempt: full.Attempt, State: string(full.State), ExitCode: full.ExitCode, Reason: full.Reason,
		StartedUnixNano: unixNano(full.StartedAt), FinishedUnixNano: unixNano(full.FinishedAt),
		Adopted: adopt, Init: full.Type == ContainerTypeInit, GracePeriodSeconds: full.GraceSeconds,
	}
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Observer records what the runtime holds, appending only what changed. It
// relists the runtime every Period; with Changes it also reads an object as
// soon as the runtime says that object changed, and the relist becomes a
// safety net: every EventedPeriod while a change stream flows, at once when
// one opens or is lost, and every Period while none flows. (Removed pods'
// leftovers on disk, which no runtime event tells of, are still looked for
// every Period.) A change is never
// recorded as such: it only makes the observer read that one object through
// CRI and compare it with the state exactly as a relist does, so the ledger
// reads the same either way, only sooner.
//
// It records losing and regaining the runtime, with back-off between
// attempts. The first relist of a run records every object found as adopted,
// before RuntimeConnected, so nothing is planned on a half-known runtime.
type Observer struct {
	Runtime    *Runtime
	Endpoint   string
	Log        Recorder
	Projection Projection
	Logger     *slog.Logger
	Period     time.Duration // default 1s
	// Changes, when set, is subscribed to for the runtime's changes: CRI's
	// container events where the runtime has them, else containerd's own
	// events (*Runtime is a ChangeSubscriber).
	Changes ChangeSubscriber
	// EventedPeriod is the relist period while a change stream flows.
	// Default 10s, and never less than Period.
	EventedPeriod time.Duration
	Now           func() time.Time // default time.Now
}

// ChangeSubscriber opens change streams (see Runtime.SubscribeChanges).
type ChangeSubscriber interface {
	SubscribeChanges(ctx context.Context, api string) (ChangeStream, error)
}

// streamSettle is how long a change stream must stay open before it counts
// as flowing: neither API confirms a subscription, and a runtime without
// CRI events refuses the stream only on its first message, one round trip
// after it was opened.
const streamSettle = 200 * time.Millisecond

// changeRetries are the waits between reads after one change whose effect
// CRI does not show yet (containerd publishes an exit before its CRI plugin
// has handled it): dense at first, where CRI catches up, about a second in
// all. After that the relist has the last word.
var changeRetries = []time.Duration{2 * time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond,
	4 * time.Millisecond, 8 * time.Millisecond, 8 * time.Millisecond, 16 * time.Millisecond,
	32 * time.Millisecond, 64 * time.Millisecond, 128 * time.Millisecond, 256 * time.Millisecond, 512 * time.Millisecond}

// maxForeign bounds the IDs remembered as another agent's objects.
const maxForeign = 4096

// observing is the observer loop's own bookkeeping; none of it is a fact
// about pods (those are all in the log).
type observing struct {
	connected, adopt bool
	backoff          time.Duration
	// streaming: a change stream has been open for streamSettle; api is its API.
	streaming bool
	api       string
	pending   map[string]*pendingRead
	// foreign holds IDs of objects another agent (or the kubelet) made, so
	// their changes cost nothing after the first.
	foreign map[string]bool
	// oom holds containers the runtime said were OOM-killed, until their
	// exit is recorded: the reason CRI will give that exit.
	oom map[string]bool
	// unconfirmed holds exits recorded from the runtime's event while CRI
	// lagged, until a CRI read confirms (or corrects) them. It outlives a
	// pending read: CRI may take longer than changeRetries when exits queue,
	// and the task's deletion, published just before CRI's update, is read
	// again.
	unconfirmed map[string]*pb.ContainerObserved
}

// pendingRead is an object to read because the runtime said it changed.
type pendingRead struct {
	what  ChangeKind
	tries int
	due   time.Time
	// exit is the runtime's own word on a container's exit (Change.Exit).
	exit *Exit
}

// watchMsg is what the stream watcher tells the observer loop.
type watchMsg struct {
	kind   watchKind
	api    string
	err    error // streamLost
	change Change
}

type watchKind int

const (
	streamOpened watchKind = iota
	streamLost
	streamChange
)

func (o *Observer) defaults() {
	if o.Period <= 0 {
		o.Period = time.Second
	}
	if o.EventedPeriod <= 0 {
		o.EventedPeriod = 10 * time.Second
	}
	o.EventedPeriod = max(o.EventedPeriod, o.Period)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Run observes until ctx is done or the log refuses an append.
func (o *Observer) Run(ctx context.Context) error {
	o.defaults()
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // before wg.Wait: the watcher ends with ctx
	msgs := make(chan watchMsg, 64)
	if o.Changes != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o.watch(ctx, msgs)
		}()
	}
	ob := &observing{adopt: true, backoff: o.Period, pending: map[string]*pendingRead{}, foreign: map[string]bool{},
		oom: map[string]bool{}, unconfirmed: map[string]*pb.ContainerObserved{}}
	relist := time.NewTimer(0)
	defer relist.Stop()
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	defer settle.Stop()
	reads := time.NewTimer(time.Hour)
	reads.Stop()
	defer reads.Stop()
	// Leftovers of removed pods are watched on disk (no runtime event tells
	// of them) as often as the relist would without a stream.
	leftovers := time.NewTicker(o.Period)
	defer leftovers.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return nil
		case <-relist.C:
			var next time.Duration
			next, err = o.relist(ctx, ob)
			relist.Reset(next)
		case <-settle.C:
			ob.streaming = true
			o.Logger.Info("runtime changes streaming; relisting as a safety net", "api", ob.api, "period", o.EventedPeriod)
			relist.Reset(0) // what changed before the stream opened
		case m := <-msgs:
			o.handle(m, ob, settle, relist)
			for more := true; more; { // a burst is read and recorded as one batch
				select {
				case m := <-msgs:
					o.handle(m, ob, settle, relist)
				default:
					more = false
				}
			}
			err = o.readChanges(ctx, ob, reads)
		case <-reads.C:
			err = o.readChanges(ctx, ob, reads)
		case <-leftovers.C:
			if ob.streaming && ob.connected {
				var cleaned map[string]string
				o.Projection.Read(func(s *projector.State) { cleaned = cleanedLeftovers(s) })
				err = o.record(ctx, o.Runtime.reappeared(cleaned))
			}
		}
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

func (o *Observer) handle(m watchMsg, ob *observing, settle, relist *time.Timer) {
	switch m.kind {
	case streamOpened:
		ob.api = m.api
		settle.Reset(streamSettle)
	case streamLost:
		settle.Stop()
		if ob.streaming {
			ob.streaming = false
			o.Logger.Warn("runtime change stream lost; relisting every period", "api", m.api, "period", o.Period, "err", m.err)
			relist.Reset(0) // what changed while it was failing
		} else if !IsUnimplemented(m.err) {
			o.Logger.Debug("runtime change stream failed", "api", m.api, "err", m.err)
		}
	case streamChange:
		// Before the runtime is connected and adopted, the relist tells all.
		if !ob.connected || ob.adopt {
			return
		}
		c := m.change
		switch c.What {
		case ChangeOOM:
			if len(ob.oom) >= maxForeign {
				clear(ob.oom)
			}
			ob.oom[c.ID] = true
		case ChangeDeleted:
			delete(ob.oom, c.ID)
			delete(ob.unconfirmed, c.ID)
		}
		p := ob.pending[c.ID]
		if p == nil {
			p = &pendingRead{what: c.What}
			ob.pending[c.ID] = p
		} else {
			p.what, p.tries, p.due = stronger(p.what, c.What), 0, time.Time{}
		}
		if c.Exit != nil && p.exit == nil {
			p.exit = c.Exit
		}
	}
}

// stronger is the change whose effect a read should wait to see: a deletion
// implies the exit, an exit the start.
func stronger(a, b ChangeKind) ChangeKind {
	rank := map[ChangeKind]int{ChangeOOM: 0, ChangeStarted: 1, ChangeExited: 2, ChangeDeleted: 3}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// watch keeps a change stream open, CRI's events first, containerd's where
// the runtime has no CRI events, and passes on what it says. It owns no
// state: the loop decides what a stream's opening or loss means.
func (o *Observer) watch(ctx context.Context, out chan<- watchMsg) {
	send := func(m watchMsg) bool {
		select {
		case out <- m:
			return true
		case <-ctx.Done():
			return false
		}
	}
	backoff := 100 * time.Millisecond
	for {
		var err error
		var lived time.Duration
		for _, api := range []string{ChangesCRI, ChangesContainerd} {
			opened := time.Now()
			err = o.stream(ctx, api, send)
			lived = time.Since(opened)
			if ctx.Err() != nil {
				return
			}
			if !IsUnimplemented(err) {
				break
			}
		}
		if lived > time.Minute {
			backoff = 100 * time.Millisecond // it flowed: the runtime restarted or dropped us
		}
		if !backOff(ctx, &backoff) {
			return
		}
	}
}

// backOff waits *d, or until ctx ends (false), and doubles *d up to 30 s.
func backOff(ctx context.Context, d *time.Duration) bool {
	t := time.NewTimer(*d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	}
	*d = min(*d*2, 30*time.Second)
	return true
}

// stream subscribes through api and passes on changes until the stream ends.
func (o *Observer) stream(ctx context.Context, api string, send func(watchMsg) bool) error {
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: defers run last first
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := o.Changes.SubscribeChanges(ctx, api)
	if err != nil {
		send(watchMsg{kind: streamLost, api: api, err: err})
		return err
	}
	if !send(watchMsg{kind: streamOpened, api: api}) {
		return ctx.Err()
	}
	if api == ChangesCRI {
		// CRI's STOPPED event comes after containerd's CRI plugin has
		// cleaned the task up; containerd's own exit event, where the
		// runtime has it, comes 60-300 ms sooner (see Change.Exit).
		wg.Go(func() { o.followExits(ctx, send) })
	}
	for {
		c, err := s.Recv()
		if err != nil {
			if ctx.Err() == nil {
				send(watchMsg{kind: streamLost, api: api, err: err})
			}
			return err
		}
		if !send(watchMsg{kind: streamChange, api: api, change: c}) {
			return ctx.Err()
		}
	}
}

// followExits passes on the exits and OOM kills containerd's own events
// service publishes, beside a CRI event stream (which has everything else),
// until ctx ends. A runtime without that service (not containerd) is left at
// once; a failing subscription is tried again with back-off. It never
// reports the stream opening or failing: the CRI stream is the one the
// relist's pace depends on.
func (o *Observer) followExits(ctx context.Context, send func(watchMsg) bool) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		s, err := o.Changes.SubscribeChanges(ctx, ChangesContainerd)
		for err == nil {
			var c Change
			if c, err = s.Recv(); err == nil && (c.Exit != nil || c.What == ChangeOOM) {
				if !send(watchMsg{kind: streamChange, api: ChangesContainerd, change: c}) {
					return
				}
				backoff = 100 * time.Millisecond
			}
		}
		if ctx.Err() != nil || IsUnimplemented(err) {
			return
		}
		o.Logger.Debug("containerd's exit events failed; subscribing again", "err", err, "in", backoff)
		if !backOff(ctx, &backoff) {
			return
		}
	}
}

// relist lists the runtime and records what changed; it says when to relist next.
func (o *Observer) relist(ctx context.Context, ob *observing) (time.Duration, error) {
	var evs []eventlog.Event
	var version VersionInfo
	err := func() error {
		if !ob.connected {
			v, err := o.Runtime.Version(ctx)
			if err != nil {
				return err
			}
			version = v
		}
		var before map[string]bool
		o.Projection.Read(func(s *projector.State) { before = knownIDs(s) })
		l, err := o.Runtime.list(ctx, before)
		if err != nil {
			return err
		}
		var known map[string]knownPod
		var cleaned map[string]string
		o.Projection.Read(func(s *projector.State) { known, cleaned = knownObjects(s), cleanedLeftovers(s) })
		evs, err = observations(ctx, o.Runtime, known, l, ob.adopt)
		if err != nil {
			return err
		}
		evs = append(evs, o.Runtime.reappeared(cleaned)...)
		return nil
	}()
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil
		}
		if ob.connected {
			o.Logger.Warn("runtime lost", "endpoint", o.Endpoint, "err", err)
			if _, aerr := o.Log.Append(ctx, disconnectedEvent(o.Endpoint, err)); aerr != nil {
				return 0, fmt.Errorf("record runtime lost: %w", aerr)
			}
			ob.connected = false
		} else if ob.adopt {
			o.Logger.Warn("runtime not reachable yet", "endpoint", o.Endpoint, "err", err)
		}
		ob.backoff = min(ob.backoff*2, 30*time.Second)
		return ob.backoff, nil
	}
	ob.backoff = o.Period
	if !ob.connected {
		// The picture of the runtime lands before the connection does.
		evs = append(evs, connectedEvent(o.Endpoint, version))
	}
	if err := o.record(ctx, evs); err != nil {
		return 0, err
	}
	if !ob.connected {
		o.Logger.Info("runtime connected", "endpoint", o.Endpoint, "runtime", version.RuntimeName, "version", version.RuntimeVersion, "adopted", ob.adopt)
	}
	ob.connected, ob.adopt = true, false
	if ob.streaming {
		return o.EventedPeriod, nil
	}
	return o.Period, nil
}

// record appends evs and waits until they are folded, so that the next
// read compares with a state that holds them and never records them twice.
func (o *Observer) record(ctx context.Context, evs []eventlog.Event) error {
	if len(evs) == 0 {
		return nil
	}
	seqs, err := o.Log.Append(ctx, evs...)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("record observations: %w", err)
	}
	_ = o.Projection.WaitFor(ctx, seqs[len(seqs)-1]) // fails only when ctx ends
	return nil
}

// knownObject is what the state holds of one object a change named.
type knownObject struct {
	pod       string
	kind      objectKind
	sandbox   projector.Sandbox
	container projector.Container
}

// readChanges reads each object whose change is due and records what a
// relist would record of it. A read that does not show the change yet is
// tried again shortly; the next due one arms reads.
func (o *Observer) readChanges(ctx context.Context, ob *observing, reads *time.Timer) error {
	now := o.Now()
	due := map[string]*pendingRead{}
	for id, p := range ob.pending {
		if !p.due.After(now) {
			due[id] = p
		}
	}
	if len(due) > 0 {
		evs := o.readDue(ctx, ob, due)
		if err := o.record(ctx, evs); err != nil {
			return err
		}
	}
	var next time.Time
	for _, p := range ob.pending {
		if next.IsZero() || p.due.Before(next) {
			next = p.due
		}
	}
	if !next.IsZero() {
		reads.Reset(max(next.Sub(o.Now()), 0))
	}
	return nil
}

func (o *Observer) readDue(ctx context.Context, ob *observing, due map[string]*pendingRead) []eventlog.Event {
	known := map[string]knownObject{}
	starting := map[string]bool{} // pods with a start under way
	acting := map[string]bool{}   // objects being stopped or removed
	o.Projection.Read(func(s *projector.State) {
		for key, p := range s.Pods {
			for id := range due {
				if c := p.Containers[id]; c != nil {
					known[id] = knownObject{pod: key, kind: containerObject, container: *c}
				} else if sb := p.Sandboxes[id]; sb != nil {
					known[id] = knownObject{pod: key, kind: sandboxObject, sandbox: *sb}
				}
			}
		}
		for _, in := range s.Pending {
			switch in.Action {
			case pb.ActionStartContainer, pb.ActionRunSandbox:
				starting[in.Pod] = true
			case pb.ActionStopContainer, pb.ActionRemoveContainer:
				acting[in.ContainerID] = true
			case pb.ActionStopSandbox, pb.ActionRemoveSandbox:
				acting[in.SandboxID] = true
			}
		}
	})
	var evs []eventlog.Event
	for _, id := range sortedKeys(due) {
		p := due[id]
		if acting[id] {
			// The action's outcome records its effect, as it does when the
			// relist is the only observer; a failed one is the relist's.
			delete(ob.pending, id)
			continue
		}
		got, done := o.readOne(ctx, ob, id, p, known[id], starting)
		evs = append(evs, got...)
		if !done && p.tries < len(changeRetries) {
			p.due = o.Now().Add(changeRetries[p.tries])
			p.tries++
			continue
		}
		delete(ob.pending, id)
	}
	return evs
}

// readOne reads one object after a change and returns what a relist would
// record of it; done is false while CRI does not show the change yet.
func (o *Observer) readOne(ctx context.Context, ob *observing, id string, p *pendingRead, k knownObject, starting map[string]bool) (evs []eventlog.Event, done bool) {
	if k.kind == unknownObject {
		if p.what == ChangeDeleted {
			delete(ob.foreign, id) // the ID is not used again
			return nil, true
		}
		// A start of an object the state does not hold is another agent's,
		// or this agent's own, which the start's outcome records.
		if ob.foreign[id] || p.what == ChangeStarted {
			return nil, true
		}
	}
	if p.what == ChangeStarted && (k.container.State == pb.StateRunning || k.sandbox.State == pb.StateReady) {
		return nil, true // the state already has it running
	}
	// Only what the state held before the read began can be read as gone.
	before := map[string]bool{}
	if k.kind != unknownObject {
		before[id] = true
	}
	l, foreign, err := o.Runtime.lookUp(ctx, id, k.kind, before)
	if err != nil {
		// The relist will tell; a runtime that went away is its business.
		o.Logger.Debug("read after a change", "id", id, "change", p.what, "err", err)
		return nil, true
	}
	if foreign {
		if len(ob.foreign) >= maxForeign {
			clear(ob.foreign)
		}
		ob.foreign[id] = true
		return nil, true
	}
	restricted := map[string]knownPod{}
	switch k.kind {
	case unknownObject:
		key, ok := l.podKey()
		if !ok {
			// Not (or not yet) a CRI object: a sandbox being made, or a
			// container not made through CRI.
			return nil, true
		}
		if starting[key] {
			return nil, false // the start's outcome tells the state of it first
		}
	case containerObject:
		shown := l.shows(ChangeExited)
		if p.exit != nil && !shown && k.container.State == string(ContainerRunning) {
			// CRI is behind containerd's exit event: record the exit as CRI
			// will report it (everything else as CRI reports it now), and
			// read on until CRI confirms it.
			if full, err := o.Runtime.ContainerStatus(ctx, id); err == nil && full.State == ContainerRunning {
				if full.SandboxID == "" {
					full.SandboxID = k.container.SandboxID
				}
				rec := exitObserved(full, *p.exit, ob.oom[id])
				if len(ob.unconfirmed) >= maxForeign {
					clear(ob.unconfirmed)
				}
				ob.unconfirmed[id] = rec
				o.Logger.Debug("exit recorded from the runtime's event", "id", id, "exitCode", p.exit.Code)
				return []eventlog.Event{{Pod: k.pod, Data: rec}}, false
			}
		}
		if rec := ob.unconfirmed[id]; rec != nil {
			if !shown {
				return nil, false
			}
			evs = o.confirmExit(ctx, id, k.pod, rec)
			delete(ob.unconfirmed, id)
			delete(ob.oom, id)
		}
		restricted[k.pod] = knownPod{containers: map[string]projector.Container{id: k.container}}
	case sandboxObject:
		restricted[k.pod] = knownPod{sandboxes: map[string]projector.Sandbox{id: k.sandbox}}
	}
	more, err := observations(ctx, o.Runtime, restricted, l, false)
	evs = append(evs, more...)
	if err != nil {
		o.Logger.Debug("read after a change", "id", id, "change", p.what, "err", err)
		return nil, true
	}
	o.Logger.Debug("read after a change", "id", id, "change", p.what, "try", p.tries, "shows", l.shows(p.what), "recorded", len(evs))
	return evs, l.shows(p.what)
}

// exitObserved is the observation CRI will make of a running container's
// exit, from the runtime's exit event: containerd's CRI plugin keeps the
// exit status and time of the event and names the reason by the exit code,
// or OOMKilled after an OOM event (pkg/cri: completeExitReason,
// errorExitReason, oomExitReason).
func exitObserved(running ObservedContainer, exit Exit, oom bool) *pb.ContainerObserved {
	reason := "Error"
	switch {
	case oom:
		reason = "OOMKilled"
	case exit.Code == 0:
		reason = "Completed"
	}
	rec := containerObserved(running, false)
	rec.State, rec.ExitCode, rec.Reason, rec.FinishedUnixNano = string(ContainerExited), exit.Code, reason, exit.At.UnixNano()
	return rec
}

// confirmExit reads the full CRI status of a container whose exit was
// recorded from the runtime's event, and returns a corrected observation
// where CRI says otherwise (nothing when it agrees, or is gone).
func (o *Observer) confirmExit(ctx context.Context, id, pod string, recorded *pb.ContainerObserved) []eventlog.Event {
	full, err := o.Runtime.ContainerStatus(ctx, id)
	if err != nil {
		o.Logger.Debug("confirm an exit", "id", id, "err", err)
		return nil
	}
	if full.SandboxID == "" {
		full.SandboxID = recorded.SandboxId
	}
	got := containerObserved(full, false)
	if proto.Equal(got, recorded) {
		return nil
	}
	o.Logger.Info("runtime's exit differs from its event; recording it", "id", id, "event", recorded, "cri", got)
	return []eventlog.Event{{Pod: pod, Data: got}}
}

func connectedEvent(endpoint string, v VersionInfo) eventlog.Event {
	return eventlog.Event{Data: &pb.RuntimeConnected{Endpoint: endpoint, RuntimeName: v.RuntimeName, RuntimeVersion: v.RuntimeVersion}}
}

func disconnectedEvent(endpoint string, err error) eventlog.Event {
	return eventlog.Event{Data: &pb.RuntimeDisconnected{Endpoint: endpoint, Reason: fmt.Sprint(err)}}
}

// cleanedLeftovers copies, by UID, the pod keys of leftovers whose removal
// was confirmed and that are still watched.
func cleanedLeftovers(s *projector.State) map[string]string {
	out := map[string]string{}
	for uid, lo := range s.Leftovers {
		if lo.Cleaned != 0 {
			out[uid] = lo.Pod
		}
	}
	return out
}

// reappeared reports the cleaned UIDs whose cgroup or data directory is on
// the node again. Only UIDs of this agent's own pods are looked at: the
// cgroup root may be shared.
func (r *Runtime) reappeared(cleaned map[string]string) []eventlog.Event {
	if len(cleaned) == 0 {
		return nil
	}
	// The mount table is read, and each parent directory listed, once a
	// pass rather than once a pod: reading them for each pod took 2 ms a pod
	// under load, which held the first relist after a restart (and the
	// RuntimeConnected it records) back by 40 ms with 20 pods removed in the
	// minutes before.
	mounts, err := cgroupMounts(r.cfg.CgroupFS)
	if err != nil {
		r.log.Warn("look for removed pods' leftovers", "err", err)
		mounts = nil // the data directories can still be looked at
	}
	seen := dirListings{}
	var evs []eventlog.Event
	for _, uid := range sortedKeys(cleaned) {
		if r.podDataPresent(uid, mounts, seen) {
			evs = append(evs, eventlog.Event{Pod: cleaned[uid], Data: &pb.PodDataObserved{Uid: uid}})
		}
	}
	return evs
}
