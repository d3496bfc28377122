package containerlogs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func writeLog(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
}

func TestCopyPrintsMessagesLikeKubectlLogs(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "0.log")
	writeLog(t, live+".20260102-150405", ""+
		"2026-01-02T15:04:01.000000001Z stdout F one\n"+
		"2026-01-02T15:04:02.000000002Z stdout P tw\n")
	if err := compress(live + ".20260102-150405"); err != nil {
		t.Fatal(err)
	}
	writeLog(t, live+".20260102-150415", ""+
		"2026-01-02T15:04:03Z stderr P err-\n"+
		"2026-01-02T15:04:04Z stdout F o\n"+ // ends stdout's "tw" across files
		"not a CRI line\n"+
		"2026-01-02T15:04:05Z stderr F line\n")
	writeLog(t, live, ""+
		"2026-01-02T15:04:06Z stdout F  spaced \n"+
		"2026-01-02T15:04:07Z stdout F \n"+
		"2026-01-02T15:04:08Z stdout P cut short")
	var warned []string
	warn := func(file string, line int, err error) {
		warned = append(warned, fmt.Sprintf("%s:%d", filepath.Base(file), line))
	}
	for _, tc := range []struct {
		name string
		opt  ReadOptions
		want string
	}{
		{"all", ReadOptions{Tail: -1, Warn: warn}, "one\ntwo\nerr-line\n spaced \n\ncut short\n"},
		{"tail", ReadOptions{Tail: 2}, "\ncut short\n"},
		{"tail more than there is", ReadOptions{Tail: 100}, "one\ntwo\nerr-line\n spaced \n\ncut short\n"},
		{"tail 0", ReadOptions{Tail: 0}, ""},
		{"timestamps of the first part", ReadOptions{Tail: 3, Timestamps: true},
			"2026-01-02T15:04:06Z  spaced \n2026-01-02T15:04:07Z \n2026-01-02T15:04:08Z cut short\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Copy(context.Background(), &buf, live, tc.opt); err != nil {
				t.Fatal(err)
			}
			if buf.String() != tc.want {
				t.Fatalf("got %q, want %q", buf.String(), tc.want)
			}
		})
	}
	if strings.Join(warned, " ") != "0.log.20260102-150415:3" {
		t.Fatalf("warned about %v, want the one bad line by file and number", warned)
	}
}

func TestAFileCompressedWhileListedIsReadCompressed(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "0.log.20260102-150405")
	writeLog(t, plain, "2026-01-02T15:04:01Z stdout F one\n")
	if err := compress(plain); err != nil {
		t.Fatal(err)
	}
	var got []string
	d := &decoder{emit: func(_ time.Time, msg []byte) { got = append(got, string(msg)) }}
	if err := d.readFile(context.Background(), plain, nil); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "one" {
		t.Fatalf("read %q from a file listed plain and then gzipped", got)
	}
}

func TestCopyOfAMissingLogSaysSo(t *testing.T) {
	err := Copy(context.Background(), &bytes.Buffer{}, filepath.Join(t.TempDir(), "0.log"), ReadOptions{Tail: -1})
	if err == nil || !strings.Contains(err.Error(), "no log at") {
		t.Fatalf("Copy = %v, want no log at …", err)
	}
}

// syncBuffer is a bytes.Buffer safe to read while Copy writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestFollowContinuesAcrossRotation(t *testing.T) {
	defer goleak.VerifyNone(t)
	root := t.TempDir()
	live, _ := Path(root, "default", "web-node1", "uid-1", "app", 0)
	rt := newFakeRuntime(t, live)
	rt.write(t, 3, 20)
	r := &Rotator{Runtime: rt, Root: root, MaxSize: 1, MaxFiles: 2, Logger: quietLogger(), Now: stepClock()}
	var out syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var running sync.Mutex
	stillRunning := true
	done := make(chan error, 1)
	go func() {
		done <- Copy(ctx, &out, live, ReadOptions{Tail: 2, Follow: true, Poll: 5 * time.Millisecond,
			Running: func(context.Context) bool { running.Lock(); defer running.Unlock(); return stillRunning }})
	}()
	waitFor := func(n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for strings.Count(out.String(), "\n") < n {
			if time.Now().After(deadline) {
				t.Fatalf("have %q, want %d lines", out.String(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor(2)
	for i := range 3 {
		// Rotations are a period (10 s) apart and the follower checks far
		// more often: each rotation here waits for the follower to have read
		// what was written after the one before (two rotations within one
		// poll are outside what follow promises, and a loaded machine made
		// them happen when the test rotated right after writing).
		if err := r.Rotate(context.Background(), Target{ContainerID: "c", Path: live}); err != nil {
			t.Fatal(err)
		}
		rt.write(t, 2, 20)
		waitFor(4 + 2*i)
	}
	rt.write(t, 1, 20)
	waitFor(9)
	running.Lock()
	stillRunning = false
	running.Unlock()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end when the instance stopped running")
	}
	var nums []string
	for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		nums = append(nums, strings.Fields(l)[1])
	}
	if got, want := strings.Join(nums, " "), "000002 000003 000004 000005 000006 000007 000008 000009 000010"; got != want {
		t.Fatalf("followed %s, want %s: every line once, in order", got, want)
	}
}

// BenchmarkCopyDefaultBound reads what the defaults keep of one container
// (--container-log-max-size 10Mi, --container-log-max-files 5: four gzipped
// or plain rotated files and the live one, ~50 MiB of 100-byte lines), as
// `ledgerlet logs` and `logs --tail 10` do.
func BenchmarkCopyDefaultBound(b *testing.B) {
	dir := b.TempDir()
	live := filepath.Join(dir, "0.log")
	line := "2026-01-02T15:04:05.123456789Z stdout F " + strings.Repeat("x", 60) + "\n"
	chunk := []byte(strings.Repeat(line, 10<<20/len(line)))
	for i, name := range []string{live + ".20260102-150001", live + ".20260102-150002", live + ".20260102-150003", live + ".20260102-150004", live} {
		if err := os.WriteFile(name, chunk, 0o640); err != nil {
			b.Fatal(err)
		}
		if i < 3 {
			if err := compress(name); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, tail := range []int{-1, 10} {
		b.Run(fmt.Sprintf("tail=%d", tail), func(b *testing.B) {
			b.SetBytes(int64(5 * len(chunk)))
			for b.Loop() {
				if err := Copy(context.Background(), io.Discard, live, ReadOptions{Tail: tail}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
