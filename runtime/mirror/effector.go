package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"

	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/runtime"
)

var _ runtime.Effector = (*Agent)(nil)

// Execute carries out one mirror-lane intent against the apiserver and
// returns its outcome (IntentSeq is the caller's). It decides nothing: the
// intent names the mirror, its UID and config hash. It never panics on a
// malformed job; that fails the outcome.
func (a *Agent) Execute(ctx context.Context, job runtime.Job) *pb.Outcome {
	out, err := a.execute(ctx, job)
	if err != nil {
		out.Ok = false
		out.Error = oneLine(err.Error())
		if out.Reason == "" {
			out.Reason = apiReason(err)
		}
		return out
	}
	out.Ok = true
	return out
}

func (a *Agent) execute(ctx context.Context, job runtime.Job) (*pb.Outcome, error) {
	out := &pb.Outcome{}
	in := job.Intent
	if in == nil {
		return out, fmt.Errorf("mirror action for %s: no intent", job.Pod)
	}
	conn := a.conn.Load()
	if conn == nil {
		out.Reason = pb.ReasonApiserverNotConnected
		return out, fmt.Errorf("%s %s: not connected to the apiserver yet", in.Action, job.Pod)
	}
	switch pb.Action(in.Action) {
	case pb.ActionMirrorCreate:
		return a.create(ctx, conn, job, out)
	case pb.ActionMirrorDelete:
		return a.delete(ctx, job, out)
	case pb.ActionMirrorStatus:
		return a.patchStatus(ctx, job, out)
	}
	return out, fmt.Errorf("%s %s: not a mirror action", in.Action, job.Pod)
}

// create makes the mirror as the kubelet's CreateMirrorPod does: the static
// pod's metadata and spec, annotation kubernetes.io/config.mirror holding its
// config hash, and a controller reference to this Node (NodeRestriction
// requires exactly that owner, with this Node's current UID).
func (a *Agent) create(ctx context.Context, conn *connection, job runtime.Job, out *pb.Outcome) (*pb.Outcome, error) {
	hash := job.Intent.ConfigHash
	if job.Spec == nil {
		return out, fmt.Errorf("create mirror %s: no spec", job.Pod)
	}
	if hash == "" {
		return out, fmt.Errorf("create mirror %s: no config hash", job.Pod)
	}
	pod := mirrorPod(job.Spec, hash, a.cfg.NodeName, conn.nodeUID)
	created, err := a.client.Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err == nil {
		out.MirrorUid = string(created.UID)
		return out, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return out, fmt.Errorf("create mirror %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	// Something holds the name. A node may only read pods bound to it, and
	// may list them by spec.nodeName, so it looks there.
	existing, err := a.findPod(ctx, pod.Namespace, pod.Name)
	if err != nil {
		return out, fmt.Errorf("create mirror %s/%s: exists, and reading it failed: %w", pod.Namespace, pod.Name, err)
	}
	out.Reason = pb.ReasonMirrorExists
	if existing == nil {
		return out, fmt.Errorf("create mirror %s/%s: a pod of that name exists that is not bound to node %s", pod.Namespace, pod.Name, a.cfg.NodeName)
	}
	out.MirrorUid = string(existing.UID)
	got, isMirror := existing.Annotations[annotationConfigMirror]
	switch {
	case isMirror && got == hash:
		out.Reason = ""
		return out, nil
	case isMirror:
		return out, fmt.Errorf("create mirror %s/%s: a mirror of config %s exists (uid %s)", pod.Namespace, pod.Name, got, existing.UID)
	}
	return out, fmt.Errorf("create mirror %s/%s: a pod that is not a mirror exists (uid %s)", pod.Namespace, pod.Name, existing.UID)
}

// mirrorPod is the mirror of spec for config hash, owned by node nodeUID.
func mirrorPod(spec *corev1.Pod, hash, node string, nodeUID types.UID) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: spec.Name, Namespace: spec.Namespace,
			Labels:      copyMap(spec.Labels),
			Annotations: copyMap(spec.Annotations),
		},
		Spec: *spec.Spec.DeepCopy(),
	}
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[annotationConfigMirror] = hash
	if pod.Spec.NodeName == "" {
		pod.Spec.NodeName = node
	}
	controller := true
	pod.OwnerReferences = []metav1.OwnerReference{{
		APIVersion: corev1.SchemeGroupVersion.String(), Kind: "Node", Name: node, UID: nodeUID, Controller: &controller,
	}}
	return pod
}

// findPod returns namespace/name if it is bound to this node, nil if no such
// pod is (the Node authorizer allows a node to list pods by spec.nodeName).
func (a *Agent) findPod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	sel := fields.AndSelectors(
		fields.OneTermEqualSelector("metadata.name", name),
		fields.OneTermEqualSelector("spec.nodeName", a.cfg.NodeName),
	)
	list, err := a.client.Pods(namespace).List(ctx, metav1.ListOptions{FieldSelector: sel.String()})
	if err != nil {
		return nil, err
	}
	for i := range list.Items {
		if p := &list.Items[i]; p.Name == name && p.Spec.NodeName == a.cfg.NodeName {
			return p, nil
		}
	}
	return nil, nil
}

// delete removes the mirror the intent names, as the kubelet's
// DeleteMirrorPod does: only that UID (a precondition), no grace period. A
// mirror already gone, or another object under the name, is done.
func (a *Agent) delete(ctx context.Context, job runtime.Job, out *pb.Outcome) (*pb.Outcome, error) {
	uid := job.Intent.MirrorUid
	namespace, name, ok := splitKey(job.Pod)
	if !ok {
		return out, fmt.Errorf("delete mirror %q: not a namespace/name pod key", job.Pod)
	}
	if uid == "" {
		// Without the UID the delete could hit a pod that is not the mirror.
		return out, fmt.Errorf("delete mirror %s: no mirror uid", job.Pod)
	}
	out.MirrorUid = uid
	grace := int64(0)
	muid := types.UID(uid)
	err := a.client.Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{
		GracePeriodSeconds: &grace, Preconditions: &metav1.Preconditions{UID: &muid},
	})
	if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return out, nil
	}
	return out, fmt.Errorf("delete mirror %s (uid %s): %w", job.Pod, uid, err)
}

// patchStatus publishes job.Status on the mirror the intent names. The patch
// carries metadata.uid, as the kubelet's status manager does, so it applies
// only to that mirror; it is a merge patch of the whole status, with the
// node's fields the status leaves out set to null, so the mirror ends up
// with exactly this status.
func (a *Agent) patchStatus(ctx context.Context, job runtime.Job, out *pb.Outcome) (*pb.Outcome, error) {
	uid := job.Intent.MirrorUid
	namespace, name, ok := splitKey(job.Pod)
	switch {
	case !ok:
		return out, fmt.Errorf("mirror status %q: not a namespace/name pod key", job.Pod)
	case uid == "":
		return out, fmt.Errorf("mirror status %s: no mirror uid", job.Pod)
	case job.Status == nil:
		return out, fmt.Errorf("mirror status %s: no status", job.Pod)
	}
	out.MirrorUid = uid
	patch, err := statusPatch(uid, job.Status)
	if err != nil {
		return out, fmt.Errorf("mirror status %s: %w", job.Pod, err)
	}
	_, err = a.client.Pods(namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	switch {
	case err == nil:
		return out, nil
	case apierrors.IsNotFound(err), uidMismatch(err):
		out.Reason = pb.ReasonMirrorGone
		return out, fmt.Errorf("mirror status %s (uid %s): the mirror is gone: %w", job.Pod, uid, err)
	}
	return out, fmt.Errorf("mirror status %s (uid %s): %w", job.Pod, uid, err)
}

func statusPatch(uid string, st *corev1.PodStatus) ([]byte, error) {
	// The status fields the node owns: a status without them clears them on
	// the mirror. qosClass is not among them (the apiserver sets it and it is
	// immutable), nor are fields other components own.
	cleared := []string{
		"conditions", "message", "reason", "hostIP", "hostIPs", "podIP", "podIPs", "startTime",
		"initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses", "observedGeneration",
	}
	raw, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encode status: %w", err)
	}
	var status map[string]any
	if err := json.Unmarshal(raw, &status); err != nil {
		return nil, fmt.Errorf("encode status: %w", err)
	}
	for _, f := range cleared {
		if _, ok := status[f]; !ok {
			status[f] = nil
		}
	}
	b, err := json.Marshal(map[string]any{"metadata": map[string]any{"uid": uid}, "status": status})
	if err != nil {
		return nil, fmt.Errorf("encode status patch: %w", err)
	}
	return b, nil
}

// uidMismatch tells whether a patch carrying metadata.uid found another
// object under the name. The apiserver says so as an invalid (immutable)
// metadata.uid (422), or, from a precondition check, as a conflict (409).
func uidMismatch(err error) bool {
	if apierrors.IsConflict(err) {
		return true
	}
	if !apierrors.IsInvalid(err) {
		return false
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Details == nil {
		return false
	}
	for _, c := range status.Status().Details.Causes {
		if c.Field == "metadata.uid" {
			return true
		}
	}
	return false
}

// apiReason names an apiserver failure for Outcome.reason.
func apiReason(err error) string {
	switch {
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
		return pb.ReasonForbidden
	case apierrors.IsInvalid(err):
		return pb.ReasonInvalid
	}
	return pb.ReasonApiserverError
}

func splitKey(key string) (namespace, name string, ok bool) {
	namespace, name, ok = strings.Cut(key, "/")
	return namespace, name, ok && namespace != "" && name != ""
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
