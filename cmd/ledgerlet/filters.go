package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/ledgerlet/ledgerlet/eventlog"
)

// registerWindow adds the window and type flags that events, history and
// timeline share, so they read the same everywhere.
func registerWindow(c *cobra.Command, since, until *string, types *[]string) {
	c.Flags().StringVar(since, "since", "", "from this time on (RFC3339, or a duration such as 1h meaning that long ago)")
	c.Flags().StringVar(until, "until", "", "up to this time (RFC3339 or a duration ago)")
	if types != nil {
		c.Flags().StringSliceVar(types, "type", nil, "only events of these types (repeatable or comma-separated: --type ManifestChanged,Intent)")
	}
}

// parseTypes checks event type names against the vocabulary.
func parseTypes(in []string) ([]string, error) {
	known := map[string]bool{}
	for _, t := range eventlog.Types() {
		known[t] = true
	}
	var out []string
	for _, t := range in {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if !known[t] {
			return nil, usagef("--type %q is not an event type (one of %s)", t, strings.Join(eventlog.Types(), ", "))
		}
		out = append(out, t)
	}
	return out, nil
}
