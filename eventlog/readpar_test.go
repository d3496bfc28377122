package eventlog_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ledgerlet/ledgerlet/eventlog"
)

// TestLongReadsDecodeInParallelInOrder: a range long enough for the
// parallel reader yields exactly the events a one-by-one read does, in order.
func TestLongReadsDecodeInParallelInOrder(t *testing.T) {
	l := openLog(t, filepath.Join(t.TempDir(), "ledger.db"), eventlog.Options{NoSync: true})
	appendN(t, l, []string{"default/a", "kube-system/b", ""}, 12_345)
	ctx := context.Background()
	var got []eventlog.Event
	if err := l.Read(ctx, 3, 0, func(e eventlog.Event) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 12_343 {
		t.Fatalf("read %d events, want 12343", len(got))
	}
	for i, e := range got {
		if e.Seq != uint64(i+3) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
	}
	// Spot-check against short (sequential) reads.
	for _, seq := range []uint64{3, 1024, 1025, 5000, 12_345} {
		one := readAll(t, l, seq, seq)
		if len(one) != 1 || one[0].Pod != got[seq-3].Pod || !one[0].Time.Equal(got[seq-3].Time) || !proto.Equal(one[0].Data, got[seq-3].Data) {
			t.Fatalf("seq %d differs between the parallel and the sequential read", seq)
		}
	}
}

func TestLongReadStopsCleanlyOnCallbackErrorAndCancel(t *testing.T) {
	l := openLog(t, filepath.Join(t.TempDir(), "ledger.db"), eventlog.Options{NoSync: true})
	appendN(t, l, []string{"default/a"}, 10_000)
	stop := errors.New("stop")
	n := 0
	err := l.Read(context.Background(), 1, 0, func(eventlog.Event) error {
		n++
		if n == 3000 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3000 {
		t.Fatalf("err %v after %d events, want the callback's error after 3000", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n = 0
	err = l.Read(ctx, 1, 0, func(eventlog.Event) error {
		n++
		if n == 2000 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	// goleak in TestMain checks that no reader or decoder goroutine is left.
}
