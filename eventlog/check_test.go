package eventlog_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/ledgerlet/ledgerlet/eventlog"
	"github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

// checkedLog writes a log with several pods, blobs, a compaction, periodic
// snapshots and an unindexed tail, and closes it.
func checkedLog(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := eventlog.Open(path, eventlog.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	pods := []string{"ns/a", "ns/b", "ns/c"}
	for i := 0; i < 30; i++ {
		batch := []eventlog.Event{obs(pods[i%3], i), obs(pods[(i+1)%3], i), {Data: &eventpb.AgentStarted{Version: "v"}}}
		if i%10 == 0 {
			batch = append(batch, eventlog.Event{Pod: "ns/a", Data: &eventpb.ManifestAdded{Path: "/m/a.yaml"}, Blobs: [][]byte{[]byte(fmt.Sprint("manifest ", i))}})
		}
		if _, err := l.Append(ctx, batch...); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.SaveSnapshot(ctx, eventlog.Snapshot{Seq: 60, State: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	if err := l.Compact(ctx, 20, eventlog.Snapshot{Seq: 19, State: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, pods, 40) // an unindexed tail
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustCheck(t *testing.T, path string, opts eventlog.CheckOptions) eventlog.Report {
	t.Helper()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := eventlog.CheckWith(path, opts)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("check modified the file")
	}
	return rep
}

func editBolt(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func hasProblem(rep eventlog.Report, substr string) bool {
	for _, p := range rep.Problems {
		if strings.Contains(p, substr) {
			return true
		}
	}
	return false
}

func TestCheckFindsNoProblemInASoundLog(t *testing.T) {
	path := checkedLog(t)
	rep := mustCheck(t, path, eventlog.CheckOptions{DecodeSnapshot: func(b []byte) error { return nil }})
	if !rep.OK() {
		t.Fatalf("problems in a sound log:\n%s", strings.Join(rep.Problems, "\n"))
	}
	if rep.FirstSeq != 20 || rep.LastSeq != 133 || rep.ReadableThrough != 133 || rep.Events != 114 || rep.SchemaVersion != eventlog.SchemaVersion {
		t.Fatalf("report %+v", rep)
	}
	if fmt.Sprint(rep.Snapshots) != "[19 60]" {
		t.Fatalf("snapshots %v", rep.Snapshots)
	}
}

func TestCheckReportsEachKindOfDamageOnOneLine(t *testing.T) {
	key := func(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }
	for _, tc := range []struct {
		name     string
		damage   func(tx *bolt.Tx) error
		opts     eventlog.CheckOptions
		want     string
		readable uint64
	}{
		{"seq gap", func(tx *bolt.Tx) error { return tx.Bucket([]byte("events")).Delete(key(50)) },
			eventlog.CheckOptions{}, "events 50..50 are missing", 49},
		{"undecodable event", func(tx *bolt.Tx) error { return tx.Bucket([]byte("events")).Put(key(70), []byte{1, 1, 1, 0xff, 9}) },
			eventlog.CheckOptions{}, "event 70: ", 69},
		{"event of an unknown pod", func(tx *bolt.Tx) error {
			// The stored value is a format byte, uvarint pod id, uvarint
			// time, (uvarint boottime,) record.
			v := tx.Bucket([]byte("events")).Get(key(71))
			_, n := binary.Uvarint(v[1:])
			return tx.Bucket([]byte("events")).Put(key(71), append([]byte{v[0], 99}, v[1+n:]...))
		}, eventlog.CheckOptions{}, "event 71: decode event 71: unknown pod id 99", 70},
		{"missing time index entry", func(tx *bolt.Tx) error {
			c := tx.Bucket([]byte("time")).Cursor()
			c.First()
			k, _ := c.Next()
			return tx.Bucket([]byte("time")).Delete(bytes.Clone(k))
		}, eventlog.CheckOptions{}, "time index: no entry for seq", 133},
		{"missing pod index block", func(tx *bolt.Tx) error {
			k, _ := tx.Bucket([]byte("podidx")).Cursor().Last()
			return tx.Bucket([]byte("podidx")).Delete(bytes.Clone(k))
		}, eventlog.CheckOptions{}, "pod index: event", 133},
		{"wrong data size", func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("databytes"), key(12345)) },
			eventlog.CheckOptions{}, "meta: data size 12345", 133},
		{"no snapshot at the cut", func(tx *bolt.Tx) error { return tx.Bucket([]byte("snapshots")).Delete(key(19)) },
			eventlog.CheckOptions{}, "holds no snapshot at 19", 133},
		{"snapshot past the end", func(tx *bolt.Tx) error { return tx.Bucket([]byte("snapshots")).Put(key(500), []byte("{}")) },
			eventlog.CheckOptions{}, "snapshot at 500 is past the last seq 133", 133},
		{"undecodable snapshot", func(tx *bolt.Tx) error { return nil },
			eventlog.CheckOptions{DecodeSnapshot: func(b []byte) error { return errors.New("schema 9") }}, "snapshot at 19: schema 9", 133},
		{"blob that does not match its hash", func(tx *bolt.Tx) error {
			k, _ := tx.Bucket([]byte("blobs")).Cursor().First()
			return tx.Bucket([]byte("blobs")).Put(bytes.Clone(k), []byte("tampered"))
		}, eventlog.CheckOptions{}, "content does not match its hash", 133},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := checkedLog(t)
			editBolt(t, path, tc.damage)
			rep := mustCheck(t, path, tc.opts)
			if !hasProblem(rep, tc.want) || rep.ReadableThrough != tc.readable {
				t.Fatalf("readable through %d (want %d), problems:\n%s\nwant one containing %q", rep.ReadableThrough, tc.readable, strings.Join(rep.Problems, "\n"), tc.want)
			}
			for _, p := range rep.Problems {
				if strings.Contains(p, "\n") {
					t.Errorf("problem on several lines: %q", p)
				}
			}
			if tc.readable < rep.LastSeq && !hasProblem(rep, fmt.Sprintf("readable: events 20..%d of 20..133", tc.readable)) {
				t.Errorf("no line says what is readable:\n%s", strings.Join(rep.Problems, "\n"))
			}
		})
	}
}

// TestCheckSaysWhatATruncatedFileStillHolds: a file cut short is reported,
// not refused, with the seqs that can still be read.
func TestCheckSaysWhatATruncatedFileStillHolds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := eventlog.Open(path, eventlog.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
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
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// bbolt grows the file well ahead of its data: cut into the data.
	end := int64(len(bytes.TrimRight(raw, "\x00")))
	end = (end + 4095) / 4096 * 4096
	for _, cut := range []int64{end - 4096, end / 2, 3 * 4096} {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			cp := filepath.Join(t.TempDir(), "cut.db")
			if err := os.WriteFile(cp, raw[:cut], 0o600); err != nil {
				t.Fatal(err)
			}
			rep := mustCheck(t, cp, eventlog.CheckOptions{})
			if !hasProblem(rep, "truncated: the file is") || rep.OK() {
				t.Fatalf("problems:\n%s", strings.Join(rep.Problems, "\n"))
			}
			if rep.ReadableThrough > 5000 {
				t.Fatalf("readable through %d of 5000", rep.ReadableThrough)
			}
			t.Logf("cut at %d of %d: readable through %d; %d problems, first %q", cut, end, rep.ReadableThrough, len(rep.Problems), rep.Problems[:min(3, len(rep.Problems))])
		})
	}
}

func TestCheckRefusesWhatIsNotALedgerletLog(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 2000), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{garbage, filepath.Join(dir, "missing.db"), dir} {
		if rep, err := eventlog.Check(p); err == nil {
			t.Errorf("check %s: %+v, want an error", p, rep)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("error on several lines: %q", err)
		}
	}
}
