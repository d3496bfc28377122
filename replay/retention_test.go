package replay_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ledgerlet/ledgerlet/eventlog"
	"github.com/ledgerlet/ledgerlet/projector"
	"github.com/ledgerlet/ledgerlet/projector/projectortest"
	"github.com/ledgerlet/ledgerlet/replay"
)

// retainOnce is what the agent's hourly retention does: cut, state at the
// cut from the log itself, compact with that state as the cut's snapshot.
func retainOnce(ctx context.Context, t *testing.T, l *eventlog.Log, policy eventlog.Retention) uint64 {
	t.Helper()
	cut, err := l.RetentionCut(policy, time.Now())
	if err != nil {
		t.Fatalf("retention cut: %v", err)
	}
	if cut <= l.FirstSeq() {
		t.Fatalf("retention cut %d does not drop anything (first seq %d)", cut, l.FirstSeq())
	}
	st, err := replay.StateAt(ctx, l, cut-1)
	if err != nil {
		t.Fatalf("state at cut %d: %v", cut, err)
	}
	b, err := st.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Compact(ctx, cut, eventlog.Snapshot{Seq: cut - 1, State: b}); err != nil {
		t.Fatalf("compact before %d: %v", cut, err)
	}
	return cut
}

// TestRetentionStateAtAndVerifyWorkAcrossRepeatedCompactions: the agent
// snapshots every few thousand events and retention compacts hourly, so the
// snapshot written at a cut is soon the oldest of more than three. Each run
// of retention, StateAt of every retained seq and Verify must keep working,
// before and after a reopen.
func TestRetentionStateAtAndVerifyWorkAcrossRepeatedCompactions(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := eventlog.Open(path, eventlog.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { l.Close() }()
	gen := projectortest.New(3, 8)
	var stored []eventlog.Event // every event ever appended, as stored
	ref := projector.New()      // the full fold, advanced as events are appended
	refAt := map[uint64][]byte{}

	appendRound := func(n, snapEvery int) {
		for i := 0; i < n; i++ {
			ev := gen.Next()
			if _, err := l.Append(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Read(ctx, uint64(len(stored))+1, 0, func(e eventlog.Event) error {
			stored = append(stored, e)
			ref.Apply(e)
			b, _ := ref.Canonical()
			refAt[e.Seq] = b
			if e.Seq%uint64(snapEvery) == 0 {
				// The agent's periodic snapshot.
				if err := l.SaveSnapshot(ctx, eventlog.Snapshot{Seq: e.Seq, State: b}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string) {
		t.Helper()
		first, last := l.FirstSeq(), l.LastSeq()
		for seq := first - 1; seq <= last; seq += 7 {
			st, err := replay.StateAt(ctx, l, seq)
			if err != nil {
				t.Fatalf("%s: StateAt(%d) with first seq %d: %v", when, seq, first, err)
			}
			got, _ := st.Canonical()
			if !bytes.Equal(got, refAt[seq]) {
				t.Fatalf("%s: StateAt(%d) differs from the full fold", when, seq)
			}
		}
		rep, err := replay.Verify(ctx, l)
		if err != nil || !rep.OK() {
			t.Fatalf("%s: verify: %v %v", when, err, rep.Divergences)
		}
		snaps, err := l.Snapshots()
		if err != nil || len(snaps) == 0 || snaps[0] != first-1 {
			t.Fatalf("%s: snapshots %v with first seq %d: want the oldest at %d", when, snaps, first, first-1)
		}
	}

	appendRound(1000, 100)
	for round := 1; round <= 4; round++ {
		st, err := l.Stats()
		if err != nil {
			t.Fatal(err)
		}
		cut := retainOnce(ctx, t, l, eventlog.Retention{MaxBytes: st.DataBytes * 2 / 3})
		check("after compaction " + string(rune('0'+round)))
		appendRound(600, 100) // more periodic snapshots, newer than the cut
		check("after appending past cut " + string(rune('0'+round)))
		_ = cut
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if l, err = eventlog.Open(path, eventlog.Options{NoSync: true}); err != nil {
		t.Fatal(err)
	}
	check("after reopen")
	retainOnce(ctx, t, l, eventlog.Retention{MaxBytes: 1})
	check("after compacting everything")
}

// damagedLog builds what the old eviction left behind: a log compacted to
// start at 301 whose snapshot at 300 is gone, with an older snapshot at 200
// and periodic ones at 400, 500 and 600.
func damagedLog(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := eventlog.Open(path, eventlog.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	gen := projectortest.New(5, 6)
	if _, err := l.Append(ctx, gen.Events(700)...); err != nil {
		t.Fatal(err)
	}
	s := projector.New()
	states := map[uint64][]byte{}
	if err := l.Read(ctx, 1, 0, func(e eventlog.Event) error {
		s.Apply(e)
		if e.Seq%100 == 0 {
			states[e.Seq], _ = s.Canonical()
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := l.Compact(ctx, 301, eventlog.Snapshot{Seq: 300, State: states[300]}); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{400, 500, 600} {
		if err := l.SaveSnapshot(ctx, eventlog.Snapshot{Seq: seq, State: states[seq]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("snapshots"))
		if err := b.Delete(binary.BigEndian.AppendUint64(nil, 300)); err != nil {
			return err
		}
		return b.Put(binary.BigEndian.AppendUint64(nil, 200), states[200])
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestVerifyRefusesACompactedLogWithoutTheSnapshotAtItsCut: an older
// snapshot is not the state at the cut; restoring it would report
// divergences that are not in the log.
func TestVerifyRefusesACompactedLogWithoutTheSnapshotAtItsCut(t *testing.T) {
	l, err := eventlog.Open(damagedLog(t), eventlog.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rep, err := replay.Verify(context.Background(), l)
	if err == nil || !strings.Contains(err.Error(), "no snapshot at 300") {
		t.Fatalf("verify = %+v, %v; want an error naming the missing snapshot at 300", rep, err)
	}
}

// TestRetentionRecoversALogWhoseCutSnapshotWasEvicted: a log left without
// its cut snapshot by an older ledgerlet cannot be replayed before its
// oldest snapshot. The next retention that drops anything cuts at least up
// to that snapshot, after which the log is whole again.
func TestRetentionRecoversALogWhoseCutSnapshotWasEvicted(t *testing.T) {
	ctx := context.Background()
	l, err := eventlog.Open(damagedLog(t), eventlog.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	st, err := l.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// A policy that would drop only a few events.
	cut := retainOnce(ctx, t, l, eventlog.Retention{MaxBytes: st.DataBytes - 100})
	if cut != 401 {
		t.Fatalf("cut at %d, want 401 (just past the oldest usable snapshot)", cut)
	}
	if rep, err := replay.Verify(ctx, l); err != nil || !rep.OK() {
		t.Fatalf("verify after recovery: %v %v", err, rep.Divergences)
	}
	if _, err := replay.StateAt(ctx, l, 401); err != nil {
		t.Fatal(err)
	}
}
