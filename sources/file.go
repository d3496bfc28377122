package sources

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/ledgerlet/ledgerlet/eventlog"
	"github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

// Defaults for FileConfig.
const (
	DefaultFileCheckFrequency = 20 * time.Second
	DefaultSettleWindow       = 30 * time.Millisecond
	// appendRetry bounds how long a failed Append waits before a re-list
	// tries again (the log may be briefly unavailable, e.g. disk full).
	appendRetry = time.Second
)

// FileConfig configures a FileSource (--pod-manifest-path).
type FileConfig struct {
	// Path is a manifest directory (non-recursive) or a single file. It need
	// not exist yet; it is picked up when it appears.
	Path     string
	NodeName string
	Recorder Recorder
	// Known is what the log says this source provides (see Known).
	Known []Known
	// CheckFrequency is the period of the full re-list that catches what
	// fsnotify missed (--file-check-frequency). Default 20s.
	CheckFrequency time.Duration
	// SettleWindow is the quiet time after a write before a file is read, so
	// a file written in several chunks is read once, complete. Default 30ms.
	SettleWindow time.Duration
	Logger       *slog.Logger
}

// FileSource watches a manifest directory or file and appends what changes.
// Run it once; it is not safe for concurrent use.
type FileSource struct {
	cfg    FileConfig
	log    *slog.Logger
	parent string // directory holding cfg.Path; watched so Path may come and go

	ledger   ledger
	files    map[string]*observation // last complete view, kept up to date by events
	listed   bool                    // files holds a complete listing
	synced   bool                    // SourceSynced appended this run
	isDir    bool
	pending  map[string]time.Time // path → when it has been quiet long enough to read
	relistAt time.Time            // a settling change to Path itself: re-list then

	watcher *fsnotify.Watcher
	retry   bool // an Append failed: re-list soon
}

// NewFileSource checks the configuration. Nothing is read until Run.
func NewFileSource(cfg FileConfig) (*FileSource, error) {
	if cfg.Path == "" {
		return nil, errors.New("file source: no manifest path")
	}
	if cfg.Recorder == nil {
		return nil, errors.New("file source: no recorder")
	}
	if err := checkNodeName(cfg.NodeName); err != nil {
		return nil, fmt.Errorf("file source: %w", err)
	}
	abs, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("file source: manifest path %q: %w", cfg.Path, err)
	}
	// The path is part of every derived UID, so it is made absolute and
	// clean: the working directory or a trailing slash must not change it.
	cfg.Path = abs
	if cfg.CheckFrequency <= 0 {
		cfg.CheckFrequency = DefaultFileCheckFrequency
	}
	if cfg.SettleWindow <= 0 {
		cfg.SettleWindow = DefaultSettleWindow
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &FileSource{
		cfg:     cfg,
		log:     cfg.Logger.With("source", SourceFile, "path", abs),
		parent:  filepath.Dir(abs),
		ledger:  newLedger(SourceFile, cfg.Known, func(k Known) string { return k.Path }),
		files:   map[string]*observation{},
		pending: map[string]time.Time{},
	}, nil
}

// Run lists the path at once, then follows fsnotify events and re-lists every
// CheckFrequency, until ctx is done. It returns nil when ctx ends; every
// goroutine it started has exited by then.
func (s *FileSource) Run(ctx context.Context) error {
	defer func() {
		if s.watcher != nil {
			s.watcher.Close()
			s.watcher = nil
		}
	}()
	s.ensureWatches()
	s.relist(ctx)

	ticker := time.NewTicker(s.cfg.CheckFrequency)
	defer ticker.Stop()
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	defer settle.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()

	for {
		s.armSettle(settle)
		if s.retry {
			s.retry = false
			retry.Reset(min(appendRetry, s.cfg.CheckFrequency))
		}
		var events <-chan fsnotify.Event
		var errs <-chan error
		if s.watcher != nil {
			events, errs = s.watcher.Events, s.watcher.Errors
		}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				s.dropWatcher()
				continue
			}
			s.handleEvents(ctx, s.drain(ev))
		case err, ok := <-errs:
			if !ok {
				s.dropWatcher()
				continue
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				// Events were lost; only a full listing is trustworthy now.
				s.log.Warn("fsnotify queue overflow; re-listing", "err", err)
			} else {
				s.log.Warn("fsnotify error; re-listing", "err", err)
			}
			s.ensureWatches()
			s.relist(ctx)
		case <-ticker.C:
			s.ensureWatches()
			s.relist(ctx)
		case <-retry.C:
			s.relist(ctx)
		case <-settle.C:
			s.settled(ctx)
		}
	}
}

// drain takes ev and whatever else is already queued, so that a Create
// followed by a Write is seen as one writer at work.
func (s *FileSource) drain(ev fsnotify.Event) []fsnotify.Event {
	batch := []fsnotify.Event{ev}
	for len(batch) < 256 {
		select {
		case e, ok := <-s.watcher.Events:
			if !ok {
				return batch
			}
			batch = append(batch, e)
		default:
			return batch
		}
	}
	return batch
}

func (s *FileSource) handleEvents(ctx context.Context, batch []fsnotify.Event) {
	written := map[string]bool{}
	for _, ev := range batch {
		if !ev.Has(fsnotify.Create) {
			written[ev.Name] = true
		}
	}
	now := time.Now()
	var created []string
	for _, ev := range batch {
		name := filepath.Clean(ev.Name)
		if name == s.cfg.Path && (s.isDir || isDir(name)) {
			// The directory itself came, went or was replaced.
			s.ensureWatches()
			if ev.Has(fsnotify.Create) {
				s.relist(ctx)
			} else {
				s.relistAt = now.Add(s.cfg.SettleWindow)
			}
			continue
		}
		inDir := s.isDir && filepath.Dir(name) == s.cfg.Path && !ignoredName(filepath.Base(name))
		if name != s.cfg.Path && !inDir {
			continue // a neighbour of Path in the parent directory
		}
		_, settling := s.pending[name]
		if ev.Has(fsnotify.Create) && !written[ev.Name] && !settling {
			created = append(created, name)
			continue
		}
		// Writes settle; removals and renames away too, because editors
		// (vim: rename to backup, write anew) replace a file that way and
		// the pod must not blink.
		s.pending[name] = now.Add(s.cfg.SettleWindow)
	}
	if len(created) == 0 {
		return
	}
	// A create is an atomic rename into place (or a new empty file about to
	// be written): apply a complete, valid manifest at once; anything else
	// may still be being written, so it settles first.
	changed := false
	for _, path := range created {
		o := s.observe(path)
		if o == nil || o.res == nil {
			s.pending[path] = now.Add(s.cfg.SettleWindow)
			continue
		}
		s.files[path] = o
		changed = true
	}
	if changed {
		s.commit(ctx)
	}
}

func (s *FileSource) armSettle(t *time.Timer) {
	var next time.Time
	for _, at := range s.pending {
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	if !s.relistAt.IsZero() && (next.IsZero() || s.relistAt.Before(next)) {
		next = s.relistAt
	}
	if next.IsZero() {
		t.Stop()
		return
	}
	t.Reset(max(time.Until(next), 0))
}

// settled reads the files that have been quiet for the settle window.
func (s *FileSource) settled(ctx context.Context) {
	now := time.Now()
	if !s.relistAt.IsZero() && !now.Before(s.relistAt) {
		s.relistAt = time.Time{}
		s.ensureWatches()
		s.relist(ctx)
	}
	changed := false
	for path, at := range s.pending {
		if now.Before(at) {
			continue
		}
		delete(s.pending, path)
		if o := s.observe(path); o != nil {
			s.files[path] = o
		} else {
			delete(s.files, path)
		}
		changed = true
	}
	if changed {
		s.commit(ctx)
	}
}

// relist reads the whole path and brings the current view up to date.
//
// The first listing is applied as it is. After that, a file the re-list finds
// new, changed or gone is not applied yet but settles like a write: the
// re-list may have caught it half written, or between an editor's rename
// away and its new write. Events usually got there first anyway.
func (s *FileSource) relist(ctx context.Context) {
	paths, isDir, err := s.list()
	if err != nil {
		s.log.Error("cannot list manifests; keeping current pods", "err", err)
		return
	}
	s.isDir = isDir
	if !s.listed {
		files := make(map[string]*observation, len(paths))
		for _, path := range paths {
			if o := s.observe(path); o != nil {
				files[path] = o
			}
		}
		s.files = files
		s.listed = true
		s.commit(ctx)
		return
	}
	settleAt := time.Now().Add(s.cfg.SettleWindow)
	seen := make(map[string]bool, len(paths))
	for _, path := range paths {
		seen[path] = true
		if _, settling := s.pending[path]; settling {
			continue
		}
		if o := s.observe(path); o != s.files[path] {
			s.pending[path] = settleAt
		}
	}
	for path := range s.files {
		if _, settling := s.pending[path]; !seen[path] && !settling {
			s.pending[path] = settleAt
		}
	}
	// Nothing is appended here, except what a failed append left over.
	s.commit(ctx)
}

// list returns the candidate manifest files in lexical order. A path that
// does not exist is an empty listing, as in the kubelet.
func (s *FileSource) list() (paths []string, isDir bool, err error) {
	fi, err := os.Stat(s.cfg.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if !fi.IsDir() {
		return []string{s.cfg.Path}, false, nil
	}
	entries, err := os.ReadDir(s.cfg.Path) // sorted by name
	if err != nil {
		return nil, true, err
	}
	for _, e := range entries {
		if ignoredName(e.Name()) {
			continue
		}
		if e.IsDir() {
			s.log.Debug("not recursing into subdirectory", "dir", e.Name())
			continue
		}
		paths = append(paths, filepath.Join(s.cfg.Path, e.Name()))
	}
	return paths, true, nil
}

// observe reads one file. It returns nil when there is no manifest at path
// (gone, or not a regular file). Unchanged bytes reuse the previous parse,
// and a file whose stat has not moved since a trusted read is not read again,
// which keeps a re-list of many manifests cheap.
func (s *FileSource) observe(path string) *observation {
	fi, err := os.Stat(path) // follows symlinks, as the kubelet does
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return &observation{err: fmt.Errorf("%s: read: %w", path, err)}
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	stamp, stampOK := statStamp(fi)
	prev := s.files[path]
	if prev != nil && prev.trusted && stampOK && prev.stamp == stamp {
		return prev
	}
	readAt := time.Now()
	trusted := stampOK && stamp.settledBefore(readAt)
	raw, err := readManifest(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return &observation{err: fmt.Errorf("%s: %w", path, err)}
	}
	sum := sha256.Sum256(raw)
	hash := hex.EncodeToString(sum[:])
	if prev != nil && prev.hash == hash {
		prev.stamp, prev.trusted = stamp, trusted
		return prev
	}
	o := &observation{hash: hash, raw: raw, stamp: stamp, trusted: trusted}
	o.res, o.err = Parse(raw, ParseOptions{NodeName: s.cfg.NodeName, Source: SourceFile, Path: path, Seen: readAt})
	return o
}

func readManifest(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, MaxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if len(raw) > MaxManifestBytes {
		return nil, fmt.Errorf("manifest is larger than %d bytes", MaxManifestBytes)
	}
	return raw, nil
}

// commit appends what reconciling the current view yields. The ledger moves
// on only once the events are durable; on failure the next re-list retries.
func (s *FileSource) commit(ctx context.Context) {
	if !s.listed {
		return // without a complete listing, absence means nothing
	}
	evs, next := reconcileFiles(s.ledger, s.files)
	if !s.synced {
		evs = append(evs, eventlog.Event{Data: &eventpb.SourceSynced{
			Source: SourceFile, Location: s.cfg.Path, Manifests: uint32(len(next.pods)),
		}})
	}
	if len(evs) == 0 {
		return
	}
	if _, err := s.cfg.Recorder.Append(ctx, evs...); err != nil {
		if ctx.Err() == nil {
			s.log.Error("append manifest events; will retry", "events", len(evs), "err", err)
			s.retry = true
		}
		return
	}
	for _, ev := range evs {
		logEvent(s.log, ev)
	}
	s.ledger = next
	s.synced = true
}

// ensureWatches watches the parent (so Path may appear, vanish or be
// replaced, and a single file is followed across atomic renames) and, when
// Path is a directory, Path itself. Adding an existing watch is cheap, and
// re-adding after a directory was recreated is required, so it is not
// tracked.
func (s *FileSource) ensureWatches() {
	if s.watcher == nil {
		w, err := fsnotify.NewWatcher()
		if err != nil {
			// Out of inotify instances, say: re-listing still works, only
			// slower. Try again at the next re-list.
			s.log.Warn("cannot watch manifests; relying on periodic re-list", "err", err)
			return
		}
		s.watcher = w
	}
	if err := s.watcher.Add(s.parent); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Debug("cannot watch parent directory", "dir", s.parent, "err", err)
	}
	if fi, err := os.Stat(s.cfg.Path); err == nil && fi.IsDir() {
		if err := s.watcher.Add(s.cfg.Path); err != nil {
			s.log.Warn("cannot watch manifest directory; relying on periodic re-list", "err", err)
		}
	}
}

func (s *FileSource) dropWatcher() {
	if s.watcher != nil {
		s.watcher.Close()
		s.watcher = nil
	}
}

// ignoredName reports names that are never manifests: dotfiles (as in the
// kubelet) and the artefacts of editors and package managers, which the
// kubelet reads as pods (kubernetes#83708, #136962).
func ignoredName(name string) bool {
	if name == "" || name[0] == '.' || strings.HasSuffix(name, "~") {
		return true
	}
	if len(name) > 1 && name[0] == '#' && name[len(name)-1] == '#' {
		return true // emacs auto-save
	}
	if strings.Trim(name, "0123456789") == "" {
		return true // vim's write probe "4913" (and its successors)
	}
	if strings.Contains(name, ".dpkg-") || strings.Contains(name, ".ucf-") {
		return true
	}
	for _, suffix := range ignoredSuffixes {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

var ignoredSuffixes = [...]string{".swp", ".swo", ".swx", ".bak", ".orig", ".tmp", ".rpmnew", ".rpmsave", ".rpmorig"}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

func logEvent(log *slog.Logger, ev eventlog.Event) {
	switch d := ev.Data.(type) {
	case *eventpb.ManifestRejected:
		log.Warn("manifest rejected", "pod", ev.Pod, "manifest", d.Path, "reason", d.Reason)
	case *eventpb.ManifestAdded:
		log.Info("manifest added", "pod", ev.Pod, "manifest", d.Path, "uid", d.Uid)
	case *eventpb.ManifestChanged:
		log.Info("manifest changed", "pod", ev.Pod, "manifest", d.Path, "uid", d.Uid, "previousUID", d.PreviousUid)
	case *eventpb.ManifestRemoved:
		log.Info("manifest removed", "pod", ev.Pod, "manifest", d.Path, "uid", d.Uid)
	default:
		log.Debug(ev.Type(), "pod", ev.Pod)
	}
}
