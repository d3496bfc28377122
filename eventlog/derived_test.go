package eventlog_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ledgerlet/ledgerlet/eventlog"
)

// logView is everything a reader can learn from the derived data (pod
// index, time index, data size), for comparing two logs.
func logView(t *testing.T, l *eventlog.Log, pods []string, times []time.Time) string {
	t.Helper()
	var b bytes.Buffer
	st, err := l.Stats()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "first=%d last=%d events=%d data=%d\n", st.FirstSeq, st.LastSeq, st.Events, st.DataBytes)
	for _, pod := range pods {
		for _, r := range [][2]uint64{{0, 0}, {40, 90}, {st.LastSeq - 10, 0}} {
			fmt.Fprintf(&b, "%s %v:", pod, r)
			err := l.ReadPod(context.Background(), pod, r[0], r[1], func(e eventlog.Event) error {
				if e.Pod != pod {
					return fmt.Errorf("ReadPod(%q) yielded an event of %q", pod, e.Pod)
				}
				fmt.Fprintf(&b, " %d", e.Seq)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			b.WriteByte('\n')
		}
	}
	for _, tm := range times {
		for _, d := range []time.Duration{-1, 0, 1} {
			seq, err := l.SeqAt(tm.Add(d))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "seqAt(%v%+d)=%d\n", tm.UnixNano(), d, seq)
		}
	}
	for _, max := range []int64{1, st.DataBytes / 2, st.DataBytes - 1} {
		cut, err := l.RetentionCut(eventlog.Retention{MaxBytes: max}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "cut(%d)=%d\n", max, cut)
	}
	return b.String()
}

// The indexes of the newest events are written only every so often. A log
// whose indexes lag behind its events (as after a crash: a backup taken
// while appending captures exactly that state) must read the same as one
// that is fully indexed, reopen without losing anything, and catch up.
func TestIndexesOfTheUnindexedTailAreRebuiltAtOpen(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, filepath.Join(dir, "ledger.db"), eventlog.Options{NoSync: true})
	pods := []string{"ns/a", "ns/b", "ns/c"}
	var times []time.Time
	for i := 0; i < 150; i++ { // more than one flush, and a tail
		evs := []eventlog.Event{obs(pods[i%3], i)}
		if i%7 == 0 {
			evs = append(evs, obs("", i), obs(pods[(i+1)%3], i))
		}
		if _, err := l.Append(context.Background(), evs...); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			times = append(times, evs[0].Time)
		}
	}
	want := logView(t, l, pods, times)
	// All pods' events, from the events themselves.
	var direct bytes.Buffer
	for _, e := range readAll(t, l, 0, 0) {
		fmt.Fprintf(&direct, "%d %s\n", e.Seq, e.Pod)
	}

	lastBefore := l.LastSeq()
	var buf bytes.Buffer
	if _, err := l.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(dir, "crashed.db")
	if err := os.WriteFile(crashed, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	ro := openLog(t, crashed, eventlog.Options{ReadOnly: true})
	if got := logView(t, ro, pods, times); got != want {
		t.Fatalf("read-only view of the unflushed log differs:\n%s\nwant:\n%s", got, want)
	}
	_ = ro.Close()

	c := openLog(t, crashed, eventlog.Options{NoSync: true})
	if got := logView(t, c, pods, times); got != want {
		t.Fatalf("reopened view differs:\n%s\nwant:\n%s", got, want)
	}
	// Continue on both and compare again, after a close (full flush) too.
	for _, lg := range []*eventlog.Log{l, c} {
		for i := 0; i < 100; i++ {
			if _, err := lg.Append(context.Background(), obs(pods[i%2], i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	want = logView(t, l, pods, times)
	if got := logView(t, c, pods, times); got != want {
		t.Fatalf("view after more appends differs:\n%s\nwant:\n%s", got, want)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = openLog(t, crashed, eventlog.Options{ReadOnly: true})
	if got := logView(t, c, pods, times); got != want {
		t.Fatalf("view after close differs:\n%s\nwant:\n%s", got, want)
	}
	var again bytes.Buffer
	for _, e := range readAll(t, c, 0, lastBefore) {
		fmt.Fprintf(&again, "%d %s\n", e.Seq, e.Pod)
	}
	if again.String() != direct.String() {
		t.Fatal("events changed")
	}
}

// Compaction of a log whose newest events are not yet indexed.
func TestCompactionWithAnUnindexedTail(t *testing.T) {
	l := openLog(t, "", eventlog.Options{NoSync: true})
	pods := []string{"ns/a", "ns/b"}
	appendN(t, l, pods, 100) // 64 indexed, 36 not
	if err := l.Compact(context.Background(), 80, eventlog.Snapshot{Seq: 79}); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, pods, 10)
	var got []uint64
	err := l.ReadPod(context.Background(), "ns/b", 0, 0, func(e eventlog.Event) error { got = append(got, e.Seq); return nil })
	if err != nil {
		t.Fatal(err)
	}
	want := []uint64{80, 82, 84, 86, 88, 90, 92, 94, 96, 98, 100, 102, 104, 106, 108, 110}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ReadPod after compaction = %v, want %v", got, want)
	}
	if seq, err := l.SeqAt(time.Unix(0, 0)); err != nil || seq != 80 {
		t.Fatalf("SeqAt(epoch) = %d, %v; want 80", seq, err)
	}
}

// A log written before "indexed" existed is fully indexed; the first
// read-write Open records that, so that the tail it then leaves is read.
func TestLogWithoutIndexedRecordIsTakenAsFullyIndexed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := openLog(t, path, eventlog.Options{NoSync: true})
	appendN(t, l, []string{"ns/a", "ns/b"}, 30)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Delete([]byte("indexed")) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, path, eventlog.Options{NoSync: true})
	appendN(t, l, []string{"ns/a", "ns/b"}, 10)
	var got []uint64
	if err := l.ReadPod(context.Background(), "ns/b", 0, 0, func(e eventlog.Event) error { got = append(got, e.Seq); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 20 || got[19] != 40 {
		t.Fatalf("ReadPod after upgrade = %v", got)
	}
	if st, err := l.Stats(); err != nil || st.Events != 40 {
		t.Fatalf("stats %+v, %v", st, err)
	}
}
