package eventlog_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/ledgerlet/ledgerlet/eventlog"
)

// A wall clock stepped back 8 h and forward again: each event carries the
// time as read (not the frozen latest one) and its boottime; the file checks
// clean before and after reopening, and SeqAt still names the first event at
// or after a time.
func TestRecordedTimesSayWhenThingsHappenedAcrossClockSteps(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	base := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	wall := base
	boot := int64(1e12)
	opts := eventlog.Options{NoSync: true, Clock: func() time.Time { return wall }, Boottime: func() int64 { return boot }}
	l, err := eventlog.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	tick := func() { wall = wall.Add(time.Second); boot += int64(time.Second) }
	var want []time.Time
	add := func(n int) {
		for i := 0; i < n; i++ {
			if _, err := l.Append(ctx, obs("ns/a", i)); err != nil {
				t.Fatal(err)
			}
			want = append(want, wall)
			tick()
		}
	}
	add(5)
	wall = wall.Add(-8 * time.Hour) // stepped back
	add(5)
	wall = wall.Add(8 * time.Hour) // and forward again
	add(5)
	check := func(l *eventlog.Log) {
		t.Helper()
		var i int
		var lastBoot int64
		if err := l.Read(ctx, 1, 0, func(e eventlog.Event) error {
			if !e.Time.Equal(want[i]) {
				t.Errorf("seq %d recorded at %s, appended at %s", e.Seq, e.Time, want[i])
			}
			if e.Boottime <= lastBoot {
				t.Errorf("seq %d boottime %d after %d", e.Seq, e.Boottime, lastBoot)
			}
			lastBoot = e.Boottime
			i++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if i != len(want) {
			t.Fatalf("read %d events, want %d", i, len(want))
		}
		for _, tc := range []struct {
			at   time.Time
			want uint64
		}{
			{base, 1},
			{base.Add(2 * time.Second), 3},
			{base.Add(5 * time.Second), 11}, // the first event stamped that late is after the step forward
			{base.Add(time.Hour), 16},
		} {
			if got, err := l.SeqAt(tc.at); err != nil || got != tc.want {
				t.Errorf("SeqAt(%s) = %d, %v; want %d", tc.at, got, err, tc.want)
			}
		}
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := eventlog.Check(path)
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("check: %v %v", err, rep.Problems)
	}
	if l, err = eventlog.Open(path, opts); err != nil {
		t.Fatal(err)
	}
	check(l)
	add(3)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if rep, err := eventlog.Check(path); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("check after reopening: %v %v", err, rep.Problems)
	}
	// Compacted at a cut among the events stamped after the step back.
	if l, err = eventlog.Open(path, opts); err != nil {
		t.Fatal(err)
	}
	if err := l.Compact(ctx, 8, eventlog.Snapshot{Seq: 7, State: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	if got, err := l.SeqAt(base); err != nil || got != 8 {
		t.Errorf("SeqAt(%s) after compaction = %d, %v; want the first retained seq 8", base, got, err)
	}
	// Enough commits, stepped back and forth, for the indexes to be flushed.
	for i := 0; i < 10; i++ {
		wall = wall.Add(time.Duration(1-2*(i%2)) * 3 * time.Hour)
		add(20)
	}
	if err := l.Compact(ctx, 150, eventlog.Snapshot{Seq: 149, State: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if rep, err := eventlog.Check(path); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("check after compacting: %v %v", err, rep.Problems)
	}
}
