package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/ledgerlet/ledgerlet/replay"
)

func newExportCmd() *cobra.Command {
	var (
		rf               readFlags
		follow           bool
		file, cursorFile string
		otlpEndpoint     string
	)
	c := &cobra.Command{
		Use:   "export [--follow] [--file F] [--cursor-file F] [--otlp-endpoint URL]",
		Short: "The ledger as JSON lines (stdout or a file) or OTLP logs, resumable from a durable cursor",
		Long: `Writes every event as one JSON line, the shape of "events -o json"
({"seq","time","type","pod","data"}), to stdout or appended to --file, and/or
ships the same records as OpenTelemetry logs to --otlp-endpoint.

With --cursor-file, the last seq written is stored there (atomically replaced,
fsynced) only after the lines it covers are flushed and fsynced, or
acknowledged by the collector; a restart resumes after it, so every event is
delivered at least once. If retention dropped events the cursor had not
reached, a line {"type":"Gap","from":N,"to":M,…} says so (and a warning goes
to stderr); they are never skipped silently.

--follow keeps exporting as events are appended; it reads from the running
agent (--data-dir). --db exports a log file offline, up to its end.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if follow && rf.db != "" {
				return usagef("--follow needs the running agent (--data-dir); a file opened with --db is exported up to its end")
			}
			var cur *replay.Cursor
			var from uint64
			if cursorFile != "" {
				cur = &replay.Cursor{Path: cursorFile}
				seq, ok, err := cur.Load()
				if err != nil {
					return usageError{err}
				}
				if ok {
					from = seq + 1
				}
			}
			var sinks []replay.ExportSink
			defer func() {
				for _, s := range sinks {
					s.Close()
				}
			}()
			switch {
			case file != "":
				s, err := replay.OpenLineFile(file)
				if err != nil {
					return usageError{err}
				}
				sinks = append(sinks, s)
			case otlpEndpoint == "":
				sinks = append(sinks, replay.NewLineSink(cmd.OutOrStdout()))
			}
			if otlpEndpoint != "" {
				s, err := replay.NewOTLPSink(ctx, otlpEndpoint, slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)))
				if err != nil {
					return usageError{err}
				}
				sinks = append(sinks, s)
			}
			x := &replay.Exporter{Sinks: sinks, Cursor: cur, OnGap: func(g replay.Gap) {
				fmt.Fprintf(cmd.ErrOrStderr(), "ledgerlet: warning: %s (cursor %s)\n", g.Reason, cursorFile)
			}}
			l, err := rf.open()
			if err != nil {
				return err
			}
			defer l.Close()
			switch src := l.(type) {
			case *offlineLedger:
				err = replay.ExportLog(ctx, src.log, from, time.Now(), x.Emit(ctx))
			case agentLedger:
				err = asUsage(src.c.Export(ctx, from, follow, x.Emit(ctx)))
			default:
				err = fmt.Errorf("internal: cannot export from %T", l)
			}
			stopped := follow && errors.Is(err, context.Canceled) && ctx.Err() != nil
			if err != nil && !stopped {
				return err
			}
			// What was written before a stop is committed, so the cursor
			// covers it; a crash leaves it to be written again.
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return x.Commit(cctx)
		},
	}
	registerSource(c, &rf)
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep exporting new events as they are appended (needs the running agent)")
	c.Flags().StringVar(&file, "file", "", "append the lines to this file (fsynced before the cursor moves) instead of stdout")
	c.Flags().StringVar(&cursorFile, "cursor-file", "", "resume after the seq stored here, and store the last seq written")
	c.Flags().StringVar(&otlpEndpoint, "otlp-endpoint", "", "ship the records as OTLP logs to this http(s) URL (path /v1/logs unless given); with --file, to both")
	return c
}
