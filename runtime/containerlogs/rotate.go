package containerlogs

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector"
)

// Reopener asks the runtime to reopen a container's log file, so that it
// writes to a new file at the path instead of the one rotation renamed
// (CRI ReopenContainerLog). *runtime.Runtime satisfies it.
type Reopener interface {
	ReopenContainerLog(ctx context.Context, containerID string) error
}

// StateReader is the agent's projected state (the agent's projection
// satisfies it); fn must not keep or change the state.
type StateReader interface {
	Read(fn func(*projector.State))
}

// Rotator bounds every running container's log, as the kubelet's container
// log manager does: every Period, a live log of MaxSize bytes or more is
// renamed to N.log.<timestamp> and the runtime told to reopen it; older
// rotated files are gzipped, and the oldest removed so that at most MaxFiles
// files (the live one included) remain per container instance.
//
// Rotations are not recorded in the ledger: they change no state the agent
// decides on, and a chatty container would fill the log with them. What a
// pod's logs look like is on disk for anyone to list.
type Rotator struct {
	Runtime  Reopener
	State    StateReader
	Root     string // the pod log root (--pod-logs-dir)
	MaxSize  int64  // bytes; <= 0: never rotate
	MaxFiles int    // at least 2
	Period   time.Duration
	Logger   *slog.Logger
	// Now names rotated files; default time.Now.
	Now func() time.Time
}

// Target is one running container instance whose log may need rotating.
type Target struct {
	Pod         string // namespace/name, for messages
	ContainerID string
	Path        string // the live log
}

// Run rotates every Period until ctx ends. A failure to rotate one log is
// logged and retried next period; it never stops the agent.
func (r *Rotator) Run(ctx context.Context) error {
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	if r.Period <= 0 {
		r.Period = 10 * time.Second
	}
	if r.MaxSize <= 0 || r.Root == "" {
		// Nothing to do, but an actor that returns stops the agent.
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(r.Period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		r.RotateAll(ctx, r.targets())
	}
}

// targets are the running containers of the projected state, old pod
// versions' included: they write too until they are stopped.
func (r *Rotator) targets() []Target {
	var out []Target
	r.State.Read(func(s *projector.State) {
		for _, p := range s.Pods {
			for _, c := range p.Containers {
				if c.State != pb.StateRunning {
					continue
				}
				path, err := Path(r.Root, p.Namespace, p.Name, c.UID, c.Name, c.Attempt)
				if err != nil {
					continue // never created under such a name either
				}
				out = append(out, Target{Pod: p.Key(), ContainerID: c.ID, Path: path})
			}
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// RotateAll rotates each target whose live log is due, one after the other.
func (r *Rotator) RotateAll(ctx context.Context, targets []Target) {
	for _, t := range targets {
		if ctx.Err() != nil {
			return
		}
		if err := r.Rotate(ctx, t); err != nil {
			r.Logger.Warn("rotate container log", "pod", t.Pod, "container", t.ContainerID, "err", err)
		}
	}
}

// Rotate rotates t's log if it reached MaxSize, as the kubelet's rotateLog.
func (r *Rotator) Rotate(ctx context.Context, t Target) error {
	fi, err := os.Stat(t.Path)
	if errors.Is(err, fs.ErrNotExist) {
		// A rotation whose reopen never happened (the agent stopped between
		// rename and reopen, or the reopen and the rename back both failed):
		// the runtime still writes to the renamed file. Reopening makes the
		// live file again.
		if err := r.Runtime.ReopenContainerLog(ctx, t.ContainerID); err != nil {
			return fmt.Errorf("reopen missing log %s: %w", t.Path, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat log %s: %w", t.Path, err)
	}
	if fi.Size() < r.MaxSize {
		return nil
	}
	rotated, err := r.prepare(t.Path)
	if err != nil {
		return err
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	name := t.Path + "." + now().Format(TimestampFormat)
	for _, f := range rotated {
		if strings.TrimSuffix(f, gzSuffix) == name {
			// Rotated this second already (a clock stepped back): next period.
			return nil
		}
	}
	if err := os.Rename(t.Path, name); err != nil {
		return fmt.Errorf("rotate log %s: %w", t.Path, err)
	}
	if err := r.Runtime.ReopenContainerLog(ctx, t.ContainerID); err != nil {
		// The runtime still writes to the renamed file: put it back so the
		// next period tries again, and the live log stays where readers look.
		if rerr := os.Rename(name, t.Path); rerr != nil {
			r.Logger.Warn("rename rotated log back after failed reopen", "log", name, "err", rerr)
		}
		return fmt.Errorf("reopen log %s of container %s: %w", t.Path, t.ContainerID, err)
	}
	r.Logger.Debug("container log rotated", "pod", t.Pod, "container", t.ContainerID, "log", t.Path, "size", fi.Size())
	return nil
}

// prepare makes room for one more rotated file: it removes what an
// interrupted compression left, the oldest rotated files beyond
// MaxFiles-2 (the live file and the one about to be rotated make MaxFiles),
// and compresses the rest. It returns the rotated files kept.
func (r *Rotator) prepare(live string) ([]string, error) {
	if err := removeCompressionLeftovers(live); err != nil {
		return nil, err
	}
	rotated, err := rotatedFiles(live)
	if err != nil {
		return nil, err
	}
	keep := max(r.MaxFiles-2, 0)
	if n := len(rotated) - keep; n > 0 {
		for _, f := range rotated[:n] {
			if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("remove old log %s: %w", f, err)
			}
		}
		rotated = rotated[n:]
	}
	for i, f := range rotated {
		if strings.HasSuffix(f, gzSuffix) {
			continue
		}
		if err := compress(f); err != nil {
			// An uncompressed file is still a good file: keep it and go on.
			r.Logger.Warn("compress rotated log", "log", f, "err", err)
			continue
		}
		rotated[i] = f + gzSuffix
	}
	return rotated, nil
}

// removeCompressionLeftovers removes a compression's .tmp files, and an
// original whose .gz was completed but not yet removed.
func removeCompressionLeftovers(live string) error {
	dir, base := filepath.Split(live)
	entries, err := os.ReadDir(filepath.Clean(dir))
	if err != nil {
		return fmt.Errorf("list log files of %s: %w", live, err)
	}
	names := map[string]bool{}
	for _, e := range entries {
		names[e.Name()] = true
	}
	for n := range names {
		if !strings.HasPrefix(n, base+".") {
			continue
		}
		if strings.HasSuffix(n, tmpSuffix) || (!strings.HasSuffix(n, gzSuffix) && names[n+gzSuffix]) {
			if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove leftover %s: %w", n, err)
			}
		}
	}
	return nil
}

// compress gzips f to f.gz through f.tmp, so that a crash never leaves a
// truncated .gz, then removes f.
func compress(f string) error {
	in, err := os.Open(f)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := f + tmpSuffix
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(out)
	_, err = io.Copy(zw, in)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if serr := out.Sync(); err == nil {
		err = serr
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, f+gzSuffix)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Remove(f)
}
