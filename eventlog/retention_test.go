package eventlog_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ledgerlet/ledgerlet/eventlog"
)

// TestCompactedLogAlwaysKeepsTheSnapshotAtTheCut: while the log is
// compacted it holds a snapshot at exactly FirstSeq-1, next to the newest
// three periodic ones, however many snapshots and compactions follow.
func TestCompactedLogAlwaysKeepsTheSnapshotAtTheCut(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := openLog(t, path, eventlog.Options{NoSync: true})
	snap := func(seq uint64) eventlog.Snapshot {
		return eventlog.Snapshot{Seq: seq, State: []byte(fmt.Sprint("state@", seq))}
	}
	want := func(when string, seqs ...uint64) {
		t.Helper()
		got, err := l.Snapshots()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, seqs) {
			t.Fatalf("%s: snapshots %v, want %v", when, got, seqs)
		}
		if first := l.FirstSeq(); first > 1 {
			s, ok, err := l.LatestSnapshot(first - 1)
			if err != nil || !ok || s.Seq != first-1 || string(s.State) != fmt.Sprint("state@", first-1) {
				t.Fatalf("%s: LatestSnapshot(%d) = %d %q %v %v", when, first-1, s.Seq, s.State, ok, err)
			}
		}
	}
	appendN(t, l, nil, 100)
	for _, seq := range []uint64{40, 60, 80, 100} {
		if err := l.SaveSnapshot(ctx, snap(seq)); err != nil {
			t.Fatal(err)
		}
	}
	want("uncompacted", 60, 80, 100)

	// The cut's snapshot is older than the three periodic ones.
	if err := l.Compact(ctx, 31, snap(30)); err != nil {
		t.Fatal(err)
	}
	want("first compaction", 30, 60, 80, 100)
	appendN(t, l, nil, 100)
	for _, seq := range []uint64{120, 140, 160, 180} {
		if err := l.SaveSnapshot(ctx, snap(seq)); err != nil {
			t.Fatal(err)
		}
	}
	want("newer periodic snapshots", 30, 140, 160, 180)

	for round, cut := range []uint64{51, 71, 91, 131} {
		if err := l.Compact(ctx, cut, snap(cut-1)); err != nil {
			t.Fatalf("compaction %d: %v", round+2, err)
		}
		want(fmt.Sprint("compaction ", round+2), append([]uint64{cut - 1}, 140, 160, 180)...)
	}
	// A cut past periodic snapshots drops those before it.
	if err := l.Compact(ctx, 171, snap(170)); err != nil {
		t.Fatal(err)
	}
	want("cut between snapshots", 170, 180)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, path, eventlog.Options{NoSync: true})
	want("reopened", 170, 180)
	// Compacting everything keeps the snapshot of the whole log.
	if err := l.Compact(ctx, 201, snap(200)); err != nil {
		t.Fatal(err)
	}
	want("fully compacted", 200)
}

// TestOldSnapshotsAreThinnedNotAllDropped: beyond the newest three, one
// snapshot at least every 25,000 seqs stays, so the state at any point of
// a long log is a snapshot plus a bounded fold.
func TestOldSnapshotsAreThinnedNotAllDropped(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, filepath.Join(t.TempDir(), "ledger.db"), eventlog.Options{NoSync: true})
	batch := make([]eventlog.Event, 0, 1000)
	for i := 0; i < 200_000; i++ {
		batch = append(batch, obs("", i))
		if len(batch) == cap(batch) {
			if _, err := l.Append(ctx, batch...); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	for seq := uint64(10_000); seq <= 200_000; seq += 10_000 {
		if err := l.SaveSnapshot(ctx, eventlog.Snapshot{Seq: seq, State: []byte("s")}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	want := []uint64{30_000, 60_000, 90_000, 120_000, 150_000, 180_000, 190_000, 200_000}
	if !slices.Equal(got, want) {
		t.Fatalf("snapshots %v, want %v", got, want)
	}
}
