package sources

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

type fileHarness struct {
	t   *testing.T
	dir string
	rec *recorder
	src *FileSource
}

// startFile runs a file source on path until the test ends, and waits for
// its first listing.
func startFile(t *testing.T, path string, known []Known, tweak ...func(*FileConfig)) *fileHarness {
	t.Helper()
	return startFileUntil(t, path, known, "SourceSynced", hasLine("SourceSynced"), tweak...)
}

// startFileUntil runs a file source on path until the test ends, and waits
// until its events satisfy cond.
func startFileUntil(t *testing.T, path string, known []Known, what string, cond func([]string) bool, tweak ...func(*FileConfig)) *fileHarness {
	t.Helper()
	rec := newRecorder()
	cfg := FileConfig{Path: path, NodeName: "node1", Recorder: rec, Known: known, CheckFrequency: time.Hour, Logger: testLogger(t)}
	for _, f := range tweak {
		f(&cfg)
	}
	src, err := NewFileSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	h := &fileHarness{t: t, dir: path, rec: rec, src: src}
	rec.waitFor(t, what, cond)
	return h
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// renameInto writes content next to dir and renames it into place.
func renameInto(t *testing.T, dir, name, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(dir), "."+name+".tmp")
	write(t, tmp, content)
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// quiet waits long enough for any change settling in the default window
// to be appended.
func quiet() { time.Sleep(2*DefaultSettleWindow + 100*time.Millisecond) }

func manifestDir(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "manifests")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestColdStartListsInLexicalOrderThenSyncs(t *testing.T) {
	dir := manifestDir(t)
	write(t, filepath.Join(dir, "b.yaml"), podYAML("b", "busybox:1.36"))
	write(t, filepath.Join(dir, "a.yaml"), podYAML("a", "busybox:1.36"))
	h := startFile(t, dir, nil)
	got := summary(h.rec.events())
	want := []string{"ManifestAdded default/a-node1 a.yaml", "ManifestAdded default/b-node1 b.yaml", "SourceSynced"}
	if !slices.Equal(got, want) || h.rec.calls() != 1 {
		t.Errorf("events (in %d appends):\n%s\nwant one append of:\n%s", h.rec.calls(), strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	ev := h.rec.events()[0]
	added := ev.Data.(*eventpb.ManifestAdded)
	raw, _ := os.ReadFile(filepath.Join(dir, "a.yaml"))
	if len(ev.Blobs) != 1 || string(ev.Blobs[0]) != string(raw) || added.ContentHash != sha256Hex(raw) || added.UidAlgorithm != "v1" {
		t.Errorf("ManifestAdded does not carry the raw bytes and their hash: %+v", added)
	}
	synced := h.rec.events()[2].Data.(*eventpb.SourceSynced)
	if synced.Manifests != 2 || synced.Location != dir {
		t.Errorf("SourceSynced = %+v", synced)
	}
}

func TestEditorArtefactsAreIgnored(t *testing.T) {
	dir := manifestDir(t)
	h := startFile(t, dir, nil, func(c *FileConfig) { c.CheckFrequency = 20 * time.Millisecond })
	for _, name := range []string{".web.yaml", "web.yaml~", ".web.yaml.swp", "web.yaml.swo", "web.yaml.swx", "4913",
		"#web.yaml#", ".#web.yaml", "web.yaml.bak", "web.yaml.orig", "web.yaml.tmp", "web.yaml.dpkg-new",
		"web.yaml.rpmnew", "web.yaml.rpmsave"} {
		write(t, filepath.Join(dir, name), podYAML("artefact", "busybox:1.36"))
	}
	if err := os.Mkdir(filepath.Join(dir, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "subdir", "nested.yaml"), podYAML("nested", "busybox:1.36"))
	renameInto(t, dir, "web.yaml", podYAML("web", "busybox:1.36"))
	h.rec.waitFor(t, "web added", hasLine("ManifestAdded default/web-node1 web.yaml"))
	quiet() // several re-lists
	got := summary(h.rec.events())
	if want := []string{"SourceSynced", "ManifestAdded default/web-node1 web.yaml"}; !slices.Equal(got, want) {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestChunkedWriteYieldsOneVersion(t *testing.T) {
	dir := manifestDir(t)
	h := startFile(t, dir, nil)
	content := podYAML("chunked", "busybox:1.36")
	f, err := os.OpenFile(filepath.Join(dir, "chunked.yaml"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	// Cut mid-line, with pauses shorter than the settle window.
	for _, chunk := range []string{content[:7], content[7:40], content[40:90], content[90:]} {
		if _, err := f.WriteString(chunk); err != nil {
			t.Fatal(err)
		}
		time.Sleep(12 * time.Millisecond)
	}
	f.Close()
	h.rec.waitFor(t, "added", hasLine("ManifestAdded default/chunked-node1 chunked.yaml"))
	quiet()
	got := summary(h.rec.events())
	if want := []string{"SourceSynced", "ManifestAdded default/chunked-node1 chunked.yaml"}; !slices.Equal(got, want) {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if hash := h.rec.events()[1].Data.(*eventpb.ManifestAdded).ContentHash; hash != sha256Hex([]byte(content)) {
		t.Errorf("added a version other than the final content")
	}
}

func TestInPlaceRewriteInChunksYieldsOneChange(t *testing.T) {
	dir := manifestDir(t)
	path := filepath.Join(dir, "web.yaml")
	write(t, path, podYAML("web", "busybox:1.36"))
	h := startFile(t, dir, nil)
	content := podYAML("web", "busybox:1.37")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	for _, chunk := range []string{content[:50], content[50:]} {
		f.WriteString(chunk)
		time.Sleep(15 * time.Millisecond)
	}
	f.Close()
	h.rec.waitFor(t, "changed", hasLine("ManifestChanged default/web-node1 web.yaml"))
	quiet()
	got := summary(h.rec.events())
	if countPrefix(got, "ManifestChanged") != 1 || countPrefix(got, "ManifestRejected") != 0 || countPrefix(got, "ManifestRemoved") != 0 {
		t.Errorf("events:\n%s", strings.Join(got, "\n"))
	}
}

func TestAtomicRenameIsAppliedAtOnce(t *testing.T) {
	dir := manifestDir(t)
	h := startFile(t, dir, nil, func(c *FileConfig) { c.SettleWindow = 2 * time.Second })
	start := time.Now()
	renameInto(t, dir, "web.yaml", podYAML("web", "busybox:1.36"))
	h.rec.waitFor(t, "added", hasLine("ManifestAdded default/web-node1 web.yaml"))
	if d := time.Since(start); d > time.Second {
		t.Errorf("rename applied after %v: it waited for the settle window", d)
	}
	// Replacing by rename is a change, at once too.
	start = time.Now()
	renameInto(t, dir, "web.yaml", podYAML("web", "busybox:1.37"))
	h.rec.waitFor(t, "changed", hasLine("ManifestChanged default/web-node1 web.yaml"))
	if d := time.Since(start); d > time.Second {
		t.Errorf("replacing rename applied after %v", d)
	}
	ch := h.rec.events()[2].Data.(*eventpb.ManifestChanged)
	if ch.PreviousUid == ch.Uid || ch.PreviousContentHash == "" {
		t.Errorf("ManifestChanged lacks the previous version: %+v", ch)
	}
}

func TestBadEditKeepsLastGoodSpec(t *testing.T) {
	dir := manifestDir(t)
	path := filepath.Join(dir, "web.yaml")
	write(t, path, podYAML("web", "busybox:1.36"))
	h := startFile(t, dir, nil, func(c *FileConfig) { c.CheckFrequency = 20 * time.Millisecond })
	bad := strings.Replace(podYAML("web", "busybox:1.36"), "name: main", "name: Main", 1)
	write(t, path, bad)
	h.rec.waitFor(t, "rejected", hasLine("ManifestRejected default/web-node1 web.yaml"))
	quiet() // several re-lists
	got := summary(h.rec.events())
	want := []string{"ManifestAdded default/web-node1 web.yaml", "SourceSynced", "ManifestRejected default/web-node1 web.yaml"}
	if !slices.Equal(got, want) {
		t.Fatalf("events:\n%s\nwant (no removal, one rejection across re-lists):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	rej := h.rec.events()[2].Data.(*eventpb.ManifestRejected)
	if !strings.Contains(rej.Reason, `spec.containers[0].name: Invalid value: "Main"`) || !strings.Contains(rej.Reason, path) {
		t.Errorf("reason %q does not name the file and the field", rej.Reason)
	}
	// Fixing it is a change from the last good version.
	write(t, path, podYAML("web", "busybox:1.37"))
	h.rec.waitFor(t, "changed", hasLine("ManifestChanged default/web-node1 web.yaml"))
	// Unparseable garbage is rejected too, with nothing removed.
	write(t, path, "{{{")
	got = h.rec.waitFor(t, "second rejection", func(g []string) bool { return countPrefix(g, "ManifestRejected") == 2 })
	quiet()
	if countPrefix(summary(h.rec.events()), "ManifestRemoved") != 0 {
		t.Errorf("a bad edit removed the pod:\n%s", strings.Join(got, "\n"))
	}
}

func TestDuplicateNamesFirstFileKeepsThePod(t *testing.T) {
	dir := manifestDir(t)
	write(t, filepath.Join(dir, "kube-apiserver.yaml"), podYAML("kube-apiserver", "busybox:1.36"))
	write(t, filepath.Join(dir, "kube-apiserver.yaml.backup"), podYAML("kube-apiserver", "busybox:1.35"))
	h := startFile(t, dir, nil)
	got := summary(h.rec.events())
	want := []string{
		"ManifestAdded default/kube-apiserver-node1 kube-apiserver.yaml",
		"ManifestRejected default/kube-apiserver-node1 kube-apiserver.yaml.backup",
		"SourceSynced",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	reason := h.rec.events()[1].Data.(*eventpb.ManifestRejected).Reason
	if !strings.Contains(reason, filepath.Join(dir, "kube-apiserver.yaml")) || !strings.Contains(reason, "kube-apiserver.yaml.backup") {
		t.Errorf("reason %q does not name both files", reason)
	}

	// A later file with a taken name is rejected; the holder stays.
	renameInto(t, dir, "a-copy.yaml", podYAML("kube-apiserver", "busybox:1.34"))
	h.rec.waitFor(t, "late duplicate", hasLine("ManifestRejected default/kube-apiserver-node1 a-copy.yaml"))

	// When the holder goes, the next in lexical order takes over.
	if err := os.Remove(filepath.Join(dir, "kube-apiserver.yaml")); err != nil {
		t.Fatal(err)
	}
	h.rec.waitFor(t, "takeover", hasLine("ManifestAdded default/kube-apiserver-node1 a-copy.yaml"))
	quiet()
	got = summary(h.rec.events())[4:]
	want = []string{
		"ManifestRemoved default/kube-apiserver-node1 kube-apiserver.yaml",
		"ManifestAdded default/kube-apiserver-node1 a-copy.yaml",
	}
	if !slices.Equal(got, want) {
		t.Errorf("takeover events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestFileRemovedRemovesPod(t *testing.T) {
	dir := manifestDir(t)
	path := filepath.Join(dir, "web.yaml")
	write(t, path, podYAML("web", "busybox:1.36"))
	// A removal waits only for a quick replacement (GoneSettleWindow), not
	// for the window a file being written gets.
	h := startFile(t, dir, nil, func(c *FileConfig) { c.SettleWindow = 2 * time.Second })
	start := time.Now()
	os.Remove(path)
	got := h.rec.waitFor(t, "removed", hasLine("ManifestRemoved default/web-node1 web.yaml"))
	if d := time.Since(start); d > time.Second {
		t.Errorf("removal recorded after %v: it waited for the settle window of a write", d)
	}
	rm := h.rec.events()[2].Data.(*eventpb.ManifestRemoved)
	if rm.Uid == "" || rm.Path != path {
		t.Errorf("removal %+v; events %v", rm, got)
	}
}

func TestRemoveThenRewriteDoesNotBlink(t *testing.T) {
	dir := manifestDir(t)
	path := filepath.Join(dir, "web.yaml")
	write(t, path, podYAML("web", "busybox:1.36"))
	h := startFile(t, dir, nil)
	// A script's `rm web.yaml; cp new.yaml web.yaml`.
	os.Remove(path)
	time.Sleep(10 * time.Millisecond)
	write(t, path, podYAML("web", "busybox:1.37"))
	h.rec.waitFor(t, "changed", hasLine("ManifestChanged default/web-node1 web.yaml"))
	quiet()
	if got := summary(h.rec.events()); countPrefix(got, "ManifestRemoved") != 0 || countPrefix(got, "ManifestRejected") != 0 {
		t.Errorf("rm then cp made the pod blink:\n%s", strings.Join(got, "\n"))
	}
}

func TestEditorReplaceDoesNotBlink(t *testing.T) {
	dir := manifestDir(t)
	path := filepath.Join(dir, "web.yaml")
	write(t, path, podYAML("web", "busybox:1.36"))
	h := startFile(t, dir, nil)
	// vim with backupcopy=no: rename the original away, write a new file,
	// delete the backup.
	os.Rename(path, path+"~")
	write(t, filepath.Join(dir, "4913"), "")
	os.Remove(filepath.Join(dir, "4913"))
	write(t, path, podYAML("web", "busybox:1.37"))
	os.Remove(path + "~")
	h.rec.waitFor(t, "changed", hasLine("ManifestChanged default/web-node1 web.yaml"))
	quiet()
	if got := summary(h.rec.events()); countPrefix(got, "ManifestRemoved") != 0 || countPrefix(got, "ManifestRejected") != 0 {
		t.Errorf("editor save made the pod blink:\n%s", strings.Join(got, "\n"))
	}
}

func TestDirectoryAppearingLater(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "manifests")
	h := startFileUntil(t, dir, nil, "unavailable", hasLine("SourceUnavailable"))
	if got := summary(h.rec.events()); !slices.Equal(got, []string{"SourceUnavailable"}) {
		t.Fatalf("events for a missing directory: %v", got)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	renameInto(t, dir, "web.yaml", podYAML("web", "busybox:1.36"))
	got := h.rec.waitFor(t, "added", hasLine("ManifestAdded default/web-node1 web.yaml"))
	if want := []string{"SourceUnavailable", "SourceAvailable", "ManifestAdded default/web-node1 web.yaml", "SourceSynced"}; !slices.Equal(got, want) {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// And files written after the directory appeared are watched.
	write(t, filepath.Join(dir, "db.yaml"), podYAML("db", "busybox:1.36"))
	h.rec.waitFor(t, "db added", hasLine("ManifestAdded default/db-node1 db.yaml"))
}

func TestSingleFilePath(t *testing.T) {
	dir := manifestDir(t)
	path := filepath.Join(dir, "only.yaml")
	write(t, path, podYAML("only", "busybox:1.36"))
	write(t, filepath.Join(dir, "other.yaml"), podYAML("other", "busybox:1.36"))
	h := startFile(t, path, nil)
	renameInto(t, dir, "only.yaml", podYAML("only", "busybox:1.37"))
	write(t, filepath.Join(dir, "other.yaml"), podYAML("other", "busybox:1.37"))
	h.rec.waitFor(t, "changed", hasLine("ManifestChanged default/only-node1 only.yaml"))
	quiet()
	got := summary(h.rec.events())
	want := []string{"ManifestAdded default/only-node1 only.yaml", "SourceSynced", "ManifestChanged default/only-node1 only.yaml"}
	if !slices.Equal(got, want) {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestRelistCatchesWhatWatchesMissed(t *testing.T) {
	// No Run, so no watcher: only re-lists see the directory.
	dir := manifestDir(t)
	rec := newRecorder()
	src, err := NewFileSource(FileConfig{Path: dir, NodeName: "node1", Recorder: rec, Logger: testLogger(t), SettleWindow: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	relist := func() {
		src.relist(ctx)
		time.Sleep(40 * time.Millisecond)
		src.settled(ctx)
	}
	relist()
	write(t, filepath.Join(dir, "web.yaml"), podYAML("web", "busybox:1.36"))
	relist()
	relist()
	os.Remove(filepath.Join(dir, "web.yaml"))
	relist()
	got := summary(rec.events())
	want := []string{"SourceSynced", "ManifestAdded default/web-node1 web.yaml", "ManifestRemoved default/web-node1 web.yaml"}
	if !slices.Equal(got, want) {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestRestartWithKnownIsSilent(t *testing.T) {
	dir := manifestDir(t)
	write(t, filepath.Join(dir, "a.yaml"), podYAML("a", "busybox:1.36"))
	write(t, filepath.Join(dir, "b.yaml"), podYAML("b", "busybox:1.36"))
	write(t, filepath.Join(dir, "bad.yaml"), "metadata: {name: bad}\n")
	write(t, filepath.Join(dir, "dup.yaml"), podYAML("a", "busybox:1.35"))
	write(t, filepath.Join(dir, "z.yaml"), podYAML("z", "busybox:1.36"))
	first := startFile(t, dir, nil)
	// An invalid edit of a held pod before the restart.
	write(t, filepath.Join(dir, "z.yaml"), "{{{")
	first.rec.waitFor(t, "z rejected", hasLine("ManifestRejected default/z-node1 z.yaml"))
	known := knownFrom(first.rec.events())

	second := startFile(t, dir, known)
	quiet()
	if got := summary(second.rec.events()); !slices.Equal(got, []string{"SourceSynced"}) {
		t.Fatalf("restart appended:\n%s", strings.Join(got, "\n"))
	}

	// Changes made while the agent was down are caught up on restart.
	os.Remove(filepath.Join(dir, "a.yaml"))
	write(t, filepath.Join(dir, "b.yaml"), podYAML("b", "busybox:1.37"))
	third := startFile(t, dir, known)
	got := summary(third.rec.events())
	want := []string{
		"ManifestRemoved default/a-node1 a.yaml",
		"ManifestChanged default/b-node1 b.yaml",
		"ManifestAdded default/a-node1 dup.yaml",
		"SourceSynced",
	}
	if !slices.Equal(got, want) {
		t.Errorf("catch-up events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestFailedAppendIsRetried(t *testing.T) {
	dir := manifestDir(t)
	rec := newRecorder()
	rec.setFail(errors.New("disk full"))
	write(t, filepath.Join(dir, "web.yaml"), podYAML("web", "busybox:1.36"))
	src, err := NewFileSource(FileConfig{Path: dir, NodeName: "node1", Recorder: rec, CheckFrequency: 30 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(100 * time.Millisecond)
	rec.setFail(nil)
	got := rec.waitFor(t, "synced after recovery", hasLine("SourceSynced"))
	if want := []string{"ManifestAdded default/web-node1 web.yaml", "SourceSynced"}; !slices.Equal(got, want) {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestReconcileFilesSwapAndTakeover(t *testing.T) {
	obs := func(name, path string) *observation {
		res, err := Parse([]byte(podYAML(name, "busybox:1.36")), ParseOptions{NodeName: "n", Source: SourceFile, Path: path})
		if err != nil {
			t.Fatal(err)
		}
		return &observation{hash: res.ContentHash, res: res, raw: res.Raw}
	}
	l := newLedger(SourceFile, nil, nil)
	evs, l := reconcileFiles(l, map[string]*observation{"/m/1": obs("x", "/m/1"), "/m/2": obs("why", "/m/2"), "/m/3": obs("x", "/m/3")})
	if got := summary(evs); !slices.Equal(got, []string{"ManifestAdded default/x-n 1", "ManifestAdded default/why-n 2", "ManifestRejected default/x-n 3"}) {
		t.Fatalf("first: %v", got)
	}
	// 1 and 2 swap names in one listing.
	evs, l = reconcileFiles(l, map[string]*observation{"/m/1": obs("why", "/m/1"), "/m/2": obs("x", "/m/2"), "/m/3": obs("x", "/m/3")})
	want := []string{
		"ManifestRemoved default/why-n 2", "ManifestRemoved default/x-n 1",
		"ManifestAdded default/why-n 1", "ManifestAdded default/x-n 2",
		// /m/3 stays rejected with the same content: not recorded again.
	}
	if got := summary(evs); !slices.Equal(got, want) {
		t.Fatalf("swap: %v\nwant %v", got, want)
	}
	// The same view again appends nothing.
	evs, _ = reconcileFiles(l, map[string]*observation{"/m/1": obs("why", "/m/1"), "/m/2": obs("x", "/m/2"), "/m/3": obs("x", "/m/3")})
	if len(evs) != 0 {
		t.Errorf("steady state appended %v", summary(evs))
	}
}
