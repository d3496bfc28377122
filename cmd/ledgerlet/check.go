package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/ledgerlet/ledgerlet/eventlog"
	"github.com/ledgerlet/ledgerlet/projector"
)

func newCheckCmd() *cobra.Command {
	var db, output string
	c := &cobra.Command{
		Use:   "check --db FILE",
		Short: "Verify a log file (structure, seqs, snapshots, indexes) and say what is readable",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if db == "" {
				return usagef("--db FILE is required")
			}
			if output != "table" && output != "json" {
				return usagef("--output: %q is not one of table, json", output)
			}
			if _, err := os.Stat(db); err != nil {
				return usagef("--db %s: %v", db, err)
			}
			rep, err := eventlog.CheckWith(db, eventlog.CheckOptions{DecodeSnapshot: func(b []byte) error {
				_, err := projector.Restore(b)
				return err
			}})
			if err != nil {
				return usageError{err}
			}
			printCheck(cmd.OutOrStdout(), output, rep)
			if !rep.OK() {
				return checkFailed{fmt.Sprintf("%s: %d problem(s); events readable through seq %d", db, len(rep.Problems), rep.ReadableThrough)}
			}
			return nil
		},
	}
	c.Flags().StringVar(&db, "db", "", "the log file to check (opened read-only, never modified)")
	c.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return c
}

func printCheck(w io.Writer, output string, rep eventlog.Report) {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
		return
	}
	fmt.Fprintf(w, "%s: schema %d, seqs %d..%d (%d events), %d snapshots, readable through %d\n",
		rep.Path, rep.SchemaVersion, rep.FirstSeq, rep.LastSeq, rep.Events, len(rep.Snapshots), rep.ReadableThrough)
	for _, p := range rep.Problems {
		fmt.Fprintln(w, "problem: "+p)
	}
	if rep.OK() {
		fmt.Fprintln(w, "ok")
	}
}
