package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ledgerlet/ledgerlet/replay"
)

func newReplayStepCmd() *cobra.Command {
	var (
		db, output  string
		from, count uint64
	)
	c := &cobra.Command{
		Use:   "step --db FILE --from N [--count K]",
		Short: "Event by event from seq N, each with the change it made to the state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return usagef("--output: %q is not one of table, json", output)
			}
			if db == "" || from == 0 {
				return usagef("--db FILE and --from N are required")
			}
			l, err := openOffline(db)
			if err != nil {
				return err
			}
			defer l.Close()
			if last := l.log.LastSeq(); from > last {
				return usagef("--from %d is past the end of the log (%d)", from, last)
			}
			if first := l.log.FirstSeq(); first > 1 && from < first {
				return usagef("--from %d is before the retained log (it starts at %d)", from, first)
			}
			w := cmd.OutOrStdout()
			enc := json.NewEncoder(w)
			return replay.Steps(cmd.Context(), l.log, from, count, func(s replay.Step) error {
				if output == "json" {
					return enc.Encode(s)
				}
				fmt.Fprintf(w, "#%d %s %s %s  %s\n", s.Seq, s.Time.UTC().Format("2006-01-02T15:04:05.000Z"), s.Type, dash(s.Pod), s.Summary)
				if len(s.Changes) == 0 {
					fmt.Fprintln(w, "    (no change to the state)")
				}
				for _, ch := range s.Changes {
					scope := "node"
					if ch.Pod != "" {
						scope = ch.Pod
					}
					if ch.Field == "spec" {
						fmt.Fprintf(w, "    %s spec:\n", scope)
						for _, line := range strings.Split(ch.To, "\n") {
							fmt.Fprintf(w, "      %s\n", line)
						}
						continue
					}
					fmt.Fprintf(w, "    %s %s\n", scope, ch)
				}
				return nil
			})
		},
	}
	c.Flags().StringVar(&db, "db", "", "the log file (opened read-only)")
	c.Flags().Uint64Var(&from, "from", 0, "the first event to show")
	c.Flags().Uint64Var(&count, "count", 10, "how many events (0: to the end)")
	c.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return c
}
