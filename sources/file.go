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
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ledgerlet/ledgerlet/eventlog"
	"github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

// Defaults for FileConfig.
const (
	DefaultFileCheckFrequency = 20 * time.Second
	// DefaultSettleWindow is long enough for tools that write a file in
	// several parts with pauses between them (a script appending, a slow
	// copy): a file is read only after this much quiet. A rename into place
	// does not wait: its content is complete.
	DefaultSettleWindow = 500 * time.Millisecond
	// DefaultGoneSettleWindow is the quiet time after a name was deleted or
	// renamed away before the pod goes: nothing of it is left to be written,
	// but tools replace a file by removing it first (vim renames the original
	// away and writes a new one; kubeadm moves a manifest to its backup
	// directory and the new one in; scripts rm then cp), all within
	// milliseconds, and the pod must not blink. A write that follows waits
	// its own SettleWindow. Longer would only delay every removal (issue 11:
	// stopping at once is what an operator expects of `rm`).
	DefaultGoneSettleWindow = 100 * time.Millisecond
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
	// the watch missed (--file-check-frequency). Default 20s.
	CheckFrequency time.Duration
	// SettleWindow is the quiet time after a file was created or written
	// before it is read, so a file written in several parts is read once,
	// complete. Default DefaultSettleWindow.
	SettleWindow time.Duration
	// GoneSettleWindow is the quiet time after a file was deleted or renamed
	// away before its pod is removed. Default DefaultGoneSettleWindow.
	GoneSettleWindow time.Duration
	// StrictPermissions refuses a manifest that is, or whose directory is,
	// writable by group or others or owned by another user; without it such
	// a manifest is accepted with a warning (--strict-manifest-permissions).
	StrictPermissions bool
	Logger            *slog.Logger
}

// FileSource watches a manifest directory or file and appends what changes.
// Run it once; it is not safe for concurrent use.
//
// A path that does not exist, or cannot be listed, is not a statement that
// there are no pods: the source is recorded unavailable (SourceUnavailable,
// once per change of condition, then SourceAvailable) and its pods stay. So
// is a manifest that is a symlink to nothing. Only a listing that happened
// can remove pods, and SourceSynced is appended only after one.
type FileSource struct {
	cfg    FileConfig
	log    *slog.Logger
	parent string // directory holding cfg.Path; watched so Path may come and go

	ledger   ledger
	files    map[string]*observation // last complete view, kept up to date by events
	listed   bool                    // files holds a complete listing
	synced   bool                    // SourceSynced appended this run
	isDir    bool                    // Path was a directory at the last listing
	cond     string                  // the unavailability last recorded; "" when none is
	pending  map[string]time.Time    // path → when it has been quiet long enough to read
	relistAt time.Time               // a settling change to Path itself: re-list then
	appeared time.Time               // when Path, missing before its first listing, was found
	// movedAway remembers, by rename cookie, names renamed away that still
	// settle, in case the other half of the rename comes in a later batch.
	movedAway map[uint32]string

	watcher dirWatcher
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
	if cfg.GoneSettleWindow <= 0 {
		cfg.GoneSettleWindow = min(DefaultGoneSettleWindow, cfg.SettleWindow)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &FileSource{
		cfg:       cfg,
		log:       cfg.Logger.With("source", SourceFile, "path", abs),
		parent:    filepath.Dir(abs),
		ledger:    newLedger(SourceFile, cfg.Known, func(k Known) string { return k.Path }),
		files:     map[string]*observation{},
		pending:   map[string]time.Time{},
		movedAway: map[uint32]string{},
	}, nil
}

// Run lists the path at once, then follows watch events and re-lists every
// CheckFrequency, until ctx is done. It returns nil when ctx ends; every
// goroutine it started has exited by then.
func (s *FileSource) Run(ctx context.Context) error {
	defer s.dropWatcher()
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
		var events <-chan []watchEvent
		if s.watcher != nil {
			events = s.watcher.Events()
		}
		select {
		case <-ctx.Done():
			return nil
		case batch := <-events:
			s.handleEvents(ctx, s.drain(batch))
		case <-ticker.C:
			s.ensureWatches()
			if s.relistAt.IsZero() { // else Path itself is settling: the settle re-lists
				s.relist(ctx)
			}
		case <-retry.C:
			s.relist(ctx)
		case <-settle.C:
			s.settled(ctx)
		}
	}
}

// drain takes batch and whatever else is already queued, so that a create
// followed by writes, or both halves of a rename, are seen together.
func (s *FileSource) drain(batch []watchEvent) []watchEvent {
	for len(batch) < 1024 {
		select {
		case more := <-s.watcher.Events():
			batch = append(batch, more...)
		default:
			return batch
		}
	}
	return batch
}

// candidate reports whether name is a manifest this source reads.
func (s *FileSource) candidate(name string) bool {
	if name == s.cfg.Path {
		return !s.isDir
	}
	return s.isDir && filepath.Dir(name) == s.cfg.Path && !ignoredName(filepath.Base(name))
}

// handleEvents applies at once only what cannot still be written: a file
// renamed into place, and both names of a rename inside the directory (one
// pod moving, recorded in one append). Everything else settles: a new file
// may still be being written, and a file renamed away or deleted is often
// about to be replaced (editors save that way), so the pod must not blink.
func (s *FileSource) handleEvents(ctx context.Context, batch []watchEvent) {
	now := time.Now()
	window := s.cfg.SettleWindow
	// The new names of renames in this batch, by cookie.
	renamedTo := map[uint32]bool{}
	for _, ev := range batch {
		if ev.op&opMovedTo != 0 && ev.cookie != 0 && s.candidate(filepath.Clean(ev.name)) {
			renamedTo[ev.cookie] = true
		}
	}
	relistNow, complete := false, false
	immediate := map[string]bool{}
	for _, ev := range batch {
		if ev.err != nil {
			s.log.Warn("manifest watch failed; re-listing", "err", ev.err)
			s.dropWatcher()
			relistNow = true
			continue
		}
		if ev.op&opOverflow != 0 {
			// Events were lost; only a full listing is trustworthy now.
			s.log.Warn("manifest watch queue overflowed; re-listing")
			relistNow = true
			continue
		}
		name := filepath.Clean(ev.name)
		if name == s.cfg.Path && (s.isDir || ev.isDir) || ev.op&opGone != 0 {
			// Path itself (or its parent) came, went or was replaced. A
			// directory renamed into place is complete; a new one may still
			// be being filled, and one that went may be back in a moment.
			if ev.op&opMovedTo != 0 && name == s.cfg.Path {
				relistNow = true
				s.appeared = time.Time{}
				s.relistAt = time.Time{}
				complete = true
			} else {
				s.relistAt = now.Add(window)
			}
			continue
		}
		if !s.candidate(name) {
			continue // a neighbour of Path in the parent, or an ignored name
		}
		switch {
		case ev.op&opMovedTo != 0:
			immediate[name] = true
			delete(s.pending, name)
			if old, ok := s.movedAway[ev.cookie]; ok && ev.cookie != 0 {
				// The first half of this rename came in an earlier batch.
				delete(s.movedAway, ev.cookie)
				delete(s.pending, old)
				immediate[old] = true
			}
		case ev.op&opMovedFrom != 0 && ev.cookie != 0 && renamedTo[ev.cookie]:
			// Renamed within the directory: the old name is gone now.
			immediate[name] = true
			delete(s.pending, name)
		default:
			settle := window
			if ev.op&^(opRemove|opMovedFrom) == 0 {
				settle = s.cfg.GoneSettleWindow // gone: only a quick replacement is waited for
			}
			s.pending[name] = now.Add(settle)
			delete(immediate, name) // written after it was renamed into place
			if ev.op&opMovedFrom != 0 && ev.cookie != 0 {
				s.movedAway[ev.cookie] = name
			}
		}
	}
	if relistNow {
		s.ensureWatches()
		s.listPath(ctx, complete)
	}
	if len(immediate) > 0 {
		s.apply(ctx, sortedKeys(immediate))
	}
}

// apply reads paths and commits the view with them. If Path is no longer
// there once they were read, what was seen gone may have gone with the
// directory: the view stays the last one taken while Path was present, and
// the next listing starts from it.
func (s *FileSource) apply(ctx context.Context, paths []string) {
	if !s.listed {
		// Path may be listable now; what changed in it is complete.
		s.listPath(ctx, true)
		return
	}
	files := maps.Clone(s.files)
	for _, path := range paths {
		if o := s.observe(path); o != nil {
			files[path] = o
		} else {
			delete(files, path)
		}
	}
	if err := s.present(); err != nil {
		s.unavailable(ctx, err.Error())
		return
	}
	s.files = files
	s.commit(ctx)
}

func (s *FileSource) armSettle(t *time.Timer) {
	var next time.Time
	if !s.relistAt.IsZero() {
		// Files wait for the re-list of the directory they are in.
		next = s.relistAt
	} else {
		for _, at := range s.pending {
			if next.IsZero() || at.Before(next) {
				next = at
			}
		}
	}
	if next.IsZero() {
		t.Stop()
		return
	}
	t.Reset(max(time.Until(next), 0))
}

// settled re-lists when Path itself has settled, and reads the files that
// have been quiet for the settle window.
func (s *FileSource) settled(ctx context.Context) {
	now := time.Now()
	if !s.relistAt.IsZero() {
		if now.Before(s.relistAt) {
			return
		}
		s.relistAt = time.Time{}
		s.ensureWatches()
		if !s.relist(ctx) {
			// Nothing to read the settling files in. The listing when Path
			// is back compares everything with the last view anyway.
			clear(s.pending)
			clear(s.movedAway)
			return
		}
	}
	var due []string
	for path, at := range s.pending {
		if now.Before(at) {
			continue
		}
		delete(s.pending, path)
		for cookie, name := range s.movedAway {
			if name == path {
				delete(s.movedAway, cookie)
			}
		}
		due = append(due, path)
	}
	if len(due) > 0 {
		slices.Sort(due)
		s.apply(ctx, due)
	}
}

// relist reads the whole path and brings the current view up to date.
//
// The first listing is applied as it is. After that, a file the re-list finds
// new, changed or gone is not applied yet but settles like a write: the
// re-list may have caught it half written, or between an editor's rename
// away and its new write. Events usually got there first anyway.
//
// A path that cannot be listed (it does not exist, say) changes nothing but
// the source's recorded availability; relist then reports false. So does a
// path that appeared only now after it was missing: it may still be being
// filled (mkdir, then files copied in), so its first listing waits for the
// settle window.
func (s *FileSource) relist(ctx context.Context) bool { return s.listPath(ctx, false) }

// listPath is relist; complete says Path's content is known complete (it was
// renamed into place), so a path that just appeared is listed at once.
func (s *FileSource) listPath(ctx context.Context, complete bool) bool {
	paths, isDir, err := s.list()
	if err != nil {
		s.appeared = time.Time{}
		s.unavailable(ctx, err.Error())
		return false
	}
	if !s.listed && s.cond != "" && !complete {
		now := time.Now()
		if s.appeared.IsZero() {
			s.appeared = now
		}
		if at := s.appeared.Add(s.cfg.SettleWindow); now.Before(at) {
			if s.relistAt.IsZero() || s.relistAt.Before(at) {
				s.relistAt = at
			}
			return false
		}
	}
	if !s.listed {
		files := make(map[string]*observation, len(paths))
		for _, path := range paths {
			if o := s.observe(path); o != nil {
				files[path] = o
			}
		}
		// Files seen gone while the directory itself went are no listing.
		if fi, err := os.Stat(s.cfg.Path); err != nil || fi.IsDir() != isDir {
			s.unavailable(ctx, fmt.Sprintf("manifest path %s: changed while it was listed", s.cfg.Path))
			return false
		}
		s.isDir = isDir
		s.files = files
		s.listed = true
		s.commit(ctx)
		return true
	}
	s.isDir = isDir
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
	// Appends nothing unless the availability changed, or a failed append
	// left something over.
	s.commit(ctx)
	return true
}

// list returns the candidate manifest files in lexical order, or why Path
// cannot be listed.
func (s *FileSource) list() (paths []string, isDir bool, err error) {
	fi, err := os.Stat(s.cfg.Path) // follows a symlinked manifest directory
	if err != nil {
		return nil, false, fmt.Errorf("manifest path: %w", err)
	}
	if !fi.IsDir() {
		return []string{s.cfg.Path}, false, nil
	}
	entries, err := os.ReadDir(s.cfg.Path) // sorted by name
	if err != nil {
		return nil, true, fmt.Errorf("list manifests: %w", err)
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

// present checks that Path is still what the last listing found. Files seen
// gone while it is not may have gone with the directory, so nothing is
// removed then.
func (s *FileSource) present() error {
	fi, err := os.Stat(s.cfg.Path)
	if err != nil {
		return fmt.Errorf("manifest path: %w", err)
	}
	if fi.IsDir() != s.isDir {
		return fmt.Errorf("manifest path %s: changed between a directory and a file; waiting for the next listing", s.cfg.Path)
	}
	return nil
}

// observe reads one file. It returns nil when there is no manifest at path
// (gone, or not a regular file), and an unavailable observation for a
// symlink to nothing: that manifest is not gone, its target is not there
// (yet). Unchanged bytes reuse the previous parse, and a file whose stat has
// not moved since a trusted read is not read again, which keeps a re-list of
// many manifests cheap.
func (s *FileSource) observe(path string) *observation {
	fi, err := os.Stat(path) // follows symlinks, as the kubelet does
	if errors.Is(err, fs.ErrNotExist) {
		return s.missing(path)
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
		return s.missing(path)
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
	s.checkPermissions(path, fi, o)
	return o
}

// missing is the observation of a path whose content does not exist: nil
// when the name is gone, unavailable when it is a dangling symlink.
func (s *FileSource) missing(path string) *observation {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return nil
	}
	target, _ := os.Readlink(path)
	reason := fmt.Sprintf("%s: symlink to %s, which does not exist", path, target)
	if prev := s.files[path]; prev != nil && prev.unavailable == reason {
		return prev
	}
	return &observation{unavailable: reason}
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

// commit appends what reconciling the current view yields, with the
// availability it implies. The ledger moves on only once the events are
// durable; on failure the next re-list retries.
func (s *FileSource) commit(ctx context.Context) {
	if !s.listed {
		return // without a complete listing, absence means nothing
	}
	if err := s.present(); err != nil {
		s.unavailable(ctx, err.Error())
		return
	}
	evs, next := reconcileFiles(s.ledger, s.files)
	cond := unavailableFiles(s.files)
	var all []eventlog.Event
	if s.cond != "" && cond == "" {
		all = append(all, eventlog.Event{Data: &eventpb.SourceAvailable{Source: SourceFile, Location: s.cfg.Path}})
	}
	all = append(all, evs...)
	if !s.synced {
		all = append(all, eventlog.Event{Data: &eventpb.SourceSynced{
			Source: SourceFile, Location: s.cfg.Path, Manifests: uint32(len(next.pods)),
		}})
	}
	// After SourceSynced, which also says the source is available.
	if cond != "" && (cond != s.cond || !s.synced) {
		all = append(all, eventlog.Event{Data: &eventpb.SourceUnavailable{Source: SourceFile, Location: s.cfg.Path, Reason: cond}})
	}
	if len(all) == 0 {
		return
	}
	if _, err := s.cfg.Recorder.Append(ctx, all...); err != nil {
		if ctx.Err() == nil {
			s.log.Error("append manifest events; will retry", "events", len(all), "err", err)
			s.retry = true
		}
		return
	}
	for _, ev := range all {
		logEvent(s.log, ev)
	}
	s.ledger = next
	s.synced = true
	s.cond = cond
}

// unavailable records, once per change of condition, that the source cannot
// be listed; what it last said stands.
func (s *FileSource) unavailable(ctx context.Context, reason string) {
	if reason == s.cond {
		s.log.Debug("manifest path still unavailable", "reason", reason)
		return
	}
	ev := eventlog.Event{Data: &eventpb.SourceUnavailable{Source: SourceFile, Location: s.cfg.Path, Reason: reason}}
	if _, err := s.cfg.Recorder.Append(ctx, ev); err != nil {
		if ctx.Err() == nil {
			s.log.Error("append SourceUnavailable; will retry", "err", err)
			s.retry = true
		}
		return
	}
	logEvent(s.log, ev)
	s.cond = reason
}

// unavailableFiles is the condition of a listing whose manifests include
// dangling symlinks ("" when there are none).
func unavailableFiles(files map[string]*observation) string {
	var reasons []string
	for _, path := range sortedKeys(files) {
		if r := files[path].unavailable; r != "" {
			reasons = append(reasons, r)
		}
	}
	return strings.Join(reasons, "; ")
}

// ensureWatches watches the parent (so Path may appear, vanish or be
// replaced, and a single file is followed across atomic renames) and, when
// Path is a directory, Path itself. Adding an existing watch is cheap, and
// re-adding after a directory was recreated is required, so it is not
// tracked.
func (s *FileSource) ensureWatches() {
	if s.watcher == nil {
		w, err := newDirWatcher()
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
		if err := s.watcher.Add(s.cfg.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("cannot watch manifest directory; relying on periodic re-list", "err", err)
		}
	}
}

func (s *FileSource) dropWatcher() {
	if s.watcher != nil {
		if err := s.watcher.Close(); err != nil {
			s.log.Debug("close manifest watch", "err", err)
		}
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
	case *eventpb.SourceUnavailable:
		log.Warn("manifests unavailable; keeping current pods", "reason", d.Reason)
	case *eventpb.SourceAvailable:
		log.Info("manifests available again")
	default:
		log.Debug(ev.Type(), "pod", ev.Pod)
	}
}
