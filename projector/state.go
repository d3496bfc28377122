package projector

import (
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

// SchemaVersion of the canonical state encoding (snapshots). Bump it when a
// change to the state types would make an old snapshot fold differently; old
// snapshots are then ignored and state is rebuilt from the log.
//
// 3: containers carry probe results and hooks; a stop's outcome counts as
// an exit for the back-off; Init is recorded from the start's spec.
// 4: the state carries its Clock; back-off, retry and recheck deadlines are
// in steady time, not wall time.
const SchemaVersion = 4

// State is everything the agent knows, as of event Seq.
type State struct {
	Seq  uint64 `json:"seq"`
	Time int64  `json:"time"` // unix nanoseconds of event Seq, the wall clock as recorded
	// Clock is the steady time line deadlines are kept in.
	Clock Clock `json:"clock"`

	Agent     Agent     `json:"agent"`
	Runtime   Runtime   `json:"runtime"`
	Apiserver Apiserver `json:"apiserver"`
	// Sources by "<source> <location>", e.g. "file /etc/kubernetes/manifests".
	Sources map[string]*Source `json:"sources,omitempty"`
	// Manifests by path (file path or URL): what each one last said.
	Manifests map[string]*Manifest `json:"manifests,omitempty"`
	// Pods by "namespace/name".
	Pods map[string]*Pod `json:"pods,omitempty"`
	// Leftovers by pod UID: what a pod may have left on the node beside
	// runtime objects (its cgroup and data), from its first sandbox until its
	// removal is confirmed — and for a while after, since a create an
	// earlier run left in flight in containerd can bring a cgroup back.
	Leftovers map[string]*Leftover `json:"leftovers,omitempty"`
	// Pending intents by the seq of their Intent event: actions whose outcome
	// was never recorded. After a crash, recovery reconciles these.
	Pending map[uint64]*PendingIntent `json:"pending,omitempty"`
}

// Agent is the agent process's own lifecycle.
type Agent struct {
	Running    bool   `json:"running"`
	Version    string `json:"version,omitempty"`
	NodeName   string `json:"nodeName,omitempty"`
	Starts     int    `json:"starts"`
	Unclean    int    `json:"unclean"` // starts not preceded by a clean stop
	StartedAt  int64  `json:"startedAt,omitempty"`
	StoppedAt  int64  `json:"stoppedAt,omitempty"`
	StopReason string `json:"stopReason,omitempty"`
	// StartSeq is the seq of this run's AgentStarted: intents before it
	// were planned by an earlier run.
	StartSeq uint64 `json:"startSeq,omitempty"`
	NodeIP   string `json:"nodeIP,omitempty"`
	// Apiserver: a kubeconfig was given in this run, so mirrors are kept.
	Apiserver bool `json:"apiserver,omitempty"`
}

// Apiserver is the connection to the kube-apiserver that holds the mirrors.
type Apiserver struct {
	Connected bool   `json:"connected"`
	Host      string `json:"host,omitempty"`
	NodeUID   string `json:"nodeUID,omitempty"`
	Version   string `json:"version,omitempty"`
	// MirrorsSynced: this connection listed the node's pods, so a mirror
	// the state does not hold is not there.
	MirrorsSynced bool   `json:"mirrorsSynced,omitempty"`
	Since         int64  `json:"since,omitempty"`
	Reason        string `json:"reason,omitempty"`
}

// Runtime is the container runtime connection.
type Runtime struct {
	Connected bool   `json:"connected"`
	Endpoint  string `json:"endpoint,omitempty"`
	Name      string `json:"name,omitempty"`
	Version   string `json:"version,omitempty"`
	Since     int64  `json:"since,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// Source is one manifest source's condition.
type Source struct {
	Name      string `json:"name"`
	Location  string `json:"location"`
	Synced    bool   `json:"synced"`
	Available bool   `json:"available"`
	Reason    string `json:"reason,omitempty"`
	Since     int64  `json:"since,omitempty"`
	Manifests uint32 `json:"manifests"`
}

// Manifest is the last thing a manifest path said.
type Manifest struct {
	Source      string `json:"source"`
	Path        string `json:"path"`
	ContentHash string `json:"contentHash"`
	Pod         string `json:"pod,omitempty"` // pod key it provides; empty while rejected with no pod
	UID         string `json:"uid,omitempty"`
	Rejected    bool   `json:"rejected,omitempty"`
	Reason      string `json:"reason,omitempty"`
	Since       int64  `json:"since"`
}

// Pod is one static pod: its desired spec and everything observed about it.
type Pod struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`

	// Desired. Removed is set when the manifest goes away; the pod stays in
	// state until the runtime shows nothing of it, so its teardown is tracked.
	UID          string          `json:"uid,omitempty"`
	Source       string          `json:"source,omitempty"`
	Path         string          `json:"path,omitempty"`
	ContentHash  string          `json:"contentHash,omitempty"`
	ConfigHash   string          `json:"configHash,omitempty"`
	UIDAlgorithm string          `json:"uidAlgorithm,omitempty"`
	Spec         json.RawMessage `json:"spec,omitempty"` // defaulted v1.Pod, canonical JSON
	Warnings     []string        `json:"warnings,omitempty"`
	Removed      bool            `json:"removed,omitempty"`
	FirstSeen    int64           `json:"firstSeen"`
	UpdatedAt    int64           `json:"updatedAt"`
	Generation   int             `json:"generation"` // spec versions seen
	// LastRejection is the newest rejected edit; the pod keeps its last good spec.
	LastRejection string `json:"lastRejection,omitempty"`

	// Observed, by runtime ID.
	Sandboxes  map[string]*Sandbox   `json:"sandboxes,omitempty"`
	Containers map[string]*Container `json:"containers,omitempty"`

	Mirror *Mirror `json:"mirror,omitempty"`
	// LastAction is the newest intent folded for this pod, with its outcome.
	LastAction *Action `json:"lastAction,omitempty"`
	// Backoff by container name: crash-loop back-off, folded from exits, so
	// it survives agent restarts (the kubelet forgets it).
	Backoff map[string]*Backoff `json:"backoff,omitempty"`
	// Failures by container name ("" for the sandbox): failed actions and when to retry.
	Failures map[string]*Failure `json:"failures,omitempty"`
	// Interrupted: by container name, the attempt whose StartContainer an
	// earlier run left without an outcome (settled as Reconciled). If that
	// instance then ends without having run (containerd's StartError), the
	// agent cut it short: it is started again without crash-loop back-off.
	Interrupted map[string]uint32 `json:"interrupted,omitempty"`

	decoded *corev1.Pod // Spec, decoded once when folded; not part of the encoding
}

// Leftover is one UID's cgroup and data on the node.
type Leftover struct {
	Pod string `json:"pod"` // the pod key it belonged to
	// Cleaned is when its removal was confirmed, in steady time (0: it may
	// be there). A cleaned entry is kept for LeftoverRecheck, while the
	// observer checks that nothing brought it back.
	Cleaned int64    `json:"cleaned,omitempty"`
	Failure *Failure `json:"failure,omitempty"`
}

// Backoff is one container's crash-loop back-off.
type Backoff struct {
	Delay     int64 `json:"delay"`     // nanoseconds to wait after the last exit
	NextStart int64 `json:"nextStart"` // not before this steady time (see Clock)
	Exits     int   `json:"exits"`
}

// Failure is a failed action that will be retried with back-off.
type Failure struct {
	Reason  string `json:"reason"` // ErrImagePull, ErrImageNeverPull, CreateContainerError, …
	Message string `json:"message,omitempty"`
	Count   int    `json:"count"`
	At      int64  `json:"at"`      // wall time of the failure, as recorded
	NextTry int64  `json:"nextTry"` // not before this steady time (see Clock)
}

// Key is "namespace/name".
func (p *Pod) Key() string { return p.Namespace + "/" + p.Name }

// Sandbox is an observed pod sandbox.
type Sandbox struct {
	ID        string `json:"id"`
	UID       string `json:"uid"`
	Attempt   uint32 `json:"attempt"`
	State     string `json:"state"`
	IP        string `json:"ip,omitempty"`
	CreatedAt int64  `json:"createdAt,omitempty"`
	Adopted   bool   `json:"adopted,omitempty"`
	// Stale: created for an earlier version of a pod whose UID did not change
	// (a pinned metadata.uid); it is replaced like a pod of another UID.
	Stale bool `json:"stale,omitempty"`
}

// Container is an observed container instance.
type Container struct {
	ID         string `json:"id"`
	UID        string `json:"uid"`
	SandboxID  string `json:"sandboxId,omitempty"`
	Name       string `json:"name"`
	Attempt    uint32 `json:"attempt"`
	State      string `json:"state"`
	ExitCode   int32  `json:"exitCode"`
	Reason     string `json:"reason,omitempty"`
	StartedAt  int64  `json:"startedAt,omitempty"`
	FinishedAt int64  `json:"finishedAt,omitempty"`
	// StartedSteady is StartedAt on the steady clock (see Clock): what the
	// probes' initial delay counts from. For an instance first seen in a
	// listing it is estimated from the recorded times, never after the event.
	StartedSteady int64 `json:"startedSteady,omitempty"`
	Init          bool  `json:"init,omitempty"`
	Adopted       bool  `json:"adopted,omitempty"`
	// Grace is the termination grace period (seconds) of the spec it was started from.
	Grace int64 `json:"grace,omitempty"`
	Stale bool  `json:"stale,omitempty"` // see Sandbox.Stale
	// ImageRef is the image the runtime resolved when it started the container.
	ImageRef string `json:"imageRef,omitempty"`

	// Probe results of this instance (ContainerProbed), each the last
	// thresholded result; nil: none crossed its threshold yet (for liveness
	// that means healthy, for startup not started, for readiness not ready).
	// Whether the container is started and ready also depends on which
	// probes its spec has: see Pod.ContainerStarted and Pod.ContainerReady.
	Liveness  *ProbeState `json:"liveness,omitempty"`
	Readiness *ProbeState `json:"readiness,omitempty"`
	Startup   *ProbeState `json:"startup,omitempty"`
	// KilledFor is why the planner stopped this instance when the view
	// shows it instead of the runtime's reason (ReasonLivenessProbe,
	// ReasonStartupProbe, ReasonFailedPostStartHook), set when the stop's
	// intent is recorded.
	KilledFor string `json:"killedFor,omitempty"`

	// Lifecycle hooks of this instance, from the spec it was started from.
	// PostStartPending: its postStart hook has yet to run (the container is
	// not started until it has); PostStartError: the hook failed, and the
	// planner stops the instance. HasPreStop: a preStop hook runs before it
	// is stopped; PreStopDone once it ran, taking PreStopSeconds of the grace.
	PostStartPending bool   `json:"postStartPending,omitempty"`
	PostStartError   string `json:"postStartError,omitempty"`
	HasPreStop       bool   `json:"hasPreStop,omitempty"`
	PreStopDone      bool   `json:"preStopDone,omitempty"`
	PreStopSeconds   int64  `json:"preStopSeconds,omitempty"`
}

// ProbeState is a probe's last thresholded result for one container instance.
type ProbeState struct {
	Success bool `json:"success"`
	// Output says why it failed (the command's output, the HTTP status…).
	Output      string `json:"output,omitempty"`
	Consecutive uint32 `json:"consecutive,omitempty"`
	At          int64  `json:"at"` // when it was recorded (unix ns)
}

// Probe returns the container's recorded result for kind (nil if none).
func (c *Container) Probe(kind pb.ProbeKind) *ProbeState {
	switch kind {
	case pb.ProbeLiveness:
		return c.Liveness
	case pb.ProbeReadiness:
		return c.Readiness
	case pb.ProbeStartup:
		return c.Startup
	}
	return nil
}

// Mirror is the mirror pod in the apiserver, as last observed.
type Mirror struct {
	UID          string `json:"uid"`
	ConfigMirror string `json:"configMirror,omitempty"`
	Deleting     bool   `json:"deleting,omitempty"`
	Phase        string `json:"phase,omitempty"`
	Since        int64  `json:"since"`
	// StatusHash is the last status published to this mirror (StatusHash of APIStatus).
	StatusHash string `json:"statusHash,omitempty"`
	// ObservedDigest is MirrorStatusDigest of the mirror's status as last
	// observed in the apiserver (or as published, until observed).
	ObservedDigest string `json:"observedDigest,omitempty"`
}

// Action is an intent and, once recorded, its outcome.
type Action struct {
	Seq       uint64    `json:"seq"`
	Action    pb.Action `json:"action"`
	Container string    `json:"container,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	At        int64     `json:"at"`
	Done      bool      `json:"done"`
	OK        bool      `json:"ok"`
	Error     string    `json:"error,omitempty"`
	ErrReason string    `json:"errReason,omitempty"`
}

// PendingIntent is an intent with no outcome yet.
type PendingIntent struct {
	Pod         string    `json:"pod"`
	Action      pb.Action `json:"action"`
	UID         string    `json:"uid,omitempty"`
	Container   string    `json:"container,omitempty"`
	Attempt     uint32    `json:"attempt,omitempty"`
	SandboxID   string    `json:"sandboxId,omitempty"`
	ContainerID string    `json:"containerId,omitempty"`
	Grace       int64     `json:"grace,omitempty"`
	Init        bool      `json:"init,omitempty"`
	At          int64     `json:"at"`
	Steady      int64     `json:"steady,omitempty"`     // At on the steady clock (see Clock)
	Generation  int       `json:"generation,omitempty"` // the pod's spec version when planned
	MirrorUID   string    `json:"mirrorUID,omitempty"`
	ConfigHash  string    `json:"configHash,omitempty"`
	StatusHash  string    `json:"statusHash,omitempty"`
	// StatusDigest: MirrorStatus's MirrorStatusDigest of what it publishes.
	StatusDigest string `json:"statusDigest,omitempty"`
	// RemovePodData: a RemoveSandbox that takes the pod's data with it.
	RemovePodData bool `json:"removePodData,omitempty"`
	// StartContainer: the spec it starts has a postStart / preStop hook.
	PostStart bool `json:"postStart,omitempty"`
	PreStop   bool `json:"preStop,omitempty"`
}

// New returns the state before any event.
func New() *State {
	return &State{
		Sources:   map[string]*Source{},
		Manifests: map[string]*Manifest{},
		Pods:      map[string]*Pod{},
		Pending:   map[uint64]*PendingIntent{},
		Leftovers: map[string]*Leftover{},
	}
}

type encodedState struct {
	Version int    `json:"version"`
	State   *State `json:"state"`
}

// Canonical encodes the state so that equal states give equal bytes
// (encoding/json writes struct fields in declaration order and map keys sorted).
func (s *State) Canonical() ([]byte, error) {
	b, err := json.Marshal(encodedState{Version: SchemaVersion, State: s})
	if err != nil {
		return nil, fmt.Errorf("encode state at seq %d: %w", s.Seq, err)
	}
	return b, nil
}

// Restore decodes a Canonical encoding. A snapshot of another schema version
// is refused, so callers fall back to a full fold.
func Restore(b []byte) (*State, error) {
	var enc encodedState
	if err := json.Unmarshal(b, &enc); err != nil {
		return nil, fmt.Errorf("decode state: %w", err)
	}
	if enc.Version != SchemaVersion {
		return nil, fmt.Errorf("decode state: schema version %d, want %d", enc.Version, SchemaVersion)
	}
	if enc.State == nil {
		return nil, fmt.Errorf("decode state: empty")
	}
	s := enc.State
	s.normalize()
	return s, nil
}

// normalize makes a decoded state safe to fold: a snapshot read from a
// damaged or hand-edited file may hold nulls where the folds expect values.
func (s *State) normalize() {
	if s.Sources == nil {
		s.Sources = map[string]*Source{}
	}
	if s.Manifests == nil {
		s.Manifests = map[string]*Manifest{}
	}
	if s.Pods == nil {
		s.Pods = map[string]*Pod{}
	}
	if s.Pending == nil {
		s.Pending = map[uint64]*PendingIntent{}
	}
	if s.Leftovers == nil {
		s.Leftovers = map[string]*Leftover{}
	}
	dropNil(s.Leftovers)
	dropNil(s.Sources)
	dropNil(s.Manifests)
	dropNil(s.Pending)
	dropNil(s.Pods)
	for k, p := range s.Pods {
		// The key is the identity; the fields must agree with it.
		p.Namespace, p.Name, _ = strings.Cut(k, "/")
		p.decoded = decodeSpec(p.Spec)
		dropNil(p.Backoff)
		dropNil(p.Failures)
		dropNil(p.Sandboxes)
		dropNil(p.Containers)
	}
}

// dropNil deletes the entries of m that decoded as null.
func dropNil[K comparable, V any](m map[K]*V) {
	for k, v := range m {
		if v == nil {
			delete(m, k)
		}
	}
}
