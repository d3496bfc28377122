package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/ledgerlet/ledgerlet/cmd/ledgerlet/internal/api"
	"github.com/ledgerlet/ledgerlet/eventlog"
	"github.com/ledgerlet/ledgerlet/projector"
	"github.com/ledgerlet/ledgerlet/replay"
)

// ledger is what the read commands need, whether from a running agent over
// its unix socket or from a log file opened read-only (--db).
type ledger interface {
	Pods(ctx context.Context) ([]projector.PodView, error)
	Events(ctx context.Context, f replay.Filter, follow bool, fn func(replay.Entry) error) error
	History(ctx context.Context, pod string, f replay.Filter) ([]replay.Entry, error)
	Close() error
}

// readFlags are shared by the read commands.
type readFlags struct {
	dataDir string
	db      string
	output  string
}

func (r *readFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&r.dataDir, "data-dir", "/var/lib/ledgerlet", "the agent's data directory (its socket is <data-dir>/ledgerlet.sock)")
	c.Flags().StringVar(&r.db, "db", "", "read this log file offline instead of asking the running agent (never modified)")
	c.Flags().StringVarP(&r.output, "output", "o", "table", "output format: table or json")
}

func (r *readFlags) check() error {
	if r.output != "table" && r.output != "json" {
		return usagef("--output: %q is not one of table, json", r.output)
	}
	return nil
}

func (r *readFlags) open() (ledger, error) {
	if r.db != "" {
		return openOffline(r.db)
	}
	c, err := api.Dial(filepath.Join(r.dataDir, "ledgerlet.sock"))
	if err != nil {
		return nil, usageError{err}
	}
	return agentLedger{c}, nil
}

// agentLedger is the running agent, its errors made usage errors where the
// command was asked wrongly (no agent; a bad request).
type agentLedger struct{ c *api.Client }

func (a agentLedger) Pods(ctx context.Context) ([]projector.PodView, error) {
	v, err := a.c.Pods(ctx)
	return v, asUsage(err)
}

func (a agentLedger) Events(ctx context.Context, f replay.Filter, follow bool, fn func(replay.Entry) error) error {
	return asUsage(a.c.Events(ctx, f, follow, fn))
}

func (a agentLedger) History(ctx context.Context, pod string, f replay.Filter) ([]replay.Entry, error) {
	v, err := a.c.History(ctx, pod, f)
	return v, asUsage(err)
}

func (a agentLedger) Close() error { return a.c.Close() }

func asUsage(err error) error {
	var bad api.BadRequest
	if errors.Is(err, api.ErrNoAgent) || errors.As(err, &bad) {
		return usageError{err}
	}
	return err
}

// openOffline opens a log file read-only.
func openOffline(path string) (*offlineLedger, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, usagef("--db %s: %v", path, errors.Unwrap(err))
	}
	l, err := eventlog.Open(path, eventlog.Options{ReadOnly: true, LockTimeout: time.Second})
	if err != nil {
		return nil, usageError{err}
	}
	return &offlineLedger{log: l}, nil
}

type offlineLedger struct{ log *eventlog.Log }

func (o *offlineLedger) Pods(ctx context.Context) ([]projector.PodView, error) {
	s, err := replay.StateAt(ctx, o.log, o.log.LastSeq())
	if err != nil {
		return nil, err
	}
	return s.Views(), nil
}

func (o *offlineLedger) Events(ctx context.Context, f replay.Filter, follow bool, fn func(replay.Entry) error) error {
	if follow {
		return usagef("--follow needs a running agent; it cannot follow a file opened with --db")
	}
	return replay.Events(ctx, o.log, f, func(e eventlog.Event) error {
		return fn(replay.Entry{JSONEvent: replay.ToJSON(e), Summary: replay.Summary(e)})
	})
}

func (o *offlineLedger) History(ctx context.Context, pod string, f replay.Filter) ([]replay.Entry, error) {
	return replay.History(ctx, o.log, pod, f)
}

func (o *offlineLedger) Close() error { return o.log.Close() }
