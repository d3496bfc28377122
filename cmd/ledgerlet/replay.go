package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ledgerlet/ledgerlet/projector"
	"github.com/ledgerlet/ledgerlet/replay"
)

func newReplayCmd() *cobra.Command {
	var (
		db, at, output string
		seq            uint64
	)
	c := &cobra.Command{
		Use:   "replay --db FILE (--at RFC3339 | --seq N)",
		Short: "Offline: the state recorded in a log at a point in time",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return usagef("--output: %q is not one of table, json", output)
			}
			if db == "" {
				return usagef("--db FILE is required")
			}
			if (at == "") == (seq == 0) {
				return usagef("give exactly one of --at RFC3339 or --seq N")
			}
			var pt replay.Point
			if at != "" {
				t, err := time.Parse(time.RFC3339Nano, at)
				if err != nil {
					return usagef("--at %q: want an RFC3339 time", at)
				}
				pt.Time = t
			} else {
				pt.Seq = seq
			}
			l, err := openOffline(db)
			if err != nil {
				return err
			}
			defer l.Close()
			upTo, err := pt.Resolve(l.log)
			if err != nil {
				return usageError{err}
			}
			s, err := replay.StateAt(cmd.Context(), l.log, upTo)
			if err != nil {
				return err
			}
			now := time.Unix(0, s.Time)
			return printPods(cmd.OutOrStdout(), output, s.Views(), now)
		},
	}
	c.Flags().StringVar(&db, "db", "", "the log file (opened read-only)")
	c.Flags().StringVar(&at, "at", "", "the state after every event at or before this RFC3339 time")
	c.Flags().Uint64Var(&seq, "seq", 0, "the state after event N")
	c.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	c.AddCommand(newReplayDiffCmd(), newReplayVerifyCmd(), newReplayStepCmd())
	return c
}

func newReplayDiffCmd() *cobra.Command {
	var db, from, to, output string
	c := &cobra.Command{
		Use:   "diff --db FILE --from T|N --to T|N",
		Short: "What changed between two points of a log",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if db == "" || from == "" || to == "" {
				return usagef("--db, --from and --to are required")
			}
			pf, err := replay.ParsePoint(from)
			if err != nil {
				return usagef("--from: %v", err)
			}
			pt, err := replay.ParsePoint(to)
			if err != nil {
				return usagef("--to: %v", err)
			}
			l, err := openOffline(db)
			if err != nil {
				return err
			}
			defer l.Close()
			a, err := stateAtPoint(cmd, l, pf)
			if err != nil {
				return err
			}
			b, err := stateAtPoint(cmd, l, pt)
			if err != nil {
				return err
			}
			changes := replay.Diff(a, b)
			w := cmd.OutOrStdout()
			if output == "json" {
				if changes == nil {
					changes = []replay.Change{}
				}
				return json.NewEncoder(w).Encode(map[string]any{"fromSeq": a.Seq, "toSeq": b.Seq, "changes": changes})
			}
			fmt.Fprintf(w, "from seq %d to seq %d: %d changes\n", a.Seq, b.Seq, len(changes))
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			for _, ch := range changes {
				if ch.Field == "spec" {
					tw.Flush()
					fmt.Fprintf(w, "%s spec:\n%s\n", ch.Pod, ch.To)
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t->\t%s\n", dash(ch.Pod), ch.Field, ch.From, ch.To)
			}
			return tw.Flush()
		},
	}
	c.Flags().StringVar(&db, "db", "", "the log file (opened read-only)")
	c.Flags().StringVar(&from, "from", "", "a seq or an RFC3339 time")
	c.Flags().StringVar(&to, "to", "", "a seq or an RFC3339 time")
	c.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return c
}

func stateAtPoint(cmd *cobra.Command, l *offlineLedger, p replay.Point) (*projector.State, error) {
	upTo, err := p.Resolve(l.log)
	if err != nil {
		return nil, usageError{err}
	}
	return replay.StateAt(cmd.Context(), l.log, upTo)
}

func newReplayVerifyCmd() *cobra.Command {
	var db, output string
	c := &cobra.Command{
		Use:   "verify --db FILE",
		Short: "Re-derive every recorded state and decision; exit 1 on divergence",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if db == "" {
				return usagef("--db FILE is required")
			}
			l, err := openOffline(db)
			if err != nil {
				return err
			}
			defer l.Close()
			rep, err := replay.Verify(cmd.Context(), l.log)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if output == "json" {
				if rep.Divergences == nil {
					rep.Divergences = []string{}
				}
				if err := json.NewEncoder(w).Encode(rep); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(w, "%d events, %d snapshots, %d intents, %d outcomes checked\n", rep.Events, rep.Snapshots, rep.Intents, rep.Outcomes)
				for _, d := range rep.Divergences {
					fmt.Fprintln(w, "DIVERGENCE: "+d)
				}
			}
			if !rep.OK() {
				return checkFailed{fmt.Sprintf("replay verify: %d divergences", len(rep.Divergences))}
			}
			return nil
		},
	}
	c.Flags().StringVar(&db, "db", "", "the log file (opened read-only)")
	c.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return c
}
