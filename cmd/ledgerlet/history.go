package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func newHistoryCmd() *cobra.Command {
	var (
		rf           readFlags
		since, until string
		types        []string
	)
	c := &cobra.Command{
		Use:   "history NAMESPACE/NAME",
		Short: "One pod's timeline, manifest diffs included",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := rf.check(); err != nil {
				return err
			}
			pod := args[0]
			if !strings.Contains(pod, "/") {
				return usagef("pod %q: want NAMESPACE/NAME", pod)
			}
			f, err := parseFilter("", since, until, time.Now())
			if err != nil {
				return err
			}
			if f.Types, err = parseTypes(types); err != nil {
				return err
			}
			l, err := rf.open()
			if err != nil {
				return err
			}
			defer l.Close()
			entries, err := l.History(cmd.Context(), pod, f)
			if err != nil {
				return err
			}
			if len(entries) == 0 && f.Since.IsZero() && f.Until.IsZero() && len(f.Types) == 0 {
				return usagef("the log holds no events for pod %s", pod)
			}
			w := cmd.OutOrStdout()
			if rf.output == "json" {
				enc := json.NewEncoder(w)
				for _, e := range entries {
					if err := enc.Encode(e); err != nil {
						return err
					}
				}
				return nil
			}
			for _, e := range entries {
				fmt.Fprintf(w, "%s  #%-6d %-18s %s\n", e.Time.Local().Format("2006-01-02T15:04:05.000Z07:00"), e.Seq, e.Type, e.Summary)
				if e.Diff != "" {
					for _, l := range strings.Split(e.Diff, "\n") {
						fmt.Fprintf(w, "      %s\n", l)
					}
				}
			}
			return nil
		},
	}
	rf.register(c)
	registerWindow(c, &since, &until, &types)
	return c
}
