package eventlog_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/ledgerlet/ledgerlet/eventlog"
	"github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

func openLog(t testing.TB, path string, opts eventlog.Options) *eventlog.Log {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "ledger.db")
	}
	l, err := eventlog.Open(path, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func obs(pod string, n int) eventlog.Event {
	return eventlog.Event{Pod: pod, Data: &eventpb.ContainerObserved{Uid: pod, Container: "c", Attempt: uint32(n), State: "running"}}
}

func appendN(t testing.TB, l *eventlog.Log, pods []string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		pod := ""
		if len(pods) > 0 {
			pod = pods[i%len(pods)]
		}
		if _, err := l.Append(context.Background(), obs(pod, i)); err != nil {
			t.Fatal(err)
		}
	}
}

func readAll(t testing.TB, l *eventlog.Log, from, to uint64) []eventlog.Event {
	t.Helper()
	var out []eventlog.Event
	if err := l.Read(context.Background(), from, to, func(e eventlog.Event) error { out = append(out, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEncodeDecodeRoundTripPreservesEveryField(t *testing.T) {
	tm := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	cases := []struct {
		name string
		ev   eventlog.Event
	}{
		{"container observed with pod", eventlog.Event{Time: tm, Pod: "kube-system/etcd-node1", Data: &eventpb.ContainerObserved{
			Uid: "u1", SandboxId: strings.Repeat("a", 64), Container: "etcd", ContainerId: strings.Repeat("b", 64),
			Attempt: 2, State: "exited", ExitCode: -1, Reason: "Error", StartedUnixNano: 1, FinishedUnixNano: 2, Adopted: true, Init: true}}},
		{"manifest with bytes and repeated", eventlog.Event{Time: tm, Pod: "a/b", Data: &eventpb.ManifestAdded{
			Source: "file", Path: "/etc/x.yaml", PodJson: []byte(`{"a":1}`), Warnings: []string{"w1", "w2"}}}},
		{"empty payload message without pod", eventlog.Event{Time: tm, Data: &eventpb.MirrorGone{}}},
		{"zero time", eventlog.Event{Time: time.Unix(0, 0).UTC(), Data: &eventpb.AgentStopped{Reason: "signal"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := eventlog.Encode(tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			got, err := eventlog.Decode(42, b)
			if err != nil {
				t.Fatal(err)
			}
			if got.Seq != 42 || !got.Time.Equal(tc.ev.Time) || got.Pod != tc.ev.Pod || !proto.Equal(got.Data, tc.ev.Data) {
				t.Errorf("roundtrip: got %+v, want %+v", got, tc.ev)
			}
		})
	}
}

func TestEncodeRefusesEventsWithoutAPayload(t *testing.T) {
	for _, ev := range []eventlog.Event{{}, {Data: &eventpb.Record{}}} {
		if _, err := eventlog.Encode(ev); err == nil {
			t.Errorf("Encode(%v) succeeded", ev)
		}
	}
}

func TestNewLogIsEmptyWithFirstSeqOne(t *testing.T) {
	l := openLog(t, "", eventlog.Options{NoSync: true})
	if l.FirstSeq() != 1 || l.LastSeq() != 0 {
		t.Fatalf("first, last = %d, %d; want 1, 0", l.FirstSeq(), l.LastSeq())
	}
	st, err := l.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != 0 || st.SchemaVersion != eventlog.SchemaVersion {
		t.Fatalf("stats = %+v", st)
	}
}

func TestAppendAssignsSeqsAndNonDecreasingTimes(t *testing.T) {
	l := openLog(t, "", eventlog.Options{NoSync: true})
	evs := []eventlog.Event{obs("a/b", 1), obs("a/c", 2), obs("", 3)}
	seqs, err := l.Append(context.Background(), evs...)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seqs) != "[1 2 3]" {
		t.Fatalf("seqs = %v", seqs)
	}
	for i, e := range evs {
		if e.Seq != seqs[i] || e.Time.IsZero() {
			t.Errorf("event %d not stamped: %+v", i, e)
		}
	}
	appendN(t, l, nil, 20)
	var prev time.Time
	for _, e := range readAll(t, l, 0, 0) {
		if e.Time.Before(prev) {
			t.Fatalf("time went back at seq %d", e.Seq)
		}
		prev = e.Time
	}
}

func TestAppendSeqsAreGaplessUnderConcurrentAppenders(t *testing.T) {
	for _, tc := range []struct {
		name     string
		maxBatch int
		perCall  int
	}{
		{"single events default batch", 0, 1},
		{"multi-event calls", 0, 5},
		{"batches capped small", 3, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := openLog(t, "", eventlog.Options{NoSync: true, MaxBatch: tc.maxBatch})
			const workers, calls = 8, 50
			var mu sync.Mutex
			seen := make(map[uint64]bool)
			var wg sync.WaitGroup
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < calls; i++ {
						evs := make([]eventlog.Event, tc.perCall)
						for j := range evs {
							evs[j] = obs(fmt.Sprintf("ns/p%d", w), i)
						}
						seqs, err := l.Append(context.Background(), evs...)
						if err != nil {
							t.Error(err)
							return
						}
						for j := 1; j < len(seqs); j++ {
							if seqs[j] != seqs[j-1]+1 {
								t.Errorf("one call's seqs not consecutive: %v", seqs)
							}
						}
						mu.Lock()
						for _, s := range seqs {
							if seen[s] {
								t.Errorf("seq %d assigned twice", s)
							}
							seen[s] = true
						}
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			total := uint64(workers * calls * tc.perCall)
			if l.LastSeq() != total || uint64(len(seen)) != total {
				t.Fatalf("last = %d, distinct seqs = %d, want %d", l.LastSeq(), len(seen), total)
			}
			for i, e := range readAll(t, l, 1, 0) {
				if e.Seq != uint64(i+1) {
					t.Fatalf("read seq %d at position %d", e.Seq, i)
				}
			}
		})
	}
}

func TestAppendWithDoneContextReturnsItsError(t *testing.T) {
	l := openLog(t, "", eventlog.Options{NoSync: true})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Append(ctx, obs("a/b", 1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestAppendRefusesAnEventWithoutPayloadAndCommitsNothing(t *testing.T) {
	l := openLog(t, "", eventlog.Options{NoSync: true})
	_, err := l.Append(context.Background(), obs("a/b", 1), eventlog.Event{Pod: "a/b"})
	if err == nil || !strings.Contains(err.Error(), "append 2 events") {
		t.Fatalf("err = %v", err)
	}
	if l.LastSeq() != 0 {
		t.Fatalf("last = %d after refused append", l.LastSeq())
	}
}

func TestReopenContinuesSeqsAndTimes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := eventlog.Open(path, eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, []string{"a/b"}, 5)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, path, eventlog.Options{})
	seqs, err := l.Append(context.Background(), obs("a/b", 9))
	if err != nil {
		t.Fatal(err)
	}
	if seqs[0] != 6 {
		t.Fatalf("seq after reopen = %d, want 6", seqs[0])
	}
	var n int
	if err := l.ReadPod(context.Background(), "a/b", 0, 0, func(eventlog.Event) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 6 {
		t.Fatalf("pod has %d events after reopen, want 6", n)
	}
}

func TestReadYieldsTheRequestedRangeInOrder(t *testing.T) {
	l := openLog(t, "", eventlog.Options{NoSync: true})
	appendN(t, l, nil, 2500) // crosses read chunks
	for _, tc := range []struct {
		from, to   uint64
		first, cnt uint64
	}{
		{0, 0, 1, 2500},
		{1, 1, 1, 1},
		{1000, 2100, 1000, 1101},
		{2400, 9999, 2400, 101},
		{2501, 0, 0, 0},
		{10, 5, 0, 0},
	} {
		got := readAll(t, l, tc.from, tc.to)
		if uint64(len(got)) != tc.cnt || (tc.cnt > 0 && got[0].Seq != tc.first) {
			t.Errorf("Read(%d, %d): %d events from %v; want %d from %d", tc.from, tc.to, len(got), got[:min(1, len(got))], tc.cnt, tc.first)
		}
	}
}

func TestReadStopsAtTheCallbacksError(t *testing.T) {
	l := openLog(t, "", eventlog.Options{NoSync: true})
	appendN(t, l, nil, 10)
	stop := errors.New("stop")
	n := 0
	err := l.Read(context.Background(), 0, 0, func(eventlog.Event) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Fatalf("err = %v after %d events", err, n)
	}
}

func TestReadPodYieldsOnlyThatPodsEventsInRange(t *testing.T) {
	l := openLog(t, "", eventlog.Options{NoSync: true})
	pods := []string{"ns/a", "ns/b", "ns/c"}
	// Single appends and batches so the pod index gets many blocks and
	// multi-seq block updates.
	appendN(t, l, pods, 1500)
	batch := make([]eventlog.Event, 0, 300)
	for i := 0; i < 300; i++ {
		batch = append(batch, obs(pods[i%2], i))
	}
	if _, err := l.Append(context.Background(), batch...); err != nil {
		t.Fatal(err)
	}
	want := func(pod string, from, to uint64) []uint64 {
		var out []uint64
		for _, e := range readAll(t, l, from, to) {
			if e.Pod == pod {
				out = append(out, e.Seq)
			}
		}
		return out
	}
	for _, tc := range []struct {
		pod      string
		from, to uint64
	}{
		{"ns/a", 0, 0}, {"ns/b", 0, 0}, {"ns/c", 0, 0},
		{"ns/a", 700, 900}, {"ns/c", 2, 2}, {"ns/c", 3, 3}, {"ns/b", 1490, 1600},
		{"ns/none", 0, 0}, {"", 0, 0}, {"ns/a", 1801, 0},
	} {
		var got []uint64
		err := l.ReadPod(context.Background(), tc.pod, tc.from, tc.to, func(e eventlog.Event) error {
			if e.Pod != tc.pod {
				t.Errorf("ReadPod(%q) yielded event of %q", tc.pod, e.Pod)
			}
			got = append(got, e.Seq)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if w := want(tc.pod, tc.from, tc.to); tc.pod != "" && fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("ReadPod(%q, %d, %d) = %d seqs %v..., want %d", tc.pod, tc.from, tc.to, len(got), got[:min(5, len(got))], len(w))
		}
		if tc.pod == "" && len(got) != 0 {
			t.Errorf("ReadPod(\"\") yielded %d events; events without pod are not indexed", len(got))
		}
	}
}

func TestSeqAtReturnsFirstSeqAtOrAfterTime(t *testing.T) {
	l := openLog(t, "", eventlog.Options{NoSync: true})
	var times []time.Time
	for i := 0; i < 5; i++ {
		evs := []eventlog.Event{obs("", i), obs("", i)}
		if _, err := l.Append(context.Background(), evs...); err != nil {
			t.Fatal(err)
		}
		times = append(times, evs[0].Time) // seqs 2i+1, 2i+2 share this time
		time.Sleep(2 * time.Millisecond)
	}
	for _, tc := range []struct {
		name string
		at   time.Time
		want uint64
	}{
		{"before everything", times[0].Add(-time.Hour), 1},
		{"exactly the first commit", times[0], 1},
		{"just after the first commit", times[0].Add(time.Nanosecond), 3},
		{"exactly the third commit", times[2], 5},
		{"after everything", times[4].Add(time.Nanosecond), 11},
		{"before 1970", time.Unix(-5, 0), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := l.SeqAt(tc.at)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("SeqAt = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestBlobsAreStoredContentAddressedWithTheirEvent(t *testing.T) {
	l := openLog(t, "", eventlog.Options{NoSync: true})
	raw := []byte("apiVersion: v1\nkind: Pod\n")
	sum := sha256.Sum256(raw)
	hash := hex.EncodeToString(sum[:])
	ev := eventlog.Event{Pod: "a/b", Blobs: [][]byte{raw}, Data: &eventpb.ManifestAdded{ContentHash: hash}}
	for i := 0; i < 2; i++ { // the same content twice is stored once
		if _, err := l.Append(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	got, err := l.Blob(hash)
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("Blob = %q, %v", got, err)
	}
	if _, err := l.Blob(strings.Repeat("0", 64)); !errors.Is(err, eventlog.ErrNotFound) {
		t.Fatalf("missing blob: err = %v", err)
	}
	st, _ := l.Stats()
	if st.Blobs != 1 {
		t.Fatalf("blobs = %d, want 1", st.Blobs)
	}
	if evs := readAll(t, l, 1, 1); evs[0].Blobs != nil {
		t.Fatalf("read returned blobs")
	}
}

func TestSnapshotsKeepTheNewestThreeAndLatestHonoursTheBound(t *testing.T) {
	l := openLog(t, "", eventlog.Options{NoSync: true})
	appendN(t, l, nil, 50)
	ctx := context.Background()
	if _, ok, err := l.LatestSnapshot(0); ok || err != nil {
		t.Fatalf("empty log has a snapshot: %v %v", ok, err)
	}
	for _, seq := range []uint64{10, 20, 30, 40} {
		if err := l.SaveSnapshot(ctx, eventlog.Snapshot{Seq: seq, State: []byte(fmt.Sprint("state@", seq))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.SaveSnapshot(ctx, eventlog.Snapshot{Seq: 51}); err == nil {
		t.Fatal("snapshot beyond the last seq accepted")
	}
	for _, tc := range []struct {
		at     uint64
		want   uint64
		wantOK bool
	}{
		{0, 40, true}, {45, 40, true}, {40, 40, true}, {39, 30, true}, {25, 20, true}, {19, 0, false}, {10, 0, false},
	} {
		s, ok, err := l.LatestSnapshot(tc.at)
		if err != nil {
			t.Fatal(err)
		}
		if ok != tc.wantOK || s.Seq != tc.want || (ok && string(s.State) != fmt.Sprint("state@", tc.want)) {
			t.Errorf("LatestSnapshot(%d) = %d %q %v; want %d %v", tc.at, s.Seq, s.State, ok, tc.want, tc.wantOK)
		}
	}
	if st, _ := l.Stats(); st.Snapshots != 3 {
		t.Fatalf("snapshots = %d, want 3", st.Snapshots)
	}
}

func TestCompactionKeepsTheTailReplayableAndSeqsGapless(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := eventlog.Open(path, eventlog.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pods := []string{"ns/a", "ns/b"}
	for i := 0; i < 20; i++ { // 20 commits of 10: cut 95 falls inside a commit
		batch := make([]eventlog.Event, 10)
		for j := range batch {
			batch[j] = obs(pods[j%2], i)
		}
		if _, err := l.Append(ctx, batch...); err != nil {
			t.Fatal(err)
		}
	}
	tail := readAll(t, l, 95, 0)
	timeOf95 := tail[0].Time
	before, _ := l.Stats()

	if err := l.Compact(ctx, 95, eventlog.Snapshot{Seq: 90}); err == nil {
		t.Fatal("compaction with a snapshot not at cut-1 accepted")
	}
	if err := l.Compact(ctx, 95, eventlog.Snapshot{Seq: 94, State: []byte("s94")}); err != nil {
		t.Fatal(err)
	}
	check := func(l *eventlog.Log) {
		t.Helper()
		if l.FirstSeq() != 95 || l.LastSeq() != 200 {
			t.Fatalf("first, last = %d, %d; want 95, 200", l.FirstSeq(), l.LastSeq())
		}
		got := readAll(t, l, 0, 0)
		if len(got) != len(tail) || got[0].Seq != 95 {
			t.Fatalf("after compaction read %d events from %d, want %d from 95", len(got), got[0].Seq, len(tail))
		}
		s, ok, err := l.LatestSnapshot(0)
		if err != nil || !ok || s.Seq != 94 || string(s.State) != "s94" {
			t.Fatalf("snapshot = %+v %v %v", s, ok, err)
		}
		if seq, _ := l.SeqAt(timeOf95); seq != 95 {
			t.Fatalf("SeqAt(time of 95) = %d", seq)
		}
		if seq, _ := l.SeqAt(timeOf95.Add(-time.Hour)); seq != 95 {
			t.Fatalf("SeqAt(long ago) = %d", seq)
		}
		var podSeqs []uint64
		_ = l.ReadPod(ctx, "ns/a", 0, 0, func(e eventlog.Event) error { podSeqs = append(podSeqs, e.Seq); return nil })
		if len(podSeqs) != 53 || podSeqs[0] != 95 {
			t.Fatalf("ReadPod after compaction: %d events from %v", len(podSeqs), podSeqs[:1])
		}
		st, _ := l.Stats()
		if st.Events != 106 || st.DataBytes >= before.DataBytes || st.DataBytes <= 0 {
			t.Fatalf("stats after compaction = %+v (before %+v)", st, before)
		}
	}
	check(l)
	sub := l.Subscribe(1)
	if _, err := sub.Next(ctx); !errors.Is(err, eventlog.ErrCompacted) {
		t.Fatalf("subscribing to compacted seqs: err = %v", err)
	}
	sub.Close()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openLog(t, path, eventlog.Options{NoSync: true})
	check(l)
	if seqs, err := l.Append(ctx, obs("ns/a", 0)); err != nil || seqs[0] != 201 {
		t.Fatalf("append after compaction: %v %v", seqs, err)
	}
	// Compacting everything leaves an empty log that still continues.
	if err := l.Compact(ctx, 202, eventlog.Snapshot{Seq: 201}); err != nil {
		t.Fatal(err)
	}
	if l.FirstSeq() != 202 || l.LastSeq() != 201 {
		t.Fatalf("fully compacted: first, last = %d, %d", l.FirstSeq(), l.LastSeq())
	}
	if err := l.Compact(ctx, 300, eventlog.Snapshot{Seq: 299}); err == nil {
		t.Fatal("compaction past the end accepted")
	}
}

func TestRetentionCutByAgeAndBytes(t *testing.T) {
	l := openLog(t, "", eventlog.Options{NoSync: true})
	appendN(t, l, nil, 90)
	st90, _ := l.Stats()
	appendN(t, l, nil, 10)
	st, _ := l.Stats()
	newest10 := st.DataBytes - st90.DataBytes
	last := readAll(t, l, 100, 100)[0].Time
	for _, tc := range []struct {
		name string
		r    eventlog.Retention
		now  time.Time
		want uint64
	}{
		{"unbounded keeps all", eventlog.Retention{}, last, 1},
		{"age keeps all that is young", eventlog.Retention{MaxAge: time.Hour}, last, 1},
		{"age drops all that is old", eventlog.Retention{MaxAge: time.Hour}, last.Add(2 * time.Hour), 101},
		{"bytes above size keep all", eventlog.Retention{MaxBytes: st.DataBytes}, last, 1},
		{"bytes keep the newest that fit", eventlog.Retention{MaxBytes: newest10}, last, 91},
		{"the later cut wins", eventlog.Retention{MaxAge: time.Hour, MaxBytes: newest10}, last, 91},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := l.RetentionCut(tc.r, tc.now)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("cut = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestSubscribeSwitchesFromCatchUpToTailWithoutGapOrDuplicate(t *testing.T) {
	l := openLog(t, "", eventlog.Options{NoSync: true})
	appendN(t, l, nil, 700) // stored backlog larger than a read chunk
	const writers, perWriter = 4, 300
	total := uint64(700 + writers*perWriter)

	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				if _, err := l.Append(context.Background(), obs("ns/w", i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for _, from := range []uint64{0, 1, 350} {
		sub := l.Subscribe(from)
		want := max(from, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		for want <= total {
			e, err := sub.Next(ctx)
			if err != nil {
				t.Fatalf("from %d: Next at %d: %v", from, want, err)
			}
			if e.Seq != want {
				t.Fatalf("from %d: got seq %d, want %d", from, e.Seq, want)
			}
			want++
		}
		cancel()
		sub.Close()
	}
	wg.Wait()
}

func TestSubscriptionNextEndsWithContextSubCloseOrLogClose(t *testing.T) {
	l := openLog(t, "", eventlog.Options{NoSync: true})
	appendN(t, l, nil, 1)

	sub := l.Subscribe(2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := sub.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("idle Next: err = %v", err)
	}
	// A waiting Next wakes for a new commit.
	go func() {
		time.Sleep(10 * time.Millisecond)
		_, _ = l.Append(context.Background(), obs("", 2))
	}()
	if e, err := sub.Next(context.Background()); err != nil || e.Seq != 2 {
		t.Fatalf("tail Next = %d, %v", e.Seq, err)
	}
	sub.Close()
	if _, err := sub.Next(context.Background()); !errors.Is(err, eventlog.ErrClosed) {
		t.Fatalf("after sub Close: err = %v", err)
	}

	sub2 := l.Subscribe(3)
	done := make(chan error)
	go func() { _, err := sub2.Next(context.Background()); done <- err }()
	time.Sleep(10 * time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, eventlog.ErrClosed) {
		t.Fatalf("after log Close: err = %v", err)
	}
}

func TestClosedLogRefusesWorkAndCloseIsIdempotent(t *testing.T) {
	l := openLog(t, "", eventlog.Options{NoSync: true})
	appendN(t, l, nil, 3)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := l.Append(context.Background(), obs("", 1)); !errors.Is(err, eventlog.ErrClosed) {
		t.Fatalf("Append: %v", err)
	}
	if err := l.Read(context.Background(), 0, 0, func(eventlog.Event) error { return nil }); !errors.Is(err, eventlog.ErrClosed) {
		t.Fatalf("Read: %v", err)
	}
	if _, err := l.Stats(); !errors.Is(err, eventlog.ErrClosed) {
		t.Fatalf("Stats: %v", err)
	}
}

func TestCloseCommitsEverythingQueued(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := eventlog.Open(path, eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var acked []uint64
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				seqs, err := l.Append(context.Background(), obs("", w))
				if err != nil {
					if !errors.Is(err, eventlog.ErrClosed) {
						t.Error(err)
					}
					return
				}
				mu.Lock()
				acked = append(acked, seqs...)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(30 * time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	l = openLog(t, path, eventlog.Options{ReadOnly: true})
	for _, s := range acked {
		if s > l.LastSeq() {
			t.Fatalf("acknowledged seq %d missing (last %d)", s, l.LastSeq())
		}
	}
	if len(acked) == 0 {
		t.Fatal("no appends acknowledged")
	}
}

func TestBackupIsAConsistentLogWhileAppendsContinue(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, filepath.Join(dir, "ledger.db"), eventlog.Options{NoSync: true})
	appendN(t, l, []string{"a/b"}, 200)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := l.Append(context.Background(), obs("a/b", 0)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var buf bytes.Buffer
	n, err := l.Backup(&buf)
	close(stop)
	wg.Wait()
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("backup: %d bytes, %v", n, err)
	}
	bpath := filepath.Join(dir, "backup.db")
	if err := os.WriteFile(bpath, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	b := openLog(t, bpath, eventlog.Options{ReadOnly: true})
	if b.LastSeq() < 200 {
		t.Fatalf("backup has last seq %d", b.LastSeq())
	}
	for i, e := range readAll(t, b, 0, 0) {
		if e.Seq != uint64(i+1) {
			t.Fatalf("backup has a gap at %d", i+1)
		}
	}
}

func fileState(t *testing.T, path string) (string, time.Time) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), fi.ModTime()
}

func TestReadOnlyNeverModifiesTheFileAndRefusesWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := eventlog.Open(path, eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, []string{"a/b"}, 50)
	if err := l.SaveSnapshot(context.Background(), eventlog.Snapshot{Seq: 10}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	sum, mtime := fileState(t, path)
	time.Sleep(10 * time.Millisecond) // a write would show in the mtime

	ro := openLog(t, path, eventlog.Options{ReadOnly: true})
	ro2 := openLog(t, path, eventlog.Options{ReadOnly: true}) // read-only opens share the file
	ctx := context.Background()
	if got := readAll(t, ro, 0, 0); len(got) != 50 {
		t.Fatalf("read %d events", len(got))
	}
	_ = ro.ReadPod(ctx, "a/b", 0, 0, func(eventlog.Event) error { return nil })
	_, _ = ro.SeqAt(time.Now())
	_, _, _ = ro.LatestSnapshot(0)
	_, _ = ro.Stats()
	_, _ = ro2.Stats()
	_, _ = ro.Backup(&bytes.Buffer{})
	if _, err := ro.Append(ctx, obs("", 1)); err == nil {
		t.Error("read-only Append succeeded")
	}
	if err := ro.SaveSnapshot(ctx, eventlog.Snapshot{Seq: 1}); err == nil {
		t.Error("read-only SaveSnapshot succeeded")
	}
	if err := ro.Compact(ctx, 2, eventlog.Snapshot{Seq: 1}); err == nil {
		t.Error("read-only Compact succeeded")
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ro2.Close(); err != nil {
		t.Fatal(err)
	}
	if s, m := fileState(t, path); s != sum || !m.Equal(mtime) {
		t.Fatalf("read-only open changed the file (sum %v mtime %v)", s != sum, !m.Equal(mtime))
	}
}

func TestOpenRefusesBadFilesWithOneLineErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	goodLog := func(name string, n int) string {
		p := filepath.Join(dir, name)
		l, err := eventlog.Open(p, eventlog.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			batch := make([]eventlog.Event, 100)
			for j := range batch {
				batch[j] = obs("ns/p", j)
			}
			if _, err := l.Append(context.Background(), batch...); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		return p
	}
	boltOnly := func(name string, fn func(tx *bolt.Tx) error) string {
		p := filepath.Join(dir, name)
		db, err := bolt.Open(p, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(fn); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		return p
	}

	garbage := write("garbage.db", bytes.Repeat([]byte("not a database "), 2000))
	short := write("short.db", []byte("x"))
	empty := write("empty.db", nil)
	other := boltOnly("other.db", func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("stuff")); return err })
	wrongMagic := boltOnly("wrongmagic.db", func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("meta"))
		if err != nil {
			return err
		}
		return b.Put([]byte("magic"), []byte("somethingelse"))
	})
	newer := goodLog("newer.db", 1)
	db, err := bolt.Open(newer, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("schema"), []byte{0, 0, 0, 7}) })
	_ = db.Close()
	truncated := goodLog("truncated.db", 50)
	if err := os.Truncate(truncated, 3*4096); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name     string
		path     string
		readOnly bool
		want     string
	}{
		{"garbage", garbage, false, garbage + ": not a ledgerlet log"},
		{"garbage read-only", garbage, true, garbage + ": not a ledgerlet log"},
		{"one byte", short, false, short + ": not a ledgerlet log"},
		{"empty read-only", empty, true, empty + ": not a ledgerlet log"},
		{"another bbolt database", other, false, other + ": not a ledgerlet log"},
		{"another bbolt database read-only", other, true, other + ": not a ledgerlet log"},
		{"wrong magic", wrongMagic, true, wrongMagic + ": not a ledgerlet log"},
		{"newer schema", newer, false, newer + ": schema version 7 is newer than this ledgerlet supports (1)"},
		{"newer schema read-only", newer, true, newer + ": schema version 7 is newer than this ledgerlet supports (1)"},
		{"truncated", truncated, false, truncated + ": truncated or corrupt ("},
		{"truncated read-only", truncated, true, truncated + ": truncated or corrupt ("},
		{"missing read-only", filepath.Join(dir, "missing.db"), true, filepath.Join(dir, "missing.db") + ": no such file"},
		{"directory", dir, true, dir + ": is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := eventlog.Open(tc.path, eventlog.Options{ReadOnly: tc.readOnly, NoSync: true})
			if err == nil {
				_ = l.Close()
				t.Fatal("opened")
			}
			if msg := err.Error(); !strings.HasPrefix(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q, want prefix %q on one line", msg, tc.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("read-only open created the file")
	}
}

func TestOpenReportsAFileHeldByARunningAgent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	_ = openLog(t, path, eventlog.Options{NoSync: true})
	for _, ro := range []bool{true, false} {
		start := time.Now()
		_, err := eventlog.Open(path, eventlog.Options{ReadOnly: ro, LockTimeout: 50 * time.Millisecond})
		want := path + ": in use by a running agent (use the agent's socket, or `ledgerlet backup`)"
		if err == nil || err.Error() != want {
			t.Fatalf("readOnly=%v: err = %v, want %q", ro, err, want)
		}
		if time.Since(start) > 2*time.Second {
			t.Fatalf("lock wait ignored the timeout")
		}
	}
}
