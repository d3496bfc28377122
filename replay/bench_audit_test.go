package replay_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ledgerlet/ledgerlet/eventlog"
	"github.com/ledgerlet/ledgerlet/projector"
	"github.com/ledgerlet/ledgerlet/projector/projectortest"
	"github.com/ledgerlet/ledgerlet/replay"
)

// monthFixture builds (once per machine, cached in the temp dir) a log of
// 30 days of 30 pods at the given pace, each event at its own recorded
// time (commits group the events of up to a minute), with a snapshot every
// 10,000 events as the agent writes them.
func monthFixture(b *testing.B, pace time.Duration) (path string, events uint64) {
	b.Helper()
	path = filepath.Join(os.TempDir(), fmt.Sprintf("ledgerlet-bench-month-v1-30pods-%s.db", pace))
	if l, err := eventlog.Open(path, eventlog.Options{ReadOnly: true}); err == nil {
		last := l.LastSeq()
		done, _, _ := l.LatestSnapshot(0)
		l.Close()
		if last > 0 && done.Seq > 0 {
			return path, last
		}
	}
	os.Remove(path)
	start := time.Now()
	var clock time.Time
	l, err := eventlog.Open(path, eventlog.Options{NoSync: true, Clock: func() time.Time { return clock }})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	gen := projectortest.New(42, 30).Pace(pace)
	end := projectortest.New(42, 30).Next().Time.Add(30 * 24 * time.Hour)
	st := projector.New()
	var batch []eventlog.Event
	flush := func() {
		if len(batch) == 0 {
			return
		}
		clock = batch[len(batch)-1].Time
		seqs, err := l.Append(ctx, batch...)
		if err != nil {
			b.Fatal(err)
		}
		for i, e := range batch {
			e.Seq, e.Time = seqs[i], clock
			st.Apply(e)
			if e.Seq%10_000 == 0 {
				enc, err := st.Canonical()
				if err != nil {
					b.Fatal(err)
				}
				if err := l.SaveSnapshot(ctx, eventlog.Snapshot{Seq: e.Seq, State: enc}); err != nil {
					b.Fatal(err)
				}
			}
		}
		batch = batch[:0]
	}
	for {
		e := gen.Next()
		if e.Time.After(end) {
			break
		}
		if len(batch) > 0 && (e.Time.Sub(batch[0].Time) > time.Minute || len(batch) >= 1000) {
			flush()
		}
		batch = append(batch, e)
	}
	flush()
	events = l.LastSeq()
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("built %s (%d events over 30 days) in %s", path, events, time.Since(start))
	return path, events
}

// cpuTime is the process's user+system time: on a shared machine, the
// work a benchmark did, next to the wall time it took.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration, per int) {
	b.ReportMetric(float64((cpuTime()-start).Microseconds())/1000/float64(b.N*per), "cpu-ms/op")
}

// monthPace is a node of 30 static pods over a month where a few misbehave:
// an event every 8.6 s on average, about 300k in 30 days. The default
// generator pace (an event a second, 2.6M a month) is every pod
// crash-looping at once; BenchmarkTimelineMonthAllCrashLooping measures it.
const monthPace = 8600 * time.Millisecond

func openMonth(b *testing.B, pace time.Duration) (*eventlog.Log, uint64) {
	b.Helper()
	path, n := monthFixture(b, pace)
	l, err := eventlog.Open(path, eventlog.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return l, n
}

func benchTimeline(b *testing.B, pace time.Duration) {
	l, n := openMonth(b, pace)
	ctx := context.Background()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		tl, err := replay.BuildTimeline(ctx, l, replay.TimelineOptions{Buckets: 1200})
		if err != nil {
			b.Fatal(err)
		}
		if err := tl.WriteHTML(io.Discard, "bench"); err != nil {
			b.Fatal(err)
		}
		if len(tl.Lanes) < 30 {
			b.Fatalf("%d lanes", len(tl.Lanes))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/timeline")
	reportCPU(b, cpu0, 1)
	b.ReportMetric(float64(n), "events")
}

// BenchmarkTimelineMonth30Pods builds the whole month's timeline of 30 pods
// at 1200 pixels and renders the page. Target: ≤ 1 s.
func BenchmarkTimelineMonth30Pods(b *testing.B) { benchTimeline(b, monthPace) }

// BenchmarkTimelineMonthAllCrashLooping is the same month with every pod
// crash-looping (2.6M events). Runs with LEDGERLET_BENCH_WORST=1 (it
// builds a 480 MB fixture).
func BenchmarkTimelineMonthAllCrashLooping(b *testing.B) {
	if os.Getenv("LEDGERLET_BENCH_WORST") == "" {
		b.Skip("set LEDGERLET_BENCH_WORST=1 to build the 2.6M-event month")
	}
	benchTimeline(b, time.Second)
}

// BenchmarkExplainMonth30Pods explains a pod of the month at its end and in
// its middle: the state from a snapshot, the pod's history from the pod
// index. Target: ≤ 1 s.
func BenchmarkExplainMonth30Pods(b *testing.B) {
	l, _ := openMonth(b, monthPace)
	ctx := context.Background()
	var first, last time.Time
	_ = l.Read(ctx, 1, 1, func(e eventlog.Event) error { first = e.Time; return nil })
	_ = l.Read(ctx, l.LastSeq(), l.LastSeq(), func(e eventlog.Event) error { last = e.Time; return nil })
	mid := first.Add(last.Sub(first) / 2)
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		for _, at := range []time.Time{{}, mid} {
			x, err := replay.Explain(ctx, l, replay.ExplainOptions{Pod: "kube-system/pod03-node1", At: at})
			if err != nil {
				b.Fatal(err)
			}
			if x.Summary == "" {
				b.Fatal("empty explanation")
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(2*b.N), "ms/explain")
	reportCPU(b, cpu0, 2)
}

// BenchmarkReplayAtAnyPointMonth30Pods resolves 20 instants spread over the
// month and rebuilds the state at each (snapshot + tail), as
// `replay --at` does. Target: ≤ 100 ms each; the slowest is reported.
func BenchmarkReplayAtAnyPointMonth30Pods(b *testing.B) {
	l, _ := openMonth(b, monthPace)
	ctx := context.Background()
	var first, last time.Time
	_ = l.Read(ctx, 1, 1, func(e eventlog.Event) error { first = e.Time; return nil })
	_ = l.Read(ctx, l.LastSeq(), l.LastSeq(), func(e eventlog.Event) error { last = e.Time; return nil })
	var worst time.Duration
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		for k := 0; k < 20; k++ {
			at := first.Add(last.Sub(first) * time.Duration(2*k+1) / 40)
			start := time.Now()
			seq, err := replay.Point{Time: at}.Resolve(l)
			if err != nil {
				b.Fatal(err)
			}
			st, err := replay.StateAt(ctx, l, seq)
			if err != nil {
				b.Fatal(err)
			}
			_ = st.Views()
			worst = max(worst, time.Since(start))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(20*b.N), "ms/at")
	b.ReportMetric(float64(worst.Microseconds())/1000, "ms/at-worst")
	reportCPU(b, cpu0, 20)
}

// BenchmarkVerifyMonth30Pods re-derives the whole month: two folds, every
// snapshot, every intent and outcome. Target: ≤ 5 s.
func BenchmarkVerifyMonth30Pods(b *testing.B) {
	l, n := openMonth(b, monthPace)
	ctx := context.Background()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		rep, err := replay.Verify(ctx, l)
		if err != nil {
			b.Fatal(err)
		}
		if !rep.OK() || rep.Events != n {
			b.Fatalf("verify: %d events, %d divergences: %v", rep.Events, len(rep.Divergences), rep.Divergences[:min(3, len(rep.Divergences))])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/verify")
	reportCPU(b, cpu0, 1)
}
