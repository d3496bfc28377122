package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

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
		if ok && known.State == string(c.State) {
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
		evs = append(evs, eventlog.Event{Pod: key, Data: &pb.ContainerObserved{
			Uid: full.PodUID, SandboxId: full.SandboxID, Container: full.Name, ContainerId: full.ID,
			Attempt: full.Attempt, State: string(full.State), ExitCode: full.ExitCode, Reason: full.Reason,
			StartedUnixNano: unixNano(full.StartedAt), FinishedUnixNano: unixNano(full.FinishedAt),
			Adopted: adopt, Init: full.Type == ContainerTypeInit, GracePeriodSeconds: full.GraceSeconds,
		}})
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

// Observer records what the runtime holds: it relists every Period and
// appends only what changed, and records losing and regaining the runtime,
// with back-off between attempts. The first relist of a run records every
// object found as adopted, before RuntimeConnected, so nothing is planned on
// a half-known runtime.
type Observer struct {
	Runtime    *Runtime
	Endpoint   string
	Log        Recorder
	Projection Projection
	Logger     *slog.Logger
	Period     time.Duration // default 1s
}

// Run observes until ctx is done or the log refuses an append.
func (o *Observer) Run(ctx context.Context) error {
	if o.Period <= 0 {
		o.Period = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	connected, adopt := false, true
	backoff := o.Period
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		var evs []eventlog.Event
		var version VersionInfo
		err := func() error {
			if !connected {
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
			evs, err = observations(ctx, o.Runtime, known, l, adopt)
			if err != nil {
				return err
			}
			evs = append(evs, o.Runtime.reappeared(cleaned)...)
			return nil
		}()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if connected {
				o.Logger.Warn("runtime lost", "endpoint", o.Endpoint, "err", err)
				if _, aerr := o.Log.Append(ctx, disconnectedEvent(o.Endpoint, err)); aerr != nil {
					return fmt.Errorf("record runtime lost: %w", aerr)
				}
				connected = false
			} else if adopt {
				o.Logger.Warn("runtime not reachable yet", "endpoint", o.Endpoint, "err", err)
			}
			backoff = min(backoff*2, 30*time.Second)
			timer.Reset(backoff)
			continue
		}
		backoff = o.Period
		if !connected {
			// The picture of the runtime lands before the connection does.
			evs = append(evs, connectedEvent(o.Endpoint, version))
		}
		if len(evs) > 0 {
			if _, err := o.Log.Append(ctx, evs...); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("record observations: %w", err)
			}
		}
		if !connected {
			o.Logger.Info("runtime connected", "endpoint", o.Endpoint, "runtime", version.RuntimeName, "version", version.RuntimeVersion, "adopted", adopt)
		}
		connected, adopt = true, false
		timer.Reset(o.Period)
	}
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
	var evs []eventlog.Event
	for _, uid := range sortedKeys(cleaned) {
		if r.podDataPresent(uid) {
			evs = append(evs, eventlog.Event{Pod: cleaned[uid], Data: &pb.PodDataObserved{Uid: uid}})
		}
	}
	return evs
}
