package agent

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector"
	"github.com/ledgerlet/ledgerlet/replay"
)

// retention compacts the log hourly under its policy, writing a snapshot at
// the cut so everything after it stays replayable.
type retention struct {
	log    *eventlog.Log
	policy eventlog.Retention
	logger *slog.Logger
}

func (r *retention) Run(ctx context.Context) error {
	if r.policy.MaxAge == 0 && r.policy.MaxBytes == 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if err := r.once(ctx, time.Now()); err != nil {
			r.logger.Warn("retention", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (r *retention) once(ctx context.Context, now time.Time) error {
	policy := r.policy
	policy.AgeCut = func(maxAge time.Duration) (uint64, error) {
		return steadyAgeCut(ctx, r.log, maxAge, now.UnixNano(), eventlog.Boottime())
	}
	cut, err := r.log.RetentionCut(policy, now)
	if err != nil || cut <= r.log.FirstSeq() {
		return err
	}
	st, err := replay.StateAt(ctx, r.log, cut-1)
	if err != nil {
		return fmt.Errorf("state at cut %d: %w", cut, err)
	}
	b, err := st.Canonical()
	if err != nil {
		return err
	}
	if err := r.log.Compact(ctx, cut, eventlog.Snapshot{Seq: cut - 1, State: b}); err != nil {
		return fmt.Errorf("compact before %d: %w", cut, err)
	}
	r.logger.Info("log compacted", "first-seq", cut)
	return nil
}

// steadyAgeCut is the first seq younger than maxAge on the log's steady time
// line (projector.Clock): ages are durations since the event, measured with
// CLOCK_BOOTTIME within a boot, so a wall clock stepped forward (even by
// years) makes nothing look old, and one stepped back keeps nothing longer
// than its age. now and boottime are the clock read by this run, whose boot
// is that of the log's last run.
func steadyAgeCut(ctx context.Context, log *eventlog.Log, maxAge time.Duration, now, boottime int64) (uint64, error) {
	first, last := log.FirstSeq(), log.LastSeq()
	if last < first {
		return first, nil
	}
	// The clock as of the event before the first, from the snapshot there.
	st, err := replay.StateAt(ctx, log, first-1)
	if err != nil {
		return 0, fmt.Errorf("state at %d: %w", first-1, err)
	}
	clock, lastWall := st.Clock, st.Time
	started := st.Seq > 0 || clock.Steady != 0
	seqs := make([]uint64, 0, 1024)
	steady := make([]int64, 0, 1024)
	err = log.Read(ctx, first, last, func(e eventlog.Event) error {
		boot := clock.Boot
		if d, ok := e.Data.(*pb.AgentStarted); ok {
			boot = d.BootId
		}
		t := e.Time.UnixNano()
		s := t
		if started {
			s = clock.Next(lastWall, t, e.Boottime, boot)
		}
		started = true
		clock, lastWall = projector.Clock{Steady: s, Boottime: e.Boottime, Boot: boot}, t
		seqs, steady = append(seqs, e.Seq), append(steady, s)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("walk the log for ages: %w", err)
	}
	if len(seqs) == 0 {
		return first, nil
	}
	nowSteady := clock.Next(lastWall, now, boottime, clock.Boot)
	oldest := nowSteady - int64(maxAge)
	i, _ := slices.BinarySearch(steady, oldest)
	if i == len(seqs) {
		return last + 1, nil
	}
	return seqs[i], nil
}
