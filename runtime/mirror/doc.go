// Package mirror is ledgerlet's apiserver side. It owns the node's presence in
// a kube-apiserver — registering the Node, renewing its Lease in
// kube-node-lease and reporting its status — and, over client-go, the two
// ends of the mirror-pod lane:
//
//   - the effector (Agent.Execute, a runtime.Effector) creates, deletes and
//     patches the status of mirror pods, as the kubelet makes them
//     (annotation kubernetes.io/config.mirror, a controller ownerReference to
//     the Node), so NodeRestriction admission accepts them;
//   - the observer (part of Agent.Run) watches this node's pods and appends
//     what changed about mirror pods — MirrorObserved, MirrorGone,
//     MirrorsSynced — plus ApiserverConnected/ApiserverDisconnected.
//
// It never decides. Which mirror to create, delete or update, and when, is the
// planner's: every mirror action arrives here as an Intent (in a runtime.Job)
// that is already in the log, and this package only carries it out and
// reports the outcome. Likewise the observer only appends facts; it does not
// act on them.
//
// Every request is one the Node authorizer and NodeRestriction admission allow
// for a node identity (system:node:<name>): the node's own Node and Lease,
// pods listed and watched with the field selector spec.nodeName=<name>, and
// mirror pods bound to the node.
package mirror
