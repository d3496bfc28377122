package sources

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

// since returns the summary lines after the first n events.
func (h *fileHarness) since(n int) []string { return summary(h.rec.events())[n:] }

func etcdWithVolume() (first, rest string) {
	first = podYAML("etcd", "busybox:1.36") // a valid pod on its own
	rest = "    volumeMounts:\n    - {name: data, mountPath: /var/lib/etcd}\n  volumes:\n  - name: data\n    hostPath: {path: /var/lib/etcd}\n"
	return first, rest
}

// TestANewFileIsReadOnlyOnceItsWritesSettle: a file created and written in
// two parts is applied once, complete, even when its first part alone is a
// valid pod, for pauses between the writes that ordinary tools make.
func TestANewFileIsReadOnlyOnceItsWritesSettle(t *testing.T) {
	for _, pause := range []time.Duration{5 * time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond} {
		t.Run(pause.String(), func(t *testing.T) {
			dir := manifestDir(t)
			h := startFile(t, dir, nil)
			first, rest := etcdWithVolume()
			f, err := os.OpenFile(filepath.Join(dir, "etcd.yaml"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString(first); err != nil {
				t.Fatal(err)
			}
			time.Sleep(pause)
			if _, err := f.WriteString(rest); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			h.rec.waitFor(t, "added", hasLine("ManifestAdded default/etcd-node1 etcd.yaml"))
			quiet()
			got := h.since(1)
			if want := []string{"ManifestAdded default/etcd-node1 etcd.yaml"}; !slices.Equal(got, want) {
				t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if hash := h.rec.events()[1].Data.(*eventpb.ManifestAdded).ContentHash; hash != sha256Hex([]byte(first+rest)) {
				t.Errorf("applied a part of the file: only its complete content may be applied")
			}
		})
	}
}

// TestRenameInsideTheDirectoryIsOneMoveOfOnePod: `mv a.yaml b.yaml` is
// recorded as the pod leaving a.yaml and arriving at b.yaml, in one append,
// with no duplicate rejection and without waiting for the settle window.
func TestRenameInsideTheDirectoryIsOneMoveOfOnePod(t *testing.T) {
	dir := manifestDir(t)
	write(t, filepath.Join(dir, "a.yaml"), podYAML("web", "busybox:1.36"))
	h := startFile(t, dir, nil, func(c *FileConfig) { c.SettleWindow = 2 * time.Second })
	names := []string{"a.yaml", "b.yaml", "c.yaml", "a.yaml"}
	for i := 1; i < len(names); i++ {
		from, to := names[i-1], names[i]
		calls := h.rec.calls()
		n := len(h.rec.events())
		start := time.Now()
		if err := os.Rename(filepath.Join(dir, from), filepath.Join(dir, to)); err != nil {
			t.Fatal(err)
		}
		h.rec.waitFor(t, "moved to "+to, func(got []string) bool {
			return len(got) > n && slices.Contains(got[n:], "ManifestAdded default/web-node1 "+to)
		})
		if d := time.Since(start); d > time.Second {
			t.Errorf("mv %s %s recorded after %v: a rename must not wait for the settle window", from, to, d)
		}
		time.Sleep(200 * time.Millisecond)
		got := h.since(n)
		want := []string{"ManifestRemoved default/web-node1 " + from, "ManifestAdded default/web-node1 " + to}
		if !slices.Equal(got, want) || h.rec.calls() != calls+1 {
			t.Fatalf("mv %s %s: events (in %d appends):\n%s\nwant in one append:\n%s", from, to, h.rec.calls()-calls, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

// knownWeb is what the log says after web.yaml in dir was added.
func knownWeb(t *testing.T, dir string) []Known {
	t.Helper()
	path := filepath.Join(dir, "web.yaml")
	raw := podYAML("web", "busybox:1.36")
	res, err := Parse([]byte(raw), ParseOptions{NodeName: "node1", Source: SourceFile, Path: path})
	if err != nil {
		t.Fatal(err)
	}
	return []Known{{Source: SourceFile, Path: path, ContentHash: res.ContentHash, Pod: res.Key, UID: res.UID}}
}

// TestMissingManifestPathIsUnavailableNotEmpty: a --pod-manifest-path that
// does not exist (not mounted yet at boot) is no listing at all: the source
// is recorded unavailable, its pods are kept and it does not claim to have
// synced. When the directory appears it is listed as usual.
func TestMissingManifestPathIsUnavailableNotEmpty(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "manifests")
	known := knownWeb(t, dir)
	h := startFileUntil(t, dir, known, "SourceUnavailable", hasLine("SourceUnavailable"), func(c *FileConfig) { c.CheckFrequency = 50 * time.Millisecond })
	quiet()
	if got := h.since(0); !slices.Equal(got, []string{"SourceUnavailable"}) {
		t.Fatalf("events for a missing manifest directory:\n%s\nwant only SourceUnavailable (pods kept, no SourceSynced)", strings.Join(got, "\n"))
	}
	un := h.rec.events()[0].Data.(*eventpb.SourceUnavailable)
	if un.Location != dir || !strings.Contains(un.Reason, dir) {
		t.Errorf("SourceUnavailable = %+v", un)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	renameInto(t, dir, "web.yaml", podYAML("web", "busybox:1.36"))
	renameInto(t, dir, "db.yaml", podYAML("db", "busybox:1.36"))
	h.rec.waitFor(t, "synced", hasLine("SourceSynced"))
	quiet()
	got := h.since(1)
	want := []string{"SourceAvailable", "ManifestAdded default/db-node1 db.yaml", "SourceSynced"}
	if !slices.Equal(got, want) {
		t.Errorf("events once the directory appeared:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestExistingEmptyDirectoryStillRemovesPods: only a listing that happened
// can remove pods, and an empty directory is one.
func TestExistingEmptyDirectoryStillRemovesPods(t *testing.T) {
	dir := manifestDir(t)
	h := startFile(t, dir, knownWeb(t, dir))
	if got, want := h.since(0), []string{"ManifestRemoved default/web-node1 web.yaml", "SourceSynced"}; !slices.Equal(got, want) {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestManifestDirectoryGoingAwayKeepsItsPods: a directory moved away
// briefly (config management replacing it, a remount) or for longer, or
// deleted with its files, removes nothing; when it is back, what is really
// gone is removed.
func TestManifestDirectoryGoingAwayKeepsItsPods(t *testing.T) {
	dir := manifestDir(t)
	write(t, filepath.Join(dir, "web.yaml"), podYAML("web", "busybox:1.36"))
	write(t, filepath.Join(dir, "db.yaml"), podYAML("db", "busybox:1.36"))
	h := startFile(t, dir, nil)
	n := len(h.rec.events())

	// Away for 200 ms.
	if err := os.Rename(dir, dir+".old"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if err := os.Rename(dir+".old", dir); err != nil {
		t.Fatal(err)
	}
	quiet()
	if got := h.since(n); countPrefix(got, "ManifestRemoved") != 0 || countPrefix(got, "ManifestAdded") != 0 {
		t.Fatalf("a directory away for 200 ms changed pods:\n%s", strings.Join(got, "\n"))
	}

	// Deleted with its files, for longer than the settle window.
	n = len(h.rec.events())
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	h.rec.waitFor(t, "unavailable", func(got []string) bool { return slices.Contains(got[n:], "SourceUnavailable") })
	quiet()
	if got := h.since(n); !slices.Equal(got, []string{"SourceUnavailable"}) {
		t.Fatalf("a deleted directory:\n%s\nwant only SourceUnavailable", strings.Join(got, "\n"))
	}

	// Back, without db.yaml: only db is gone.
	n = len(h.rec.events())
	tmp := dir + ".new"
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(tmp, "web.yaml"), podYAML("web", "busybox:1.36"))
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
	h.rec.waitFor(t, "db removed", func(got []string) bool { return slices.Contains(got[n:], "ManifestRemoved default/db-node1 db.yaml") })
	quiet()
	if got, want := h.since(n), []string{"SourceAvailable", "ManifestRemoved default/db-node1 db.yaml"}; !slices.Equal(got, want) {
		t.Errorf("directory back:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestDanglingSymlinkedManifestIsUnavailableNotRemoved: a manifest that is
// a symlink to a file not there (yet) is unreadable, not gone.
func TestDanglingSymlinkedManifestIsUnavailableNotRemoved(t *testing.T) {
	dir := manifestDir(t)
	target := filepath.Join(t.TempDir(), "mnt", "web.yaml")
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, target, podYAML("web", "busybox:1.36"))
	if err := os.Symlink(target, filepath.Join(dir, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	h := startFile(t, dir, nil, func(c *FileConfig) { c.CheckFrequency = 50 * time.Millisecond })
	n := len(h.rec.events())

	if err := os.Rename(target, target+".away"); err != nil {
		t.Fatal(err)
	}
	h.rec.waitFor(t, "unavailable", func(got []string) bool { return slices.Contains(got[n:], "SourceUnavailable") })
	quiet()
	if got := h.since(n); !slices.Equal(got, []string{"SourceUnavailable"}) {
		t.Fatalf("dangling symlink:\n%s\nwant only SourceUnavailable", strings.Join(got, "\n"))
	}
	if un := h.rec.events()[n].Data.(*eventpb.SourceUnavailable); un.Location != dir || !strings.Contains(un.Reason, "web.yaml") {
		t.Errorf("SourceUnavailable = %+v", un)
	}

	// A restart while it dangles keeps the pod too.
	known := knownFrom(h.rec.events())
	second := startFile(t, dir, known, func(c *FileConfig) { c.CheckFrequency = 50 * time.Millisecond })
	quiet()
	if got, want := second.since(0), []string{"SourceSynced", "SourceUnavailable"}; !slices.Equal(got, want) {
		t.Fatalf("restart with a dangling symlink:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	n = len(h.rec.events())
	if err := os.Rename(target+".away", target); err != nil {
		t.Fatal(err)
	}
	h.rec.waitFor(t, "available", func(got []string) bool { return slices.Contains(got[n:], "SourceAvailable") })
	quiet()
	if got := h.since(n); !slices.Equal(got, []string{"SourceAvailable"}) {
		t.Errorf("target back:\n%s\nwant only SourceAvailable", strings.Join(got, "\n"))
	}
}

// TestMissingManifestFileIsUnavailableNotRemoved: a single-file
// --pod-manifest-path follows the same rule as a directory: while it does
// not exist its pod stays; a file renamed into place is listed at once.
func TestMissingManifestFileIsUnavailableNotRemoved(t *testing.T) {
	dir := manifestDir(t)
	path := filepath.Join(dir, "web.yaml")
	h := startFileUntil(t, path, knownWeb(t, dir), "unavailable", hasLine("SourceUnavailable"))
	start := time.Now()
	renameInto(t, dir, "web.yaml", podYAML("web", "busybox:1.37"))
	h.rec.waitFor(t, "changed", hasLine("ManifestChanged default/web-node1 web.yaml"))
	if d := time.Since(start); d > time.Second {
		t.Errorf("a manifest file renamed into place was listed after %v", d)
	}
	if got, want := h.since(0), []string{"SourceUnavailable", "SourceAvailable", "ManifestChanged default/web-node1 web.yaml", "SourceSynced"}; !slices.Equal(got, want) {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	n := len(h.rec.events())
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	h.rec.waitFor(t, "unavailable", func(got []string) bool { return slices.Contains(got[n:], "SourceUnavailable") })
	quiet()
	if got := h.since(n); !slices.Equal(got, []string{"SourceUnavailable"}) {
		t.Errorf("manifest file deleted:\n%s\nwant only SourceUnavailable", strings.Join(got, "\n"))
	}
}

// TestTempFileRenamedOverAManifestIsOneChange: `sed -i` and many tools
// write a temporary file with an ordinary name next to the manifest and
// rename it over the manifest: one change, at once; the temporary name
// never provides a pod.
func TestTempFileRenamedOverAManifestIsOneChange(t *testing.T) {
	dir := manifestDir(t)
	path := filepath.Join(dir, "web.yaml")
	write(t, path, podYAML("web", "busybox:1.36"))
	h := startFile(t, dir, nil)
	n := len(h.rec.events())
	tmp := filepath.Join(dir, "sedAb12Xy")
	write(t, tmp, podYAML("web", "busybox:1.37"))
	start := time.Now()
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	h.rec.waitFor(t, "changed", hasLine("ManifestChanged default/web-node1 web.yaml"))
	if d := time.Since(start); d > DefaultSettleWindow/2 {
		t.Errorf("change recorded after %v: a rename must not wait", d)
	}
	quiet()
	if got := h.since(n); !slices.Equal(got, []string{"ManifestChanged default/web-node1 web.yaml"}) {
		t.Errorf("events:\n%s\nwant one change", strings.Join(got, "\n"))
	}
}

// TestAppearingDirectoryIsListedOnlyOnceSettled: a manifest directory that
// appears after it was missing may still be being filled (mkdir, then the
// files copied in). However it is found, even by the periodic re-list
// without a watch event, its first listing waits for the settle window, so
// the pods it is about to hold are not removed.
func TestAppearingDirectoryIsListedOnlyOnceSettled(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "manifests")
	rec := newRecorder()
	window := 100 * time.Millisecond
	src, err := NewFileSource(FileConfig{Path: dir, NodeName: "node1", Recorder: rec, Known: knownWeb(t, dir), SettleWindow: window, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.dropWatcher) // Run would own it
	ctx := context.Background()
	src.relist(ctx) // missing
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src.relist(ctx) // found empty: not listed yet
	write(t, filepath.Join(dir, "web.yaml"), podYAML("web", "busybox:1.36"))
	time.Sleep(window + 20*time.Millisecond)
	src.settled(ctx)
	got := summary(rec.events())
	if want := []string{"SourceUnavailable", "SourceAvailable", "SourceSynced"}; !slices.Equal(got, want) {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
