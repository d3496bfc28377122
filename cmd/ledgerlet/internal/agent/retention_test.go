package agent

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector/projectortest"
	"github.com/ledgerlet/ledgerlet/replay"
)

// TestRetentionKeepsEverythingAfterTheCutReplayable: compaction drops old
// events but writes a snapshot at the cut, so the state at every retained
// point is unchanged and the log still verifies.
func TestRetentionKeepsEverythingAfterTheCutReplayable(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	projectortest.SeedLog(t, path)
	l, err := eventlog.Open(path, eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	time.Sleep(20 * time.Millisecond)
	cutAt := time.Now()
	time.Sleep(20 * time.Millisecond)
	for i := 0; i < 5; i++ {
		if _, err := l.Append(ctx, eventlog.Event{Pod: "default/web-node1", Data: &pb.ContainerObserved{Uid: "u2", Container: "httpd", ContainerId: "c2", State: "running"}}); err != nil {
			t.Fatal(err)
		}
	}
	last := l.LastSeq()
	want, err := replay.StateAt(ctx, l, last)
	if err != nil {
		t.Fatal(err)
	}
	wantBytes, _ := want.Canonical()

	r := &retention{log: l, policy: eventlog.Retention{MaxAge: time.Since(cutAt)}, logger: slog.New(slog.DiscardHandler)}
	if err := r.once(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	if l.FirstSeq() <= 1 {
		t.Fatalf("nothing was compacted (first seq %d)", l.FirstSeq())
	}
	got, err := replay.StateAt(ctx, l, last)
	if err != nil {
		t.Fatal(err)
	}
	gotBytes, _ := got.Canonical()
	if string(gotBytes) != string(wantBytes) {
		t.Fatal("state after compaction differs")
	}
	rep, err := replay.Verify(ctx, l)
	if err != nil || !rep.OK() {
		t.Fatalf("verify after compaction: %v %v", err, rep.Divergences)
	}
}
