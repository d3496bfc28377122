package replay_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ledgerlet/ledgerlet/eventlog"
	"github.com/ledgerlet/ledgerlet/projector"
	"github.com/ledgerlet/ledgerlet/projector/projectortest"
	"github.com/ledgerlet/ledgerlet/replay"
)

func openLog(t *testing.T) *eventlog.Log {
	t.Helper()
	l, err := eventlog.Open(filepath.Join(t.TempDir(), "ledger.db"), eventlog.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestStateAtEqualsFoldWithAndWithoutSnapshots: the state at any seq is the
// same whether it comes from a full fold or from a snapshot plus its tail.
func TestStateAtEqualsFoldWithAndWithoutSnapshots(t *testing.T) {
	ctx := context.Background()
	l := openLog(t)
	evs := projectortest.New(7, 12).Events(3000)
	if _, err := l.Append(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	// Reference: fold what the log holds (it assigned its own times).
	var stored []eventlog.Event
	if err := l.Read(ctx, 1, 0, func(e eventlog.Event) error { stored = append(stored, e); return nil }); err != nil {
		t.Fatal(err)
	}
	foldTo := func(n int) []byte {
		s := projector.New()
		for _, e := range stored[:n] {
			s.Apply(e)
		}
		b, _ := s.Canonical()
		return b
	}
	for _, snapAt := range []int{500, 1500, 2999} {
		s := projector.New()
		for _, e := range stored[:snapAt] {
			s.Apply(e)
		}
		b, _ := s.Canonical()
		if err := l.SaveSnapshot(ctx, eventlog.Snapshot{Seq: uint64(snapAt), State: b}); err != nil {
			t.Fatal(err)
		}
	}
	for _, at := range []int{1, 499, 500, 501, 1700, 3000} {
		st, err := replay.StateAt(ctx, l, uint64(at))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := st.Canonical()
		if !bytes.Equal(got, foldTo(at)) {
			t.Fatalf("StateAt(%d) differs from the full fold", at)
		}
	}
}

func TestPointResolvesTimesToTheLastEventAtOrBefore(t *testing.T) {
	ctx := context.Background()
	l := openLog(t)
	gen := projectortest.New(1, 3)
	var times []time.Time
	for i := 0; i < 5; i++ {
		if _, err := l.Append(ctx, gen.Next()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	_ = l.Read(ctx, 1, 0, func(e eventlog.Event) error { times = append(times, e.Time); return nil })
	tests := []struct {
		p    replay.Point
		want uint64
	}{
		{replay.Point{Seq: 3}, 3},
		{replay.Point{Time: times[2]}, 3},
		{replay.Point{Time: times[2].Add(time.Microsecond)}, 3},
		{replay.Point{Time: times[0].Add(-time.Hour)}, 0},
		{replay.Point{Time: times[4].Add(time.Hour)}, 5},
		{replay.Point{}, 5},
	}
	for _, tt := range tests {
		got, err := tt.p.Resolve(l)
		if err != nil || got != tt.want {
			t.Errorf("Resolve(%+v) = %d, %v; want %d", tt.p, got, err, tt.want)
		}
	}
	if _, err := (replay.Point{Seq: 99}).Resolve(l); err == nil {
		t.Error("a seq past the end should be an error")
	}
}

func TestManifestDiffShowsChangedLines(t *testing.T) {
	a := []byte(`{"spec":{"containers":[{"name":"c","image":"busybox:1.36"}],"restartPolicy":"Always"}}`)
	b := []byte(`{"spec":{"containers":[{"name":"c","image":"busybox:1.37"}],"restartPolicy":"Always"}}`)
	d := replay.ManifestDiff(a, b)
	if !strings.Contains(d, "-   - image: busybox:1.36\n+   - image: busybox:1.37") {
		t.Fatalf("diff:\n%s", d)
	}
	if replay.ManifestDiff(a, a) != "" {
		t.Fatal("equal manifests should have an empty diff")
	}
	if d := replay.ManifestDiff(nil, a); !strings.HasPrefix(d, "+ ") {
		t.Fatalf("first version should be all additions:\n%s", d)
	}
}

func TestParsePoint(t *testing.T) {
	tests := []struct {
		in      string
		wantSeq uint64
		wantErr bool
	}{
		{"42", 42, false},
		{"2026-11-22T03:12:00Z", 0, false},
		{"yesterday", 0, true},
		{"-1", 0, true},
	}
	for _, tt := range tests {
		p, err := replay.ParsePoint(tt.in)
		if (err != nil) != tt.wantErr || p.Seq != tt.wantSeq {
			t.Errorf("ParsePoint(%q) = %+v, %v", tt.in, p, err)
		}
	}
}
