package agent

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

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

// TestRetentionByAgeIsMeasuredOnDurationsNotAForwardClockStep: records carry
// wall time; ages are durations. A wall clock stepped a year forward makes
// no event look a year old: retention keeps what is younger than its age in
// real (boot) time, and drops what truly is older.
func TestRetentionByAgeIsMeasuredOnDurationsNotAForwardClockStep(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var wall time.Time
	var boot int64
	l, err := eventlog.Open(filepath.Join(t.TempDir(), "ledger.db"), eventlog.Options{
		Clock: func() time.Time { return wall }, Boottime: func() int64 { return boot },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	add := func(w time.Time, b time.Duration, d proto.Message) {
		t.Helper()
		wall, boot = w, int64(b)
		if _, err := l.Append(ctx, eventlog.Event{Pod: "default/web-node1", Data: d}); err != nil {
			t.Fatal(err)
		}
	}
	obs := &pb.ContainerObserved{Uid: "u1", Container: "c", ContainerId: "c1", State: "running"}
	add(t0, time.Hour, &pb.AgentStarted{NodeName: "node1", BootId: "boot-a"})
	// 50 days of real time pass (the same boot): these are truly old.
	add(t0.Add(time.Minute), time.Hour+time.Minute, obs)
	oldLast := l.LastSeq()
	add(t0.Add(50*24*time.Hour), time.Hour+50*24*time.Hour, obs)
	young := l.LastSeq()
	// Then the wall clock steps a year forward; ten minutes pass.
	add(t0.Add(50*24*time.Hour+365*24*time.Hour), time.Hour+50*24*time.Hour+5*time.Minute, obs)
	add(t0.Add(50*24*time.Hour+365*24*time.Hour+5*time.Minute), time.Hour+50*24*time.Hour+10*time.Minute, obs)

	now := t0.Add(50*24*time.Hour + 365*24*time.Hour + 6*time.Minute)
	cut, err := steadyAgeCut(ctx, l, 45*24*time.Hour, now.UnixNano(), int64(time.Hour+50*24*time.Hour+11*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if cut != young {
		t.Fatalf("age cut at seq %d, want %d: the events of the last 45 days (seq %d on) kept, the 50-day-old ones (to %d) dropped", cut, young, young, oldLast)
	}
	// The wall-clock rule would have dropped everything before the step.
	wallCut, err := l.SeqAt(now.Add(-45 * 24 * time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if wallCut <= young {
		t.Fatalf("the test does not step the clock far enough (wall cut %d)", wallCut)
	}
}
