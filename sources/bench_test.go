package sources

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ledgerlet/ledgerlet/eventlog"
)

// durableRecorder opens a real event log in dir. If the log cannot be opened
// (or is not implemented yet) it falls back to fsyncRecorder, and says so.
func durableRecorder(b *testing.B, dir string) Recorder {
	b.Helper()
	l, err := func() (l *eventlog.Log, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("eventlog.Open panicked: %v", r)
			}
		}()
		return eventlog.Open(filepath.Join(dir, "ledger.db"), eventlog.Options{})
	}()
	if err != nil {
		b.Logf("using an fsync-per-append file instead of the event log: %v", err)
		f, err := os.Create(filepath.Join(dir, "events.bin"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { f.Close() })
		return &fsyncRecorder{f: f}
	}
	b.Cleanup(func() { l.Close() })
	return l
}

// fsyncRecorder approximates a durable log: encode, write, fsync.
type fsyncRecorder struct{ f *os.File }

func (r *fsyncRecorder) Append(_ context.Context, evs ...eventlog.Event) ([]uint64, error) {
	for _, ev := range evs {
		rec, err := eventlog.Encode(ev)
		if err != nil {
			return nil, err
		}
		if _, err := r.f.Write(rec); err != nil {
			return nil, err
		}
		for _, blob := range ev.Blobs {
			if _, err := r.f.Write(blob); err != nil {
				return nil, err
			}
		}
	}
	return make([]uint64, len(evs)), r.f.Sync()
}

// timedRecorder reports when each Append returned.
type timedRecorder struct {
	inner    Recorder
	returned chan time.Time
}

func (r *timedRecorder) Append(ctx context.Context, evs ...eventlog.Event) ([]uint64, error) {
	seqs, err := r.inner.Append(ctx, evs...)
	r.returned <- time.Now()
	return seqs, err
}

// BenchmarkRenameToDurable measures the latency from an atomic rename into
// the watched directory to the Append that records it returning (durable).
func BenchmarkRenameToDurable(b *testing.B) {
	root := b.TempDir()
	dir := filepath.Join(root, "manifests")
	staging := filepath.Join(root, "staging")
	for _, d := range []string{dir, staging} {
		if err := os.Mkdir(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	rec := &timedRecorder{inner: durableRecorder(b, root), returned: make(chan time.Time, 1)}
	src, err := NewFileSource(FileConfig{Path: dir, NodeName: "node1", Recorder: rec, CheckFrequency: time.Hour, Logger: discardLogger()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-rec.returned // SourceSynced

	var lat []time.Duration
	i := 0
	for b.Loop() {
		name := fmt.Sprintf("pod%d.yaml", i)
		tmp := filepath.Join(staging, name)
		if err := os.WriteFile(tmp, []byte(podYAML(fmt.Sprintf("pod%d", i), "busybox:1.36")), 0o644); err != nil {
			b.Fatal(err)
		}
		i++
		start := time.Now()
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			b.Fatal(err)
		}
		select {
		case at := <-rec.returned:
			lat = append(lat, at.Sub(start))
		case <-time.After(10 * time.Second):
			b.Fatal("rename not recorded")
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkRelist1000Unchanged re-lists 1,000 unchanged manifests; it must
// append nothing.
func BenchmarkRelist1000Unchanged(b *testing.B) {
	dir := b.TempDir()
	for i := range 1000 {
		name := fmt.Sprintf("pod%04d", i)
		if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(podYAML(name, "busybox:1.36")), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	rec := newRecorder()
	src, err := NewFileSource(FileConfig{Path: dir, NodeName: "node1", Recorder: rec, Logger: discardLogger()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	src.relist(ctx)
	if n := len(rec.events()); n != 1001 {
		b.Fatalf("first listing appended %d events, want 1001", n)
	}
	calls := rec.calls()
	b.ReportAllocs()
	for b.Loop() {
		src.relist(ctx)
	}
	if rec.calls() != calls || len(src.pending) != 0 {
		b.Fatalf("a re-list of unchanged manifests appended %d times, %d pending", rec.calls()-calls, len(src.pending))
	}
}
