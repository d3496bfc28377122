package agent

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ledgerlet/ledgerlet/eventlog"
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
	cut, err := r.log.RetentionCut(r.policy, now)
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
