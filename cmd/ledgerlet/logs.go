package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector"
	"github.com/ledgerlet/ledgerlet/replay"
	"github.com/ledgerlet/ledgerlet/runtime/containerlogs"
)

type logsFlags struct {
	rf         readFlags
	container  string
	previous   bool
	follow     bool
	tail       int
	timestamps bool
	logsDir    string
	// logsDirGiven: --pod-logs-dir was on the command line; otherwise the
	// agent's own, as recorded, is used.
	logsDirGiven bool
}

func newLogsCmd() *cobra.Command {
	var f logsFlags
	c := &cobra.Command{
		Use:   "logs NAMESPACE/NAME",
		Short: "A container's log, as kubectl logs shows it (rotated files included)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f.logsDirGiven = cmd.Flags().Changed("pod-logs-dir")
			return f.run(cmd.Context(), args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	registerSource(c, &f.rf)
	fl := c.Flags()
	fl.StringVarP(&f.container, "container", "c", "", "the container (needed when the pod has more than one)")
	fl.BoolVarP(&f.previous, "previous", "p", false, "the previous instance of the container, which exited")
	fl.BoolVarP(&f.follow, "follow", "f", false, "keep printing what the container writes, across rotations, until it stops")
	fl.IntVar(&f.tail, "tail", -1, "print only the last N lines (-1: all)")
	fl.BoolVar(&f.timestamps, "timestamps", false, "prefix each line with the time it was written (RFC3339Nano)")
	fl.StringVar(&f.logsDir, "pod-logs-dir", "/var/log/pods", "root of container logs (default: the --pod-logs-dir the agent's last start recorded, else /var/log/pods)")
	return c
}

func (f *logsFlags) run(ctx context.Context, pod string, stdout, stderr io.Writer) error {
	ns, name, ok := strings.Cut(pod, "/")
	if !ok || ns == "" || name == "" {
		return usagef("pod %q: want NAMESPACE/NAME", pod)
	}
	if f.tail < -1 {
		return usagef("--tail %d: want a number of lines, or -1 for all", f.tail)
	}
	if f.follow && f.rf.db != "" {
		return usagef("--follow needs a running agent; it cannot follow with --db")
	}
	l, err := f.rf.open()
	if err != nil {
		return err
	}
	defer l.Close()
	if !f.logsDirGiven {
		if dir := recordedLogsDir(ctx, l); dir != "" {
			f.logsDir = dir
		}
	}
	pods, err := l.Pods(ctx)
	if err != nil {
		return err
	}
	v := findPod(pods, ns, name)
	if v == nil {
		return usagef("pod %s is not known to the agent (`ledgerlet pods` lists them)", pod)
	}
	cv, err := pickContainer(v, f.container)
	if err != nil {
		return err
	}
	live, err := f.instanceLog(v, cv)
	if err != nil {
		return err
	}
	warned := 0
	// A previous instance has exited: there is nothing to follow.
	opt := containerlogs.ReadOptions{Tail: f.tail, Timestamps: f.timestamps, Follow: f.follow && !f.previous,
		Warn: func(file string, line int, err error) {
			if warned++; warned <= 5 {
				fmt.Fprintf(stderr, "ledgerlet: %s:%d: skipped: %v\n", file, line, err)
			}
		}}
	if opt.Follow {
		// Follow while this instance runs, as kubectl logs -f does.
		id := cv.ContainerID
		opt.Running = func(ctx context.Context) bool {
			pods, err := l.Pods(ctx)
			if err != nil {
				return ctx.Err() == nil // the agent is away: keep following
			}
			if v := findPod(pods, ns, name); v != nil {
				for _, c := range v.Containers {
					if c.Name == cv.Name && c.ContainerID == id {
						return c.State == pb.StateRunning
					}
				}
			}
			return false
		}
	}
	err = containerlogs.Copy(ctx, stdout, live, opt)
	if errors.Is(err, fs.ErrNotExist) {
		return usagef("no log for container %q of pod %s at %s (was the agent run with another --pod-logs-dir?)", cv.Name, pod, live)
	}
	return err
}

func findPod(pods []projector.PodView, ns, name string) *projector.PodView {
	for i := range pods {
		if pods[i].Namespace == ns && pods[i].Name == name {
			return &pods[i]
		}
	}
	return nil
}

// pickContainer resolves -c as kubectl does: the one app container when
// there is only one; otherwise the name must be given, and the error names
// the choices.
func pickContainer(v *projector.PodView, name string) (*projector.ContainerView, error) {
	var apps, inits []string
	for i := range v.Containers {
		c := &v.Containers[i]
		if name != "" && c.Name == name {
			return c, nil
		}
		if c.Init {
			inits = append(inits, c.Name)
		} else {
			apps = append(apps, c.Name)
		}
	}
	pod := v.Namespace + "/" + v.Name
	choices := strings.Join(apps, ", ")
	if len(inits) > 0 {
		choices += " (init: " + strings.Join(inits, ", ") + ")"
	}
	if name != "" {
		return nil, usagef("container %q is not in pod %s; choose one of: %s", name, pod, choices)
	}
	if len(apps) == 1 {
		for i := range v.Containers {
			if v.Containers[i].Name == apps[0] && !v.Containers[i].Init {
				return &v.Containers[i], nil
			}
		}
	}
	if len(apps) == 0 {
		return nil, usagef("pod %s has no containers", pod)
	}
	return nil, usagef("pod %s has %d containers; name one with -c: %s", pod, len(apps), choices)
}

// instanceLog is the live log path of the instance asked for: the latest
// one, or with --previous the one before it, whose files are the newest
// N.log* with N below the latest's restart count (older instances' logs
// went with them).
func (f *logsFlags) instanceLog(v *projector.PodView, cv *projector.ContainerView) (string, error) {
	pod := v.Namespace + "/" + v.Name
	if !f.previous {
		if cv.ContainerID == "" {
			reason := cv.Reason
			if reason == "" {
				reason = "ContainerCreating"
			}
			return "", usagef("container %q in pod %s is waiting to start: %s", cv.Name, pod, reason)
		}
		return containerlogs.Path(f.logsDir, v.Namespace, v.Name, v.UID, cv.Name, cv.RestartCount)
	}
	if cv.LastState == nil {
		return "", usagef("previous terminated container %q in pod %s not found", cv.Name, pod)
	}
	latest, err := containerlogs.Path(f.logsDir, v.Namespace, v.Name, v.UID, cv.Name, cv.RestartCount)
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(latest)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", usagef("no logs for container %q of pod %s: %v (was the agent run with another --pod-logs-dir?)", cv.Name, pod, err)
	}
	var attempts []int
	for _, e := range entries {
		n, _, _ := strings.Cut(e.Name(), ".")
		if a, err := strconv.Atoi(n); err == nil && a >= 0 && uint64(a) < uint64(cv.RestartCount) {
			attempts = append(attempts, a)
		}
	}
	if len(attempts) == 0 {
		return "", usagef("no log of the previous instance of container %q in pod %s under %s", cv.Name, pod, dir)
	}
	sort.Ints(attempts)
	return filepath.Join(dir, strconv.Itoa(attempts[len(attempts)-1])+".log"), nil
}

// recordedLogsDir is the --pod-logs-dir of the agent's last start, as its
// AgentStarted recorded it ("" when the ledger does not say).
func recordedLogsDir(ctx context.Context, l ledger) string {
	var dir string
	_ = l.Events(ctx, replay.Filter{Types: []string{"AgentStarted"}}, false, func(e replay.Entry) error {
		var d struct {
			Flags []string `json:"flags"`
		}
		if json.Unmarshal(e.Data, &d) != nil {
			return nil
		}
		dir = ""
		for _, fl := range d.Flags {
			if v, ok := strings.CutPrefix(fl, "--pod-logs-dir="); ok {
				dir = v
			}
		}
		return nil
	})
	return dir
}
