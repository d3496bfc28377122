package eventlog_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ledgerlet/ledgerlet/eventlog"
	"github.com/ledgerlet/ledgerlet/eventlog/eventlogtest"
)

// crashChildEnv makes the test binary run crashChild (see TestMain) with the
// log path as its value.
const crashChildEnv = "LEDGERLET_EVENTLOG_CRASH_CHILD"

// crashChild appends until it is killed, printing every seq after Append
// acknowledged it. One write(2) per line keeps lines whole on the pipe.
func crashChild(path string) int {
	l, err := eventlog.Open(path, eventlog.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		return 3
	}
	os.Stdout.WriteString("ready\n")
	var mu sync.Mutex
	ack := func(seqs []uint64) {
		var b strings.Builder
		for _, s := range seqs {
			b.WriteString(strconv.FormatUint(s, 10))
			b.WriteByte('\n')
		}
		mu.Lock()
		os.Stdout.WriteString(b.String())
		mu.Unlock()
	}
	mix := eventlogtest.NewMix(uint64(os.Getpid()))
	var mixMu sync.Mutex
	next := func() eventlog.Event {
		mixMu.Lock()
		defer mixMu.Unlock()
		return mix.Next()
	}
	ctx := context.Background()
	for round := 0; ; round++ {
		if round%2 == 0 {
			// Single appends, one commit each.
			for i := 0; i < 20; i++ {
				seqs, err := l.Append(ctx, next())
				if err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					return 4
				}
				ack(seqs)
			}
			continue
		}
		// Concurrent appenders sharing group commits, some with several events.
		var wg sync.WaitGroup
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 10; i++ {
					evs := []eventlog.Event{next()}
					if g%4 == 0 {
						evs = append(evs, next(), next())
					}
					seqs, err := l.Append(ctx, evs...)
					if err != nil {
						fmt.Fprintln(os.Stderr, "child append:", err)
						os.Exit(4)
					}
					ack(seqs)
				}
			}()
		}
		wg.Wait()
	}
}

// TestCrashLosesNoAcknowledgedAppend SIGKILLs an appending child process at
// random moments and checks after each kill that every acknowledged seq is
// there, seqs are gapless, the file opens cleanly, and appends continue.
func TestCrashLosesNoAcknowledgedAppend(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test re-executes the test binary many times")
	}
	iterations := 30
	if v := os.Getenv("LEDGERLET_CRASH_ITERATIONS"); v != "" {
		iterations, _ = strconv.Atoi(v)
	}
	budget := 15 * time.Second
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ledger.db")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	start := time.Now()
	maxAcked := uint64(0)
	for it := 0; it < iterations; it++ {
		if time.Since(start) > budget && it >= 10 {
			t.Logf("stopping after %d iterations (time budget)", it)
			break
		}
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		// Kill at a random moment after the child is appending.
		var acked []uint64
		ready := false
		delay := time.Duration(5+rng.IntN(76)) * time.Millisecond
		var killAt <-chan time.Time
		timeout := time.After(10 * time.Second)
	collect:
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					break collect
				}
				if line == "ready" {
					ready = true
					killAt = time.After(delay)
					continue
				}
				s, err := strconv.ParseUint(line, 10, 64)
				if err != nil {
					t.Fatalf("child printed %q", line)
				}
				acked = append(acked, s)
			case <-killAt:
				_ = cmd.Process.Signal(syscall.SIGKILL)
				killAt = nil
			case <-timeout:
				_ = cmd.Process.Kill()
				t.Fatalf("iteration %d: child did not get ready or die (ready=%v): %s", it, ready, stderr.String())
			}
		}
		_ = cmd.Wait()
		if !ready {
			t.Fatalf("iteration %d: child failed before appending: %s", it, stderr.String())
		}
		if st := stderr.String(); st != "" {
			t.Fatalf("iteration %d: child stderr: %s", it, st)
		}

		l, err := eventlog.Open(path, eventlog.Options{})
		if err != nil {
			t.Fatalf("iteration %d: reopen after kill: %v", it, err)
		}
		last := l.LastSeq()
		for _, s := range acked {
			if s > last {
				t.Fatalf("iteration %d: acknowledged seq %d lost (last %d)", it, s, last)
			}
			maxAcked = max(maxAcked, s)
		}
		want := l.FirstSeq()
		byPod := make(map[string][]uint64)
		err = l.Read(context.Background(), 0, 0, func(e eventlog.Event) error {
			if e.Seq != want {
				return fmt.Errorf("gap: seq %d where %d expected", e.Seq, want)
			}
			want++
			if e.Pod != "" {
				byPod[e.Pod] = append(byPod[e.Pod], e.Seq)
			}
			return nil
		})
		if err == nil && want != last+1 {
			err = fmt.Errorf("read ended at %d, last is %d", want-1, last)
		}
		if err != nil {
			t.Fatalf("iteration %d: %v", it, err)
		}
		// The pod index is partly rebuilt at Open (its newest part is
		// written lazily): it must match the events.
		for pod, seqs := range byPod {
			var got []uint64
			if err := l.ReadPod(context.Background(), pod, 0, 0, func(e eventlog.Event) error { got = append(got, e.Seq); return nil }); err != nil {
				t.Fatalf("iteration %d: read pod %s: %v", it, pod, err)
			}
			if fmt.Sprint(got) != fmt.Sprint(seqs) {
				t.Fatalf("iteration %d: pod index of %s has %d seqs, events have %d", it, pod, len(got), len(seqs))
			}
		}
		seqs, err := l.Append(context.Background(), eventlogtest.NewMix(1).Next())
		if err != nil || seqs[0] != last+1 {
			t.Fatalf("iteration %d: append after reopen: %v %v (last %d)", it, seqs, err, last)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if maxAcked == 0 {
		t.Fatal("the child never acknowledged an append")
	}
	t.Logf("%d acknowledged seqs survived, in %v", maxAcked, time.Since(start).Round(time.Millisecond))
}
