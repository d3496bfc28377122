package containerlogs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector"
)

// fakeRuntime writes a container's log as containerd does: to an open file
// that a reopen replaces with a new one at the path.
type fakeRuntime struct {
	mu      sync.Mutex
	path    string
	f       *os.File
	reopens int
	fail    error
	n       int
}

func newFakeRuntime(t *testing.T, path string) *fakeRuntime {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	r := &fakeRuntime{path: path}
	if err := r.open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.f.Close() })
	return r
}

func (r *fakeRuntime) open() error {
	f, err := os.OpenFile(r.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	if r.f != nil {
		r.f.Close()
	}
	r.f = f
	return nil
}

func (r *fakeRuntime) ReopenContainerLog(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.reopens++
	return r.open()
}

// write appends n numbered messages of about size bytes each.
func (r *fakeRuntime) write(t *testing.T, n, size int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for range n {
		r.n++
		msg := fmt.Sprintf("line %06d %s", r.n, strings.Repeat("x", max(size-40, 0)))
		if _, err := fmt.Fprintf(r.f, "2026-01-02T15:04:05.000000000Z stdout F %s\n", msg); err != nil {
			t.Fatal(err)
		}
	}
}

func logFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func stepClock() func() time.Time {
	t := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	return func() time.Time {
		t = t.Add(10 * time.Second)
		return t
	}
}

func TestContainerLogsAreRotatedAndBounded(t *testing.T) {
	root := t.TempDir()
	live, err := Path(root, "default", "web-node1", "uid-1", "app", 0)
	if err != nil {
		t.Fatal(err)
	}
	rt := newFakeRuntime(t, live)
	r := &Rotator{Runtime: rt, Root: root, MaxSize: 4096, MaxFiles: 3, Logger: quietLogger(), Now: stepClock()}
	target := Target{Pod: "default/web-node1", ContainerID: "c1", Path: live}
	for round := range 6 {
		rt.write(t, 50, 100) // 5000 bytes: over MaxSize each round
		if err := r.Rotate(context.Background(), target); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	files := logFiles(t, filepath.Dir(live))
	if len(files) != 3 {
		t.Fatalf("files %v: want 3 (MaxFiles), the live one included", files)
	}
	// The live log, the older rotated one gzipped, the newest plain.
	if got, want := strings.Join(files, " "), "0.log 0.log.20260102-150455.gz 0.log.20260102-150505"; got != want {
		t.Fatalf("files %s, want %s", got, want)
	}
	if rt.reopens != 6 {
		t.Fatalf("reopens = %d, want one per rotation (6)", rt.reopens)
	}
	// After the last rotation, the live file is the runtime's new one.
	rt.write(t, 1, 100)
	var buf bytes.Buffer
	if err := Copy(context.Background(), &buf, live, ReadOptions{Tail: -1}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	// Two rotated files of 50 lines each and the one line in the live file.
	if len(lines) != 101 || !strings.HasPrefix(lines[0], "line 000201 ") || !strings.HasPrefix(lines[100], "line 000301 ") {
		t.Fatalf("read %d lines, first %.12q last %.12q; want lines 201..301 in order", len(lines), lines[0], lines[len(lines)-1])
	}
}

func TestSmallLogsAreNotRotated(t *testing.T) {
	root := t.TempDir()
	live, _ := Path(root, "default", "web-node1", "uid-1", "app", 0)
	rt := newFakeRuntime(t, live)
	rt.write(t, 10, 100)
	r := &Rotator{Runtime: rt, Root: root, MaxSize: 4096, MaxFiles: 3, Logger: quietLogger()}
	if err := r.Rotate(context.Background(), Target{ContainerID: "c1", Path: live}); err != nil {
		t.Fatal(err)
	}
	if files := logFiles(t, filepath.Dir(live)); len(files) != 1 || rt.reopens != 0 {
		t.Fatalf("files %v, reopens %d: a log under MaxSize is left alone", files, rt.reopens)
	}
}

func TestFailedReopenPutsTheLogBack(t *testing.T) {
	root := t.TempDir()
	live, _ := Path(root, "default", "web-node1", "uid-1", "app", 2)
	rt := newFakeRuntime(t, live)
	rt.write(t, 50, 100)
	rt.fail = errors.New("container is not running")
	r := &Rotator{Runtime: rt, Root: root, MaxSize: 4096, MaxFiles: 3, Logger: quietLogger(), Now: stepClock()}
	err := r.Rotate(context.Background(), Target{ContainerID: "c1", Path: live})
	if err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("Rotate = %v, want the reopen's error", err)
	}
	if files := logFiles(t, filepath.Dir(live)); len(files) != 1 || files[0] != "2.log" {
		t.Fatalf("files %v: want only 2.log, renamed back for the next try", files)
	}
	rt.fail = nil
	if err := r.Rotate(context.Background(), Target{ContainerID: "c1", Path: live}); err != nil {
		t.Fatal(err)
	}
	if files := logFiles(t, filepath.Dir(live)); len(files) != 2 {
		t.Fatalf("files %v: want the live log and one rotated after the retry", files)
	}
}

func TestMissingLiveLogIsReopened(t *testing.T) {
	root := t.TempDir()
	live, _ := Path(root, "default", "web-node1", "uid-1", "app", 0)
	rt := newFakeRuntime(t, live)
	rt.write(t, 1, 100)
	// An agent that died between rename and reopen.
	if err := os.Rename(live, live+".20260102-150405"); err != nil {
		t.Fatal(err)
	}
	r := &Rotator{Runtime: rt, Root: root, MaxSize: 4096, MaxFiles: 3, Logger: quietLogger()}
	if err := r.Rotate(context.Background(), Target{ContainerID: "c1", Path: live}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(live); err != nil || rt.reopens != 1 {
		t.Fatalf("live log %v after %d reopens: want it made again by a reopen", err, rt.reopens)
	}
}

func TestInterruptedCompressionIsCleanedUp(t *testing.T) {
	root := t.TempDir()
	live, _ := Path(root, "default", "web-node1", "uid-1", "app", 0)
	rt := newFakeRuntime(t, live)
	rt.write(t, 50, 100)
	dir := filepath.Dir(live)
	for name, content := range map[string]string{
		"0.log.20260102-150000":     "2026-01-02T15:00:00Z stdout F a\n",
		"0.log.20260102-150000.gz":  "", // completed below
		"0.log.20260102-150100.tmp": "half",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	// A complete .gz of the first file.
	os.Remove(filepath.Join(dir, "0.log.20260102-150000.gz"))
	if err := compress(filepath.Join(dir, "0.log.20260102-150000")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "0.log.20260102-150000"), []byte("2026-01-02T15:00:00Z stdout F a\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	files, err := Files(live)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || !strings.HasSuffix(files[0], "150000.gz") {
		t.Fatalf("Files = %v: want the .gz once and the live log", files)
	}
	r := &Rotator{Runtime: rt, Root: root, MaxSize: 4096, MaxFiles: 5, Logger: quietLogger(), Now: stepClock()}
	if err := r.Rotate(context.Background(), Target{ContainerID: "c1", Path: live}); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(logFiles(t, dir), " ")
	if want := "0.log 0.log.20260102-150000.gz 0.log.20260102-150415"; got != want {
		t.Fatalf("files %s, want %s", got, want)
	}
}

func TestRemoveInstanceTakesRotatedFiles(t *testing.T) {
	root := t.TempDir()
	live, _ := Path(root, "default", "web-node1", "uid-1", "app", 1)
	dir := filepath.Dir(live)
	os.MkdirAll(dir, 0o755)
	for _, n := range []string{"0.log", "1.log", "1.log.20260102-150405.gz", "1.log.20260102-150415", "10.log"} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o640)
	}
	if err := RemoveInstance(live); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(logFiles(t, dir), " "); got != "0.log 10.log" {
		t.Fatalf("left %s, want the other instances' logs (0.log 10.log)", got)
	}
}

func TestRemovePodTakesOnlyThatUIDsDirectory(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"default_web-node1_uid-1", "default_web-node1_uid-12", "kube-system_etcd_uid-1x", "default_other_uid-2"} {
		os.MkdirAll(filepath.Join(root, d, "app"), 0o755)
	}
	if err := RemovePod(root, "uid-1"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(logFiles(t, root), " "); got != "default_other_uid-2 default_web-node1_uid-12 kube-system_etcd_uid-1x" {
		t.Fatalf("left %s", got)
	}
	if err := RemovePod(filepath.Join(root, "missing"), "uid-1"); err != nil {
		t.Fatalf("a missing root: %v", err)
	}
	if err := RemovePod(root, "../x"); err == nil {
		t.Fatal("a UID that is not a plain name was accepted")
	}
}

// stateOf is a projection holding fixed pods.
type stateOf struct{ s *projector.State }

func (p stateOf) Read(fn func(*projector.State)) { fn(p.s) }

func TestRotatorRotatesRunningContainersEveryPeriod(t *testing.T) {
	defer goleak.VerifyNone(t)
	root := t.TempDir()
	live, _ := Path(root, "default", "web-node1", "uid-1", "app", 3)
	rt := newFakeRuntime(t, live)
	rt.write(t, 50, 100)
	exited, _ := Path(root, "default", "web-node1", "uid-1", "app", 2)
	os.WriteFile(exited, bytes.Repeat([]byte("x"), 5000), 0o640)
	s := projector.New()
	s.Pods["default/web-node1"] = &projector.Pod{Namespace: "default", Name: "web-node1", UID: "uid-1",
		Containers: map[string]*projector.Container{
			"c3": {ID: "c3", UID: "uid-1", Name: "app", Attempt: 3, State: pb.StateRunning},
			"c2": {ID: "c2", UID: "uid-1", Name: "app", Attempt: 2, State: pb.StateExited},
		}}
	r := &Rotator{Runtime: rt, State: stateOf{s}, Root: root, MaxSize: 4096, MaxFiles: 3, Period: 10 * time.Millisecond, Logger: quietLogger()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		rt.mu.Lock()
		n := rt.reopens
		rt.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no rotation within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := logFiles(t, filepath.Dir(live))
	if len(got) != 3 || got[0] != "2.log" || got[1] != "3.log" || !strings.HasPrefix(got[2], "3.log.") {
		t.Fatalf("files %v: want the running instance's log rotated and the exited one's untouched", got)
	}
}

// BenchmarkCompressRotatedFile is the cost of gzipping one rotated file of
// the default --container-log-max-size (10Mi) of CRI lines, paid once per
// rotation by the log rotation actor.
func BenchmarkCompressRotatedFile(b *testing.B) {
	dir := b.TempDir()
	line := "2026-01-02T15:04:05.123456789Z stdout F level=info msg=\"request served\" path=/healthz status=200 took=1.2ms\n"
	chunk := []byte(strings.Repeat(line, 10<<20/len(line)))
	name := filepath.Join(dir, "0.log.20260102-150405")
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		b.StopTimer()
		if err := os.WriteFile(name, chunk, 0o640); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := compress(name); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := os.Remove(name + ".gz"); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
