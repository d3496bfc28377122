package eventpb

// The string values that events carry, in one place. The wire keeps them as
// strings (a log written by an older ledgerlet must stay readable, and a new
// value must not make an older reader fail); the Go side names each one here
// with a type, so a value is never spelled twice. events.proto points here.

// Action is what an Intent asks for (Intent.action).
type Action string

// Runtime lane: one step of a pod's life on the container runtime.
const (
	ActionRunSandbox      Action = "RunSandbox"      // create and start the pod sandbox
	ActionStartContainer  Action = "StartContainer"  // ensure the image, create and start one container
	ActionStopContainer   Action = "StopContainer"   // SIGTERM, then SIGKILL after the grace period
	ActionRemoveContainer Action = "RemoveContainer" // delete an exited container
	ActionStopSandbox     Action = "StopSandbox"     // stop the sandbox (its containers are already stopped)
	ActionRemoveSandbox   Action = "RemoveSandbox"   // delete the sandbox; the pod's cgroup and emptyDirs when it was the last
	ActionCleanupPod      Action = "CleanupPod"      // remove a gone UID's cgroup and data left by a crash or a failed removal
	ActionRunPostStart    Action = "RunPostStart"    // run a started container's postStart hook
	ActionRunPreStop      Action = "RunPreStop"      // run a container's preStop hook before stopping it (its time comes out of the grace)
)

// Mirror lane: the pod's mirror in the kube-apiserver.
const (
	ActionMirrorCreate Action = "MirrorCreate" // create the mirror pod for the pod's current config hash
	ActionMirrorDelete Action = "MirrorDelete" // delete a mirror (UID precondition, grace 0)
	ActionMirrorStatus Action = "MirrorStatus" // patch the mirror's status subresource
)

// Lane is a sequence of actions that must not overlap for one pod. Lanes of
// one pod are independent: a slow apiserver never holds back a restart.
type Lane string

const (
	LaneRuntime Lane = "runtime"
	LaneMirror  Lane = "mirror"
)

// Lane of the action.
func (a Action) Lane() Lane {
	switch a {
	case ActionMirrorCreate, ActionMirrorDelete, ActionMirrorStatus:
		return LaneMirror
	}
	return LaneRuntime
}

// Actions lists every action, runtime lane first.
func Actions() []Action {
	return []Action{
		ActionRunSandbox, ActionStartContainer, ActionStopContainer, ActionRemoveContainer,
		ActionStopSandbox, ActionRemoveSandbox, ActionCleanupPod, ActionRunPostStart, ActionRunPreStop,
		ActionMirrorCreate, ActionMirrorDelete, ActionMirrorStatus,
	}
}

// Observed states of sandboxes (SandboxObserved.state) and containers
// (ContainerObserved.state).
const (
	StateReady    = "ready"
	StateNotReady = "notready"
	StateCreated  = "created"
	StateRunning  = "running"
	StateExited   = "exited"
	StateUnknown  = "unknown"
)

// ProbeKind is which probe of a container a ContainerProbed reports
// (ContainerProbed.probe), named as the kubelet's probe types.
type ProbeKind string

const (
	ProbeLiveness  ProbeKind = "liveness"  // failure: the container is stopped and restarted
	ProbeReadiness ProbeKind = "readiness" // the container is ready only after a success
	ProbeStartup   ProbeKind = "startup"   // gates liveness and readiness; failure restarts like liveness
)

// ProbeKinds lists every probe kind, in the order the kubelet checks them.
func ProbeKinds() []ProbeKind { return []ProbeKind{ProbeStartup, ProbeLiveness, ProbeReadiness} }

// ProbeResult is a probe's thresholded result (ContainerProbed.result).
type ProbeResult string

const (
	ProbeSuccess ProbeResult = "success"
	ProbeFailure ProbeResult = "failure"
)

// Manifest sources (Manifest*.source, Source*.source).
const (
	SourceFile = "file"
	SourceHTTP = "http"
)

// Outcome reasons the agent itself assigns (Outcome.reason). Failures of a
// CRI step carry the kubelet's reasons (ErrImagePull, CreateContainerError, …).
const (
	// ReasonReconciled: the agent stopped before the intent's outcome was
	// recorded; the next run re-listed the runtime instead.
	ReasonReconciled = "Reconciled"
	// ReasonRuntimeError: a CRI call failed for a reason CRI does not name.
	ReasonRuntimeError = "RuntimeError"
	// ReasonApiserverError: an apiserver call failed.
	ReasonApiserverError = "ApiserverError"
	// ReasonNameReserved: the runtime holds the name of the sandbox or
	// container to create: an earlier run's create of it is still under
	// way (or finished unseen). Retried soon: the relist will show it.
	ReasonNameReserved = "NameReserved"
)

// Outcome reasons of the mirror lane (runtime/mirror), besides
// ReasonApiserverError for failures the apiserver does not name.
const (
	// ReasonApiserverNotConnected: no connection to the apiserver was made
	// in this run yet (the Node's UID, which a mirror must name, is unknown).
	ReasonApiserverNotConnected = "ApiserverNotConnected"
	// ReasonMirrorGone: the mirror a status patch was for is not there
	// (deleted, or another object holds its name).
	ReasonMirrorGone = "MirrorGone"
	// ReasonMirrorExists: a create found another pod under the mirror's
	// name (Outcome.mirror_uid names it when it is a mirror of this node).
	ReasonMirrorExists = "MirrorExists"
	// ReasonForbidden: the apiserver refused the node (authorization or
	// NodeRestriction admission).
	ReasonForbidden = "Forbidden"
	// ReasonInvalid: the apiserver rejected the object or patch as invalid.
	ReasonInvalid = "Invalid"
)
