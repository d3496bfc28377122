package projector

import (
	"path"
	"strings"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

// Apply folds one event into the state. It is total: an event that makes no
// sense for the current state (say, an outcome for an unknown intent) changes
// only what it can, deterministically, and never panics.
func (s *State) Apply(e eventlog.Event) { s.apply(e) }

// apply folds e and says whether its type has a fold arm (every type in
// events.proto must; a test holds that).
func (s *State) apply(e eventlog.Event) bool {
	// now is when the event happened (wall time, for records); steady is
	// where it falls on the clock deadlines are kept in (see Clock).
	steady := s.tick(e)
	s.Seq = e.Seq
	now := e.Time.UnixNano()
	s.Time = now
	switch d := e.Data.(type) {
	case *pb.AgentStarted:
		if s.Agent.Running {
			s.Agent.Unclean++
		}
		s.Agent = Agent{
			Running: true, Version: d.Version, NodeName: d.NodeName,
			Starts: s.Agent.Starts + 1, Unclean: s.Agent.Unclean, StartedAt: now,
			StoppedAt: s.Agent.StoppedAt, StopReason: s.Agent.StopReason,
			StartSeq: e.Seq, NodeIP: d.NodeIp, Apiserver: d.Apiserver,
		}
		// Sources must list again in this run before their silence about a
		// pod may be taken as "not wanted"; the runtime and the apiserver
		// must be re-observed. The previous run's "connected" and "synced"
		// are history.
		for _, src := range s.Sources {
			src.Synced = false
		}
		s.Runtime.Connected = false
		s.Apiserver.Connected, s.Apiserver.MirrorsSynced = false, false
		if len(d.Sources) > 0 {
			s.configureSources(d.Sources, now)
		}
		if !d.Apiserver {
			// No apiserver in this run: mirrors are not ours to keep.
			for _, p := range s.Pods {
				p.Mirror = nil
				s.dropIfGone(p)
			}
		}
	case *pb.AgentStopped:
		s.Agent.Running = false
		s.Agent.StoppedAt = now
		s.Agent.StopReason = d.Reason

	case *pb.ManifestAdded:
		s.applyManifest(e.Pod, now, manifestVersion{
			source: d.Source, path: d.Path, contentHash: d.ContentHash, uid: d.Uid,
			configHash: d.ConfigHash, spec: d.PodJson, warnings: d.Warnings, uidAlgorithm: d.UidAlgorithm,
		})
	case *pb.ManifestChanged:
		s.applyManifest(e.Pod, now, manifestVersion{
			source: d.Source, path: d.Path, contentHash: d.ContentHash, uid: d.Uid,
			configHash: d.ConfigHash, spec: d.PodJson, warnings: d.Warnings, uidAlgorithm: d.UidAlgorithm,
		})
	case *pb.ManifestRemoved:
		m := s.Manifests[d.Path]
		delete(s.Manifests, d.Path)
		key := e.Pod
		if key == "" && m != nil {
			key = m.Pod
		}
		if p := s.Pods[key]; p != nil && p.Path == d.Path {
			p.Removed = true
			p.UpdatedAt = now
			s.dropIfGone(p)
		}
	case *pb.ManifestRejected:
		m := s.Manifests[d.Path]
		if m == nil {
			m = &Manifest{Source: d.Source, Path: d.Path, Pod: e.Pod}
			s.Manifests[d.Path] = m
		}
		m.ContentHash = d.ContentHash
		m.Rejected = true
		m.Reason = d.Reason
		m.Since = now
		// The pod (if this path provides one) keeps its last good spec.
		if p := s.Pods[m.Pod]; p != nil && p.Path == d.Path {
			p.LastRejection = d.Reason
		}
	case *pb.SourceSynced:
		src := s.source(d.Source, d.Location)
		src.Synced = true
		src.Available = true
		src.Manifests = d.Manifests
	case *pb.SourceUnavailable:
		src := s.source(d.Source, d.Location)
		src.Available = false
		src.Reason = d.Reason
		src.Since = now
	case *pb.SourceAvailable:
		src := s.source(d.Source, d.Location)
		src.Available = true
		src.Reason = ""
		src.Since = now

	case *pb.RuntimeConnected:
		s.Runtime = Runtime{Connected: true, Endpoint: d.Endpoint, Name: d.RuntimeName, Version: d.RuntimeVersion, Since: now}
	case *pb.RuntimeDisconnected:
		s.Runtime.Connected = false
		s.Runtime.Endpoint = d.Endpoint
		s.Runtime.Reason = d.Reason
		s.Runtime.Since = now
	case *pb.SandboxObserved:
		p := s.pod(e.Pod, now)
		if p.Sandboxes == nil {
			p.Sandboxes = map[string]*Sandbox{}
		}
		stale := false
		if prev := p.Sandboxes[d.SandboxId]; prev != nil {
			if prev.State == pb.StateNotReady && d.State == pb.StateReady {
				break // a stale listing: a stopped sandbox never becomes ready again
			}
			stale = prev.Stale
		}
		p.Sandboxes[d.SandboxId] = &Sandbox{
			ID: d.SandboxId, UID: d.Uid, Attempt: d.Attempt, State: d.State, IP: d.Ip,
			CreatedAt: d.CreatedUnixNano, Adopted: d.Adopted, Stale: stale,
		}
	case *pb.SandboxGone:
		if p := s.Pods[e.Pod]; p != nil {
			delete(p.Sandboxes, d.SandboxId)
			s.dropIfGone(p)
		}
	case *pb.ContainerObserved:
		p := s.pod(e.Pod, now)
		if p.Containers == nil {
			p.Containers = map[string]*Container{}
		}
		prev := p.Containers[d.ContainerId]
		if prev != nil && stateRank(d.State) < stateRank(prev.State) {
			// A relist listed before an action's outcome was recorded can
			// arrive after it; a container's life only moves forward.
			break
		}
		c := &Container{
			ID: d.ContainerId, UID: d.Uid, SandboxID: d.SandboxId, Name: d.Container,
			Attempt: d.Attempt, State: d.State, ExitCode: d.ExitCode, Reason: d.Reason,
			StartedAt: d.StartedUnixNano, FinishedAt: d.FinishedUnixNano, Init: d.Init, Adopted: d.Adopted,
		}
		switch {
		case prev != nil && prev.StartedSteady != 0:
			c.StartedSteady = prev.StartedSteady
		case d.StartedUnixNano != 0:
			c.StartedSteady = steady - max(now-d.StartedUnixNano, 0)
		}
		if prev != nil {
			c.Grace, c.Stale, c.ImageRef = prev.Grace, prev.Stale, prev.ImageRef
			c.Init = c.Init || prev.Init
			c.Liveness, c.Readiness, c.Startup, c.KilledFor = prev.Liveness, prev.Readiness, prev.Startup, prev.KilledFor
			c.PostStartPending, c.PostStartError = prev.PostStartPending, prev.PostStartError
			c.HasPreStop, c.PreStopDone, c.PreStopSeconds = prev.HasPreStop, prev.PreStopDone, prev.PreStopSeconds
		}
		if d.GracePeriodSeconds > 0 {
			c.Grace = d.GracePeriodSeconds
		}
		p.Containers[d.ContainerId] = c
		if d.State == pb.StateExited && (prev == nil || prev.State != pb.StateExited) && d.Uid == p.UID {
			p.noteExit(c, steady)
		}
	case *pb.ContainerProbed:
		// Results belong to one instance: a new instance starts unprobed.
		if p := s.Pods[e.Pod]; p != nil {
			if c := p.Containers[d.ContainerId]; c != nil {
				st := &ProbeState{Success: pb.ProbeResult(d.Result) == pb.ProbeSuccess, Output: d.Output, Consecutive: d.Consecutive, At: now}
				switch pb.ProbeKind(d.Probe) {
				case pb.ProbeLiveness:
					c.Liveness = st
				case pb.ProbeReadiness:
					c.Readiness = st
				case pb.ProbeStartup:
					c.Startup = st
				}
			}
		}
	case *pb.ContainerGone:
		if p := s.Pods[e.Pod]; p != nil {
			delete(p.Containers, d.ContainerId)
			s.dropIfGone(p)
		}

	case *pb.Intent:
		in := &PendingIntent{
			Pod: e.Pod, Action: pb.Action(d.Action), UID: d.Uid, Container: d.Container, Attempt: d.Attempt,
			SandboxID: d.SandboxId, ContainerID: d.ContainerId, Grace: d.GracePeriodSeconds, At: now, Steady: steady,
			MirrorUID: d.MirrorUid, ConfigHash: d.ConfigHash, StatusHash: d.StatusHash, RemovePodData: d.RemovePodData,
			StatusDigest: d.StatusDigest,
		}
		if p := s.Pods[e.Pod]; p != nil {
			in.Generation = p.Generation
			if pb.Action(d.Action) == pb.ActionStartContainer && d.Uid == p.UID {
				in.Init = p.isInitContainer(d.Container)
				if sc := p.specContainer(d.Container); sc != nil && sc.Lifecycle != nil {
					in.PostStart, in.PreStop = sc.Lifecycle.PostStart != nil, sc.Lifecycle.PreStop != nil
				}
			}
		}
		s.Pending[e.Seq] = in
		if d.Uid != "" && (d.RemovePodData || pb.Action(d.Action) == pb.ActionRunSandbox) {
			// From a sandbox's creation (containerd makes the pod's cgroup
			// even when the call is cut short) until its data's removal is
			// confirmed, the UID may have left something on the node.
			s.Leftovers[d.Uid] = &Leftover{Pod: e.Pod}
		}
		if p := s.Pods[e.Pod]; p != nil {
			p.LastAction = &Action{Seq: e.Seq, Action: pb.Action(d.Action), Container: d.Container, Reason: d.Reason, At: now}
			if c := p.Containers[d.ContainerId]; c != nil && pb.Action(d.Action) == pb.ActionStopContainer {
				// The decision says why: a probe's failure, a failed hook, or anything else.
				c.KilledFor = killReason(d.Reason)
			}
		}
	case *pb.Outcome:
		if in := s.Pending[d.IntentSeq]; in != nil {
			s.applyOutcome(in, d, now, steady)
		}
		s.pruneLeftovers(steady)
		delete(s.Pending, d.IntentSeq)
		if p := s.Pods[e.Pod]; p != nil && p.LastAction != nil && p.LastAction.Seq == d.IntentSeq {
			p.LastAction.Done = true
			p.LastAction.OK = d.Ok
			p.LastAction.Error = d.Error
			p.LastAction.ErrReason = d.Reason
		}

	case *pb.MirrorObserved:
		// A mirror with no static pod gets a placeholder (not desired), so
		// the planner removes it once the sources have listed.
		p := s.pod(e.Pod, now)
		m := &Mirror{UID: d.MirrorUid, ConfigMirror: d.ConfigMirror, Deleting: d.Deleting, Phase: d.Phase, Since: now,
			ObservedDigest: d.StatusDigest}
		if p.Mirror != nil && p.Mirror.UID == d.MirrorUid {
			m.StatusHash = p.Mirror.StatusHash
		}
		p.Mirror = m
	case *pb.MirrorGone:
		if p := s.Pods[e.Pod]; p != nil && p.Mirror != nil && p.Mirror.UID == d.MirrorUid {
			p.Mirror = nil
			s.dropIfGone(p)
		}
	case *pb.ApiserverConnected:
		s.Apiserver = Apiserver{Connected: true, Host: d.Host, NodeUID: d.NodeUid, Version: d.ServerVersion, Since: now}
		// Failures seen while it was away say nothing about it now.
		for _, p := range s.Pods {
			delete(p.Failures, mirrorFailureKey)
		}
	case *pb.ApiserverDisconnected:
		s.Apiserver.Connected, s.Apiserver.MirrorsSynced = false, false
		s.Apiserver.Host, s.Apiserver.Reason, s.Apiserver.Since = d.Host, d.Reason, now
	case *pb.MirrorsSynced:
		if s.Apiserver.Connected {
			s.Apiserver.MirrorsSynced = true
		}
	case *pb.PodDataObserved:
		// Something of the UID is on the node again (or still): clean it.
		s.Leftovers[d.Uid] = &Leftover{Pod: e.Pod}
	case *pb.SnapshotMarker:
		// Informational: snapshots never change state.
	default:
		return false
	}
	return true
}

type manifestVersion struct {
	source, path, contentHash, uid, configHash, uidAlgorithm string
	spec                                                     []byte
	warnings                                                 []string
}

func (s *State) applyManifest(key string, now int64, v manifestVersion) {
	// A file names one pod; a URL may serve many (a PodList), so only a file
	// that now names another pod means the old one is gone.
	if prev := s.Manifests[v.path]; v.source == "file" && prev != nil && prev.Pod != "" && prev.Pod != key {
		// The path now names another pod: the old one is no longer desired.
		if old := s.Pods[prev.Pod]; old != nil && old.Path == v.path {
			old.Removed = true
			old.UpdatedAt = now
			s.dropIfGone(old)
		}
	}
	s.Manifests[v.path] = &Manifest{
		Source: v.source, Path: v.path, ContentHash: v.contentHash, Pod: key, UID: v.uid, Since: now,
	}
	p := s.pod(key, now)
	newUID := p.UID != v.uid
	contentChanged := p.ContentHash != v.contentHash
	if newUID || p.Removed || p.Spec == nil {
		p.Generation++
	} else if p.ContentHash != v.contentHash {
		p.Generation++
	}
	p.UID = v.uid
	p.Source = v.source
	p.Path = v.path
	p.ContentHash = v.contentHash
	p.ConfigHash = v.configHash
	p.UIDAlgorithm = v.uidAlgorithm
	p.Spec = append([]byte(nil), v.spec...)
	p.Warnings = append([]string(nil), v.warnings...)
	p.decoded = decodeSpec(p.Spec)
	if !newUID && p.ContentHash != "" && contentChanged {
		// Same UID, new spec: what runs is of the old version.
		for _, c := range p.Containers {
			c.Stale = true
		}
		for _, sb := range p.Sandboxes {
			sb.Stale = true
		}
	}
	p.Removed = false
	p.LastRejection = ""
	p.UpdatedAt = now
	if newUID {
		// A new UID is a new pod to the runtime: its back-off starts afresh.
		p.Backoff, p.Failures = nil, nil
	}
}

// pod returns the pod for key, creating a placeholder (not desired: Removed)
// when the runtime reports something the manifests never named.
func (s *State) pod(key string, now int64) *Pod {
	if p := s.Pods[key]; p != nil {
		return p
	}
	ns, name, _ := strings.Cut(key, "/")
	p := &Pod{Namespace: ns, Name: name, FirstSeen: now, UpdatedAt: now, Removed: true}
	s.Pods[key] = p
	return p
}

// dropIfGone forgets a pod that is neither desired nor present in the
// runtime or (as a mirror) in the apiserver.
func (s *State) dropIfGone(p *Pod) {
	if p.Removed && len(p.Sandboxes) == 0 && len(p.Containers) == 0 && p.Mirror == nil {
		delete(s.Pods, p.Key())
	}
}

// configureSources applies the sources configured in this run: a source
// no longer configured is forgotten, and its pods are no longer desired
// (otherwise its silence would block orphan removal forever, and its pods
// could never be removed). Each configured source must list in this run.
func (s *State) configureSources(configured []string, now int64) {
	want := map[string]bool{}
	for _, c := range configured {
		want[c] = true
		name, loc, _ := strings.Cut(c, " ")
		s.source(name, loc)
	}
	for key := range s.Sources {
		if !want[key] {
			delete(s.Sources, key)
		}
	}
	for _, p := range s.Pods {
		if p.Removed || p.Spec == nil || s.podSourceConfigured(p, want) {
			continue
		}
		p.Removed = true
		p.UpdatedAt = now
		delete(s.Manifests, p.Path)
		s.dropIfGone(p)
	}
}

// podSourceConfigured: the pod's manifest belongs to a configured source
// (a URL itself; a file, or a file in a configured directory).
func (s *State) podSourceConfigured(p *Pod, want map[string]bool) bool {
	if want[p.Source+" "+p.Path] {
		return true
	}
	return p.Source == pb.SourceFile && want[p.Source+" "+path.Dir(p.Path)]
}

func (s *State) source(name, location string) *Source {
	key := name + " " + location
	src := s.Sources[key]
	if src == nil {
		src = &Source{Name: name, Location: location}
		s.Sources[key] = src
	}
	return src
}

// stateRank orders a container's life: created, running, exited.
func stateRank(state string) int {
	switch state {
	case pb.StateCreated:
		return 1
	case pb.StateRunning:
		return 2
	case pb.StateExited:
		return 3
	}
	return 0 // unknown
}
