package eventlog_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ledgerlet/ledgerlet/eventlog"
)

// TestAfterAFailedCommitTheLogRefusesEveryAppend: a commit whose fsync
// failed may still be visible in the file, so a writer that carried on
// would hand out its seqs and pod ids again. After the first commit error
// every append, snapshot and compaction fails with ErrFailed wrapping the
// cause; reads of what was acknowledged still work; a reopen recovers.
func TestAfterAFailedCommitTheLogRefusesEveryAppend(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := openLog(t, path, eventlog.Options{NoSync: true})
	appendN(t, l, []string{"ns/a"}, 5)

	cause := errors.New("injected: fsync of the meta page failed")
	eventlog.InjectCommitFault(l, func() error { return cause })
	if _, err := l.Append(ctx, obs("ns/new", 5)); !errors.Is(err, cause) || !errors.Is(err, eventlog.ErrFailed) {
		t.Fatalf("append with a failing commit: err = %v; want ErrFailed wrapping the cause", err)
	}
	select {
	case <-l.Failed():
	default:
		t.Fatal("Failed() not closed after a commit error")
	}
	if err := l.Err(); !errors.Is(err, cause) || !errors.Is(err, eventlog.ErrFailed) {
		t.Fatalf("Err() = %v", err)
	}

	// The disk works again: the log still refuses, from every appender.
	eventlog.InjectCommitFault(l, nil)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = l.Append(ctx, obs("ns/a", i), obs("ns/other", i))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, eventlog.ErrFailed) || !errors.Is(err, cause) {
			t.Fatalf("append %d after the failure: err = %v; want ErrFailed wrapping the cause", i, err)
		}
	}
	if err := l.SaveSnapshot(ctx, eventlog.Snapshot{Seq: 5}); !errors.Is(err, eventlog.ErrFailed) {
		t.Fatalf("snapshot after the failure: err = %v", err)
	}
	if err := l.Compact(ctx, 3, eventlog.Snapshot{Seq: 2}); !errors.Is(err, eventlog.ErrFailed) {
		t.Fatalf("compaction after the failure: err = %v", err)
	}

	// Reads serve what was acknowledged.
	if l.LastSeq() != 5 {
		t.Fatalf("last seq = %d, want 5 (the failed commit is not acknowledged)", l.LastSeq())
	}
	if got := readAll(t, l, 1, 0); len(got) != 5 || got[4].Pod != "ns/a" {
		t.Fatalf("read %d events after the failure", len(got))
	}
	if err := l.Close(); err != nil {
		t.Fatalf("close after the failure: %v", err)
	}

	// A reopen takes the file as it is: the failed commit happened to be
	// durable here, and seqs and pod ids continue after it.
	l = openLog(t, path, eventlog.Options{NoSync: true})
	if l.LastSeq() != 6 {
		t.Fatalf("reopened: last seq = %d, want 6", l.LastSeq())
	}
	seqs, err := l.Append(ctx, obs("ns/b", 7))
	if err != nil || seqs[0] != 7 {
		t.Fatalf("append after reopen: %v %v", seqs, err)
	}
	got := readAll(t, l, 1, 0)
	if len(got) != 7 || got[5].Pod != "ns/new" || got[6].Pod != "ns/b" {
		t.Fatalf("after reopen read %d events: %v", len(got), got)
	}
	var newSeqs []uint64
	if err := l.ReadPod(ctx, "ns/new", 0, 0, func(e eventlog.Event) error { newSeqs = append(newSeqs, e.Seq); return nil }); err != nil || len(newSeqs) != 1 || newSeqs[0] != 6 {
		t.Fatalf("ReadPod(ns/new) = %v, %v", newSeqs, err)
	}
}

// TestAFailedSnapshotCommitAlsoClosesTheLogForWrites: snapshots and
// compactions commit on the same writer; their commit errors are as final.
func TestAFailedSnapshotCommitAlsoClosesTheLogForWrites(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, "", eventlog.Options{NoSync: true})
	appendN(t, l, []string{"ns/a"}, 5)
	cause := errors.New("injected: disk gone")
	eventlog.InjectCommitFault(l, func() error { return cause })
	if err := l.SaveSnapshot(ctx, eventlog.Snapshot{Seq: 5, State: []byte("s")}); !errors.Is(err, eventlog.ErrFailed) || !errors.Is(err, cause) {
		t.Fatalf("snapshot with a failing commit: %v", err)
	}
	eventlog.InjectCommitFault(l, nil)
	if _, err := l.Append(ctx, obs("ns/a", 6)); !errors.Is(err, eventlog.ErrFailed) {
		t.Fatalf("append after a failed snapshot commit: %v", err)
	}
	// A job that fails on its own (not its commit) leaves the log working.
	l2 := openLog(t, "", eventlog.Options{NoSync: true})
	appendN(t, l2, nil, 3)
	if err := l2.Compact(ctx, 10, eventlog.Snapshot{Seq: 9}); err == nil || errors.Is(err, eventlog.ErrFailed) {
		t.Fatalf("compaction past the end: %v", err)
	}
	if _, err := l2.Append(ctx, obs("", 3)); err != nil || l2.Err() != nil {
		t.Fatalf("append after a refused compaction: %v (log error %v)", err, l2.Err())
	}
}
