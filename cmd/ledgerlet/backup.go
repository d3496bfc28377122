package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ledgerlet/ledgerlet/cmd/ledgerlet/internal/api"
	"github.com/ledgerlet/ledgerlet/eventlog"
)

func newBackupCmd() *cobra.Command {
	var dataDir string
	c := &cobra.Command{
		Use:   "backup FILE",
		Short: "Write a consistent copy of the live log to FILE",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dst := args[0]
			a, err := api.Dial(filepath.Join(dataDir, "ledgerlet.sock"))
			if err != nil {
				return usageError{err}
			}
			defer a.Close()
			body, err := a.Backup(cmd.Context())
			if err != nil {
				return asUsage(err)
			}
			defer body.Close()
			n, err := writeFileAtomic(dst, body)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %d bytes to %s\n", n, dst)
			return nil
		},
	}
	c.Flags().StringVar(&dataDir, "data-dir", "/var/lib/ledgerlet", "the agent's data directory")
	return c
}

// writeFileAtomic writes r to a temporary file beside path, fsyncs it and
// renames it into place, so a half-written backup never has the final name.
func writeFileAtomic(path string, r io.Reader) (int64, error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return 0, usagef("backup to %s: %v", path, err)
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, r)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("write backup %s: %w", path, err)
	}
	// A copy cut short (the agent died mid-stream) must not take the final name.
	check, err := eventlog.Open(tmp.Name(), eventlog.Options{ReadOnly: true})
	if err != nil {
		return 0, fmt.Errorf("backup %s is not a complete log: %w", path, err)
	}
	check.Close()
	if err := os.Rename(tmp.Name(), path); err != nil {
		return 0, fmt.Errorf("write backup %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return n, nil
}
