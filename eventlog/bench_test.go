package eventlog_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ledgerlet/ledgerlet/eventlog"
	"github.com/ledgerlet/ledgerlet/eventlog/eventlogtest"
)

// BenchmarkAppendDurable appends one event per commit, sequentially, each
// committed and fsynced before the next: the latency an intent pays.
func BenchmarkAppendDurable(b *testing.B) {
	l := openLog(b, filepath.Join(b.TempDir(), "ledger.db"), eventlog.Options{})
	mix := eventlogtest.NewMix(1)
	evs := make([]eventlog.Event, 1024)
	for i := range evs {
		evs[i] = mix.Next()
	}
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := l.Append(ctx, evs[i%len(evs)]); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
}

// BenchmarkAppendGroupCommit has many goroutines (64, and 256) appending one
// event per call, durably; their appends share commits. Each appender waits
// for its own commit, so at most that many events share one: with two
// fdatasyncs per bbolt commit the disk's commit rate bounds the figure.
// LEDGERLET_BENCH_APPENDERS runs one other count instead.
func BenchmarkAppendGroupCommit(b *testing.B) {
	counts := []int{64, 256}
	if v, err := strconv.Atoi(os.Getenv("LEDGERLET_BENCH_APPENDERS")); err == nil && v > 0 {
		counts = []int{v}
	}
	for _, appenders := range counts {
		b.Run(fmt.Sprintf("appenders=%d", appenders), func(b *testing.B) { benchGroupCommit(b, appenders) })
	}
}

func benchGroupCommit(b *testing.B, appenders int) {
	path := filepath.Join(b.TempDir(), "ledger.db")
	l := openLog(b, path, eventlog.Options{})
	mix := eventlogtest.NewMix(2)
	evs := make([]eventlog.Event, 4096)
	for i := range evs {
		evs[i] = mix.Next()
	}
	ctx := context.Background()
	var n atomic.Int64
	b.SetParallelism(max(1, appenders/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if _, err := l.Append(ctx, evs[int(i)%len(evs)]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/float64(commits(b, path)), "events/commit")
}

// commits counts the commits in a closed log: one time-index entry each.
func commits(b *testing.B, path string) int {
	b.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	n := 0
	_ = db.View(func(tx *bolt.Tx) error { n = tx.Bucket([]byte("time")).Stats().KeyN; return nil })
	return n
}

// BenchmarkStoredBytesPerEvent appends a realistic mix in small group
// commits and reports the file space used per event (bbolt's high-water
// mark, so free pages inside the file count; pre-allocated sparse tail does
// not) and the event records' own bytes per event.
func BenchmarkStoredBytesPerEvent(b *testing.B) {
	const events, batch = 100_000, 16
	var used, data float64
	for i := 0; i < b.N; i++ {
		path := filepath.Join(b.TempDir(), "ledger.db")
		l, err := eventlog.Open(path, eventlog.Options{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		mix := eventlogtest.NewMix(uint64(i))
		evs := make([]eventlog.Event, batch)
		for n := 0; n < events; n += batch {
			for j := range evs {
				evs[j] = mix.Next()
			}
			if _, err := l.Append(context.Background(), evs...); err != nil {
				b.Fatal(err)
			}
		}
		st, err := l.Stats()
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		_ = db.View(func(tx *bolt.Tx) error { used = float64(tx.Size()) / events; return nil })
		_ = db.Close()
		data = float64(st.DataBytes) / events
	}
	b.ReportMetric(used, "bytes/event")
	b.ReportMetric(data, "data-bytes/event")
}

// BenchmarkOpenReadWrite opens (read-write) and closes a log of
// LEDGERLET_BENCH_OPEN_EVENTS events (default 200k; use 1000000 for the
// figure in the docs). bbolt rebuilds its freelist at every read-write Open
// by walking the file (NoFreelistSync), so this grows with the log. The page
// cache is warm: the log was just written.
func BenchmarkOpenReadWrite(b *testing.B) {
	events := 200_000
	if v, err := strconv.Atoi(os.Getenv("LEDGERLET_BENCH_OPEN_EVENTS")); err == nil && v > 0 {
		events = v
	}
	path := filepath.Join(b.TempDir(), "ledger.db")
	l, err := eventlog.Open(path, eventlog.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	mix := eventlogtest.NewMix(7)
	evs := make([]eventlog.Event, 500)
	for n := 0; n < events; n += len(evs) {
		for j := range evs {
			evs[j] = mix.Next()
		}
		if _, err := l.Append(context.Background(), evs...); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l, err := eventlog.Open(path, eventlog.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(fi.Size())/(1<<20), "file-MiB")
}
