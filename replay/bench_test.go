package replay_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ledgerlet/ledgerlet/eventlog"
	"github.com/ledgerlet/ledgerlet/projector"
	"github.com/ledgerlet/ledgerlet/projector/projectortest"
	"github.com/ledgerlet/ledgerlet/replay"
)

const benchEvents = 1_000_000

// fixture builds (once per machine, cached in the temp dir) a log of n
// realistic events, with a snapshot every snapEvery events when snapEvery > 0.
func fixture(b *testing.B, n int, snapEvery int) string {
	b.Helper()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("ledgerlet-bench-v2-%d-%d.db", n, snapEvery))
	if l, err := eventlog.Open(path, eventlog.Options{}); err == nil {
		last := l.LastSeq()
		l.Close()
		if last == uint64(n) {
			return path
		}
	}
	os.Remove(path)
	start := time.Now()
	l, err := eventlog.Open(path, eventlog.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	gen := projectortest.New(42, 30)
	st := projector.New()
	const batch = 5000
	for done := 0; done < n; done += batch {
		evs := gen.Events(batch)
		if _, err := l.Append(ctx, evs...); err != nil {
			b.Fatal(err)
		}
		if snapEvery > 0 {
			for i, e := range evs {
				e.Seq = uint64(done + i + 1)
				st.Apply(e)
				if e.Seq%uint64(snapEvery) == 0 {
					enc, err := st.Canonical()
					if err != nil {
						b.Fatal(err)
					}
					if err := l.SaveSnapshot(ctx, eventlog.Snapshot{Seq: e.Seq, State: enc}); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("built %s (%d events) in %s", path, n, time.Since(start))
	return path
}

// BenchmarkReplay1M reads, decodes and folds 1M realistic events from the log
// (no snapshot): the cost of a full replay. Target: ≤ 1 s.
func BenchmarkReplay1M(b *testing.B) {
	path := fixture(b, benchEvents, 0)
	l, err := eventlog.Open(path, eventlog.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st, err := replay.StateAt(ctx, l, l.LastSeq())
		if err != nil {
			b.Fatal(err)
		}
		if st.Seq != benchEvents {
			b.Fatalf("folded to %d", st.Seq)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/replay")
	b.ReportMetric(float64(benchEvents)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkOpenFromSnapshot opens a 1M-event log that holds snapshots every
// 10k events and rebuilds state (snapshot + tail). Target: ≤ 50 ms.
func BenchmarkOpenFromSnapshot(b *testing.B) {
	path := fixture(b, benchEvents, 10_000)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l, err := eventlog.Open(path, eventlog.Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		st, err := replay.StateAt(ctx, l, l.LastSeq())
		if err != nil {
			b.Fatal(err)
		}
		if st.Seq != benchEvents {
			b.Fatalf("state at %d", st.Seq)
		}
		l.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/open")
}

// BenchmarkFold1M folds 1M events already in memory: the projector's own share.
func BenchmarkFold1M(b *testing.B) {
	evs := projectortest.New(42, 30).Events(benchEvents)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st := projector.New()
		for _, e := range evs {
			st.Apply(e)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/fold")
}

// BenchmarkRead1M reads and decodes 1M events without folding them: the log's
// share of a replay.
func BenchmarkRead1M(b *testing.B) {
	path := fixture(b, benchEvents, 0)
	l, err := eventlog.Open(path, eventlog.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := 0
		if err := l.Read(ctx, 1, 0, func(eventlog.Event) error { n++; return nil }); err != nil || n != benchEvents {
			b.Fatalf("read %d: %v", n, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/read")
}
