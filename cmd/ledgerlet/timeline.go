package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/ledgerlet/ledgerlet/replay"
)

func newTimelineCmd() *cobra.Command {
	var (
		rf           readFlags
		pod          string
		since, until string
		out          string
		text         bool
		width        int
	)
	c := &cobra.Command{
		Use:   "timeline [--pod NS/NAME] [--since T] [--until T] (-o FILE.html | --text)",
		Short: "What happened over a window: a swimlane per pod and container, as one HTML page or in the terminal",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (out == "") == !text {
				return usagef("give one of -o FILE.html (a page to open in a browser) or --text (the terminal view)")
			}
			f, err := parseFilter(pod, since, until, time.Now())
			if err != nil {
				return err
			}
			if width == 0 {
				width = 1200
				if text {
					width = terminalColumns() - 38
				}
			}
			if width < 10 || width > 20000 {
				return usagef("--width %d: want 10 to 20000", width)
			}
			l, al, err := openAudit(&rf)
			if err != nil {
				return err
			}
			defer l.Close()
			tl, err := al.Timeline(cmd.Context(), replay.TimelineOptions{Filter: f, Buckets: width})
			if err != nil {
				return err
			}
			if text {
				return tl.WriteText(cmd.OutOrStdout())
			}
			title := "ledgerlet timeline"
			if pod != "" {
				title += " — " + pod
			}
			var b bytes.Buffer
			if err := tl.WriteHTML(&b, title); err != nil {
				return err
			}
			if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
				return usagef("-o %s: %v", out, err)
			}
			abs, _ := filepath.Abs(out)
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d lanes, %s to %s (open it in a browser; it needs no network)\n", abs, len(tl.Lanes),
				tl.Since.UTC().Format(time.RFC3339), tl.Until.UTC().Format(time.RFC3339))
			return nil
		},
	}
	registerSource(c, &rf)
	c.Flags().StringVar(&pod, "pod", "", "only this pod's lanes (NAMESPACE/NAME); the node's lanes always show")
	registerWindow(c, &since, &until, nil)
	c.Flags().StringVarP(&out, "output", "o", "", "write the page to this file")
	c.Flags().BoolVar(&text, "text", false, "print the terminal view instead: one line per lane, one character per time bucket")
	c.Flags().IntVar(&width, "width", 0, "time buckets across: pixels of the page (1200) or columns of the terminal view (the terminal's width)")
	return c
}

// terminalColumns is $COLUMNS, or 140.
func terminalColumns() int {
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 60 {
		return n
	}
	return 140
}
