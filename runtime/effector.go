package runtime

import (
	"context"

	corev1 "k8s.io/api/core/v1"

	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

// Effector carries out the intents of one lane: the CRI driver for the
// runtime lane, runtime/mirror for the mirror lane. It decides nothing: every
// choice is already in the intent, where `replay verify` can check it.
type Effector interface {
	// Execute performs the intent's effect and returns its outcome (the loop
	// sets IntentSeq). It must return, not block forever, when ctx ends.
	Execute(ctx context.Context, job Job) *pb.Outcome
}

// Job is one planned intent with what carrying it out needs, copied from the
// state it was planned on (so the effector never reads the projection).
type Job struct {
	Pod    string // "namespace/name"
	Intent *pb.Intent
	// Spec is the desired pod when the intent's UID is the pod's current one
	// (a copy the effector may keep); nil for teardown of an old version.
	Spec *corev1.Pod
	// Status is what a MirrorStatus intent publishes, rendered by the
	// projector from the same state as the intent's status_hash.
	Status *corev1.PodStatus
}
