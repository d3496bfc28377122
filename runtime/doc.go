// Package runtime executes actions on a CRI container runtime (containerd) and reports what it
// observes. It decides nothing: which pods should run, when a container is restarted, how long
// to back off and what to do about an observation all belong to the caller.
//
// Each operation reads top to bottom in its own file, as in containerd's CRI server:
// client.go (connection), sandbox.go (pod sandboxes and their cgroup), image.go (pull
// policy), container.go (container lifecycle), env.go and volumes.go (what a container is
// given), observe.go (what the runtime reports back).
//
// Everything it creates is labelled and annotated as the kubelet does, so crictl and other
// kubelet-era tools read ledgerlet's pods naturally, and additionally labelled
// ledgerlet.io/managed=true so that listing never reports another agent's pods as ours.
//
// Exported types are plain Go values; CRI protobuf types stay inside the package so callers do
// not depend on the wire format.
package runtime
