// Command ledgerlet is a node agent for Kubernetes static pods that keeps a
// ledger: every manifest change, runtime observation and action is an event
// in an embedded log, and all state is a projection of that log.
//
// This package only parses flags and wires the other packages together.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is stamped at build time with -ldflags "-X main.version=…".
var version = "dev"

// usageError is an input error: one line on stderr, exit code 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// checkFailed means the command ran but a check it made failed: exit code 1.
type checkFailed struct{ msg string }

func (c checkFailed) Error() string { return c.msg }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var cf checkFailed
	if errors.As(err, &cf) {
		fmt.Fprintln(stderr, "ledgerlet: "+cf.msg)
		return 1
	}
	fmt.Fprintln(stderr, "ledgerlet: "+oneLine(err.Error()))
	return 2
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "ledgerlet",
		Short:         "A node agent for Kubernetes static pods that keeps a ledger",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	// Flag errors are usage errors (exit 2).
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newRunCmd(), newPodsCmd(), newEventsCmd(), newHistoryCmd(), newReplayCmd(), newBackupCmd(), newCheckCmd(),
		newTimelineCmd(), newExplainCmd(), newExportCmd(), newLogsCmd())
	for _, c := range root.Commands() {
		c.SetFlagErrorFunc(root.FlagErrorFunc())
		c.Args = wrapArgs(c.Args)
	}
	return root
}

func wrapArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	if v == nil {
		return nil
	}
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func oneLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	return s
}
