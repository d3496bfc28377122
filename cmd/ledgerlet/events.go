package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ledgerlet/ledgerlet/replay"
)

func newEventsCmd() *cobra.Command {
	var (
		rf           readFlags
		pod          string
		since, until string
		types        []string
		follow       bool
	)
	c := &cobra.Command{
		Use:   "events",
		Short: "The log: every manifest change, observation and action",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := rf.check(); err != nil {
				return err
			}
			f, err := parseFilter(pod, since, until, time.Now())
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
			w := cmd.OutOrStdout()
			var tw *tabwriter.Writer
			if rf.output == "table" {
				tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "SEQ\tTIME\tTYPE\tPOD\tSUMMARY")
				if follow {
					// Following never ends: show each line as it comes.
					tw = nil
				}
			}
			err = l.Events(cmd.Context(), f, follow, func(e replay.Entry) error {
				return printEvent(w, tw, rf.output, e)
			})
			if tw != nil {
				tw.Flush()
			}
			if follow && cmd.Context().Err() != nil {
				return nil
			}
			return err
		},
	}
	rf.register(c)
	c.Flags().StringVar(&pod, "pod", "", "only events of this pod (NAMESPACE/NAME)")
	registerWindow(c, &since, &until, &types)
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events as they are appended")
	return c
}

func printEvent(w io.Writer, tw *tabwriter.Writer, output string, e replay.Entry) error {
	if output == "json" {
		b, err := json.Marshal(e.JSONEvent)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	line := fmt.Sprintf("%d\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Local().Format("2006-01-02T15:04:05.000Z07:00"), e.Type, dash(e.Pod), e.Summary)
	if tw != nil {
		_, err := fmt.Fprint(tw, line)
		return err
	}
	_, err := fmt.Fprint(w, strings.ReplaceAll(line, "\t", "  "))
	return err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func parseFilter(pod, since, until string, now time.Time) (replay.Filter, error) {
	f := replay.Filter{Pod: pod}
	if pod != "" && !strings.Contains(pod, "/") {
		return f, usagef("--pod %q: want NAMESPACE/NAME", pod)
	}
	var err error
	if f.Since, err = parseInstant("--since", since, now); err != nil {
		return f, err
	}
	if f.Until, err = parseInstant("--until", until, now); err != nil {
		return f, err
	}
	return f, nil
}

func parseInstant(flag, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usagef("%s %q: want an RFC3339 time (2026-11-22T03:12:00Z) or a duration ago (90m)", flag, s)
}
