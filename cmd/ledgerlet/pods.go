package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ledgerlet/ledgerlet/cmd/ledgerlet/internal/api"
	"github.com/ledgerlet/ledgerlet/projector"
)

func newPodsCmd() *cobra.Command {
	var rf readFlags
	c := &cobra.Command{
		Use:   "pods",
		Short: "What runs now: desired vs observed, per container",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := rf.check(); err != nil {
				return err
			}
			l, err := rf.open()
			if err != nil {
				return err
			}
			defer l.Close()
			pods, err := l.Pods(cmd.Context())
			if err != nil {
				return err
			}
			return printPods(cmd.OutOrStdout(), rf.output, pods, time.Now())
		},
	}
	rf.register(c)
	return c
}

func printPods(w io.Writer, output string, pods []projector.PodView, now time.Time) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(api.PodsResponse{Pods: pods})
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	mirrors := false
	for _, p := range pods {
		mirrors = mirrors || p.Mirror != nil
	}
	header := "NAMESPACE	NAME	READY	STATUS	RESTARTS	AGE	IP	QOS	SOURCE"
	if mirrors {
		header += "	MIRROR"
	}
	fmt.Fprintln(tw, header)
	for _, p := range pods {
		ip := p.IP
		if ip == "" {
			ip = "<none>"
		}
		qos := p.QOSClass
		if qos == "" {
			qos = "<none>"
		}
		fmt.Fprintf(tw, "%s	%s	%s	%s	%d	%s	%s	%s	%s", p.Namespace, p.Name, p.Ready, p.Status, p.Restarts,
			age(now, p.CreatedAt), ip, qos, strings.TrimSpace(p.Source+" "+p.Path))
		if mirrors {
			fmt.Fprintf(tw, "	%s", mirrorColumn(p.Mirror))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// age renders a duration like kubectl does: 45s, 12m, 3h, 2d.
func age(now time.Time, since int64) string {
	if since == 0 {
		return "<unknown>"
	}
	d := now.Sub(time.Unix(0, since))
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

// mirrorColumn: the mirror's UID and whether it is in sync, or why not.
func mirrorColumn(m *projector.MirrorView) string {
	switch {
	case m == nil:
		return "-"
	case m.UID == "":
		return m.State
	}
	uid := m.UID
	if len(uid) > 8 {
		uid = uid[:8]
	}
	return uid + " " + m.State
}
