// Package runtime is the effect side of ledgerlet: it carries out planned
// actions and reports what it observes. It decides nothing: which pods
// should run, when a container is restarted, how long to back off, which
// data to delete and how to settle an intent a crash left without an outcome
// all belong to the projector's planner, and arrive here inside an Intent.
//
// The loop (loop.go) plans on the projected state, appends each decision as
// an Intent — durably, before any effect — hands it to the Effector of its
// lane (effector.go), and appends the Outcome. The CRI driver is the runtime
// lane's effector; runtime/mirror is the mirror lane's (the apiserver side).
//
// Each CRI operation reads top to bottom in its own file, as in containerd's
// CRI server: client.go (connection), sandbox.go (pod sandboxes), cgroup.go
// (the pod's cgroup parent), image.go (pull policy), container.go (container
// lifecycle), env.go and volumes.go (what a container is given), execute.go
// (an intent to CRI calls), observe.go (CRI list and status calls), relist.go
// (the Observer actor: relist, record only changes, adopt on start, and read
// an object as soon as the runtime says it changed), changes.go (the
// runtime's change streams: CRI container events, containerd's events), exec.go
// (ExecSync), probe.go (one probe attempt: exec, httpGet, tcpSocket, grpc),
// prober.go (the Prober actor: a worker per container probe, appending
// result transitions only), hooks.go (postStart and preStop), downward.go
// and tmpfs.go (downward API and Memory emptyDir volumes), security.go
// (security profiles, runAsNonRoot, fsGroup), resources.go (OOM score
// by QoS) and logs.go (reopening a rotated container log; removing a
// removed container's log). runtime/containerlogs owns the log files
// themselves: their rotation (the Rotator actor), removal, and reading.
//
// Everything it creates is labelled and annotated as the kubelet does, so
// crictl and other kubelet-era tools read ledgerlet's pods naturally, and
// additionally labelled ledgerlet.io/managed=<node name>, so listing never
// reports another agent's pods (or another test's) as ours.
//
// Exported types are plain Go values; CRI protobuf types stay inside the
// package so callers do not depend on the wire format.
package runtime
