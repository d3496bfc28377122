package main

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ledgerlet/ledgerlet/replay"
)

func newExplainCmd() *cobra.Command {
	var (
		rf readFlags
		at string
	)
	c := &cobra.Command{
		Use:   "explain NAMESPACE/NAME [--at T]",
		Short: "Why the pod is as it is (now, or at a time), from the ledger alone",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := rf.check(); err != nil {
				return err
			}
			pod := args[0]
			if !strings.Contains(pod, "/") {
				return usagef("pod %q: want NAMESPACE/NAME", pod)
			}
			when, err := parseInstant("--at", at, time.Now())
			if err != nil {
				return err
			}
			l, al, err := openAudit(&rf)
			if err != nil {
				return err
			}
			defer l.Close()
			x, err := al.Explain(cmd.Context(), replay.ExplainOptions{Pod: pod, At: when})
			if err != nil {
				return err
			}
			if rf.output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(x)
			}
			return x.WriteText(cmd.OutOrStdout())
		},
	}
	rf.register(c)
	c.Flags().StringVar(&at, "at", "", "explain the pod as it was then (RFC3339, or a duration ago); default: now")
	return c
}
