package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ledgerlet/ledgerlet/replay"
)

// auditLedger is what timeline and explain read, from the running agent or
// a log file; both answer from the ledger alone.
type auditLedger interface {
	Timeline(ctx context.Context, opt replay.TimelineOptions) (*replay.Timeline, error)
	Explain(ctx context.Context, opt replay.ExplainOptions) (*replay.Explanation, error)
}

func (a agentLedger) Timeline(ctx context.Context, opt replay.TimelineOptions) (*replay.Timeline, error) {
	tl, err := a.c.Timeline(ctx, opt)
	return tl, asUsage(err)
}

func (a agentLedger) Explain(ctx context.Context, opt replay.ExplainOptions) (*replay.Explanation, error) {
	x, err := a.c.Explain(ctx, opt)
	return x, asUsage(err)
}

func (o *offlineLedger) Timeline(ctx context.Context, opt replay.TimelineOptions) (*replay.Timeline, error) {
	return replay.BuildTimeline(ctx, o.log, opt)
}

func (o *offlineLedger) Explain(ctx context.Context, opt replay.ExplainOptions) (*replay.Explanation, error) {
	x, err := replay.Explain(ctx, o.log, opt)
	if errors.Is(err, replay.ErrUnknownPod) {
		return nil, usageError{err}
	}
	return x, err
}

// sourceFlags name where a read comes from, for commands whose -o is not
// a format.
func registerSource(c *cobra.Command, rf *readFlags) {
	c.Flags().StringVar(&rf.dataDir, "data-dir", "/var/lib/ledgerlet", "the agent's data directory (its socket is <data-dir>/ledgerlet.sock)")
	c.Flags().StringVar(&rf.db, "db", "", "read this log file offline instead of asking the running agent (never modified)")
}

func openAudit(rf *readFlags) (ledger, auditLedger, error) {
	l, err := rf.open()
	if err != nil {
		return nil, nil, err
	}
	al, ok := l.(auditLedger)
	if !ok {
		l.Close()
		return nil, nil, fmt.Errorf("internal: %T reads no timeline", l)
	}
	return l, al, nil
}
