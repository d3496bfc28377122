package replay

import (
	"bytes"
	"context"
	"fmt"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector"
)

// SnapshotLister is what Verify needs beyond a Reader to check every snapshot.
type SnapshotLister interface {
	Snapshots() ([]uint64, error)
}

// Report is the result of Verify.
type Report struct {
	Events      uint64   `json:"events"`
	Snapshots   int      `json:"snapshotsChecked"`
	Intents     int      `json:"intents"`
	Decisions   int      `json:"decisionsReplanned"`
	Outcomes    int      `json:"outcomes"`
	Divergences []string `json:"divergences"`
}

// OK is true when nothing diverged.
func (r Report) OK() bool { return len(r.Divergences) == 0 }

// Verify re-derives the log: it folds every event twice and compares the
// states byte for byte, checks that every stored snapshot equals the fold of
// the events up to it, that every outcome answers an earlier intent, and that
// every intent is what the planner decides when re-run on the state and at
// the time it was planned from.
func Verify(ctx context.Context, r Reader) (Report, error) {
	var rep Report
	first := r.FirstSeq()
	// Pass 1: where were decisions made?
	planAt := map[uint64]map[int64]bool{}
	if err := r.Read(ctx, first, 0, func(e eventlog.Event) error {
		if in, ok := e.Data.(*pb.Intent); ok && in.PlanSeq > 0 {
			if planAt[in.PlanSeq] == nil {
				planAt[in.PlanSeq] = map[int64]bool{}
			}
			planAt[in.PlanSeq][planTime(in)] = true
		}
		return nil
	}); err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	replanned := map[string]bool{} // decisionKey(plan seq, time, pod, intent)
	replan := func(s *projector.State) {
		for t := range planAt[s.Seq] {
			for _, d := range s.Plan(t).Decisions {
				replanned[decisionKey(s.Seq, t, d.Pod, d.Intent)] = true
			}
		}
	}
	snapSeqs := map[uint64]bool{}
	if sl, ok := r.(SnapshotLister); ok {
		seqs, err := sl.Snapshots()
		if err != nil {
			return rep, fmt.Errorf("list snapshots: %w", err)
		}
		for _, s := range seqs {
			snapSeqs[s] = true
		}
	}
	// A compacted log starts from the snapshot at the cut.
	a, b := projector.New(), projector.New()
	if first > 1 {
		// Only the snapshot at exactly first-1 will do: an older one is
		// followed by events that are gone.
		snap, ok, err := r.LatestSnapshot(first - 1)
		if err != nil {
			return rep, fmt.Errorf("verify: read snapshot at %d: %w", first-1, err)
		}
		if !ok || snap.Seq != first-1 {
			return rep, fmt.Errorf("verify: log starts at seq %d but holds no snapshot at %d", first, first-1)
		}
		if a, err = projector.Restore(snap.State); err != nil {
			return rep, fmt.Errorf("verify: snapshot at %d: %w", first-1, err)
		}
		b, _ = projector.Restore(snap.State)
	}
	intents := map[uint64]bool{}
	if first > 1 {
		replan(a)
	}
	err := r.Read(ctx, first, 0, func(e eventlog.Event) error {
		rep.Events++
		switch d := e.Data.(type) {
		case *pb.Intent:
			rep.Intents++
			intents[e.Seq] = true
			if d.PlanSeq >= first || (first > 1 && d.PlanSeq == first-1) {
				rep.Decisions++
				if !replanned[decisionKey(d.PlanSeq, planTime(d), e.Pod, d)] {
					rep.Divergences = append(rep.Divergences, fmt.Sprintf("seq %d: intent %s %s for %s is not what the planner decides at seq %d", e.Seq, d.Action, d.Container, e.Pod, d.PlanSeq))
				}
			}
		case *pb.Outcome:
			rep.Outcomes++
			if !intents[d.IntentSeq] && d.IntentSeq >= first {
				rep.Divergences = append(rep.Divergences, fmt.Sprintf("seq %d: outcome for #%d, which is not an earlier intent", e.Seq, d.IntentSeq))
			}
			if d.Reason == pb.ReasonReconciled && a.Agent.StartSeq > 0 {
				// Settling an earlier run's intent is a decision too: the
				// planner must make it on the state just before.
				rep.Decisions++
				if !plansReconcile(a, a.SteadyAt(e.Time.UnixNano(), e.Boottime), d.IntentSeq) {
					rep.Divergences = append(rep.Divergences, fmt.Sprintf("seq %d: intent #%d settled as %s, which the planner does not decide at seq %d", e.Seq, d.IntentSeq, d.Reason, e.Seq-1))
				}
			}
		}
		a.Apply(e)
		b.Apply(e)
		replan(a)
		if snapSeqs[e.Seq] {
			rep.Snapshots++
			snap, ok, err := r.LatestSnapshot(e.Seq)
			if err != nil {
				return err
			}
			want, _ := a.Canonical()
			if ok && snap.Seq == e.Seq && !bytes.Equal(snap.State, want) {
				rep.Divergences = append(rep.Divergences, fmt.Sprintf("seq %d: stored snapshot differs from the fold of the log", e.Seq))
			}
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	ca, _ := a.Canonical()
	cb, _ := b.Canonical()
	if !bytes.Equal(ca, cb) {
		rep.Divergences = append(rep.Divergences, "two folds of the same events differ (non-deterministic projection)")
	}
	return rep, nil
}

// decisionKey identifies a decision by everything the planner chose; the
// plan stamp fields are excluded (the planner does not set them).
func decisionKey(seq uint64, t int64, pod string, in *pb.Intent) string {
	return fmt.Sprintf("%d|%d|%s|%s|%s|%s|%d|%s|%s|%d|%s|%s", seq, t, pod, in.Action, in.Uid, in.Container, in.Attempt,
		in.SandboxId, in.ContainerId, in.GracePeriodSeconds, in.Image, in.Reason)
}

// planTime is the steady time an intent was planned at; logs written before
// it was recorded planned at the wall time, which their steady time equals
// (their times never went back).
func planTime(in *pb.Intent) int64 {
	if in.PlanSteadyNano != 0 {
		return in.PlanSteadyNano
	}
	return in.PlanTimeUnixNano
}

func plansReconcile(s *projector.State, now int64, intentSeq uint64) bool {
	for _, r := range s.Plan(now).Reconcile {
		if r.IntentSeq == intentSeq {
			return true
		}
	}
	return false
}
