package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ledgerlet/ledgerlet/cmd/ledgerlet/internal/api"
	"github.com/ledgerlet/ledgerlet/eventlog"
	"github.com/ledgerlet/ledgerlet/projector"
	"github.com/ledgerlet/ledgerlet/projector/projectortest"
)

// buildBinary builds the ledgerlet command once per test binary run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ledgerlet")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// idleState is a projection the export endpoint never consults.
type idleState struct{}

func (idleState) WaitFor(context.Context, uint64) error { return nil }
func (idleState) Views(time.Time) []projector.PodView   { return nil }

// TestExportResumesAfterKill9WithNoGap runs the built exporter following
// a log that grows, kills it with SIGKILL four times mid-stream and starts
// it again on the same cursor: every seq reaches the file at least once,
// in order, each line whole.
func TestExportResumesAfterKill9WithNoGap(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	l, err := eventlog.Open(filepath.Join(dir, "ledger.db"), eventlog.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sock, err := api.Listen(filepath.Join(dir, "ledgerlet.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srvDone := make(chan error, 1)
	go func() {
		srvDone <- (&api.Server{Log: l, State: idleState{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).Serve(sock)(ctx)
	}()
	defer func() { cancel(); <-srvDone }()

	const total = 40000
	appended := make(chan error, 1)
	go func() {
		gen := projectortest.New(3, 10)
		for n := 0; n < total; n += 100 {
			if _, err := l.Append(ctx, gen.Events(100)...); err != nil {
				appended <- err
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		appended <- nil
	}()

	out, cur := filepath.Join(dir, "export.jsonl"), filepath.Join(dir, "cursor")
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "export", "--data-dir", dir, "--follow", "--file", out, "--cursor-file", cur)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	cursor := func() uint64 {
		b, _ := os.ReadFile(cur)
		n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		return n
	}
	var killedAt []uint64
	for i := 0; i < 4; i++ {
		cmd := start()
		time.Sleep(time.Duration(350+120*i) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		killedAt = append(killedAt, cursor())
	}
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	if killedAt[len(killedAt)-1] >= total {
		t.Fatalf("the exporter finished before the last kill (cursors %v): no kill was mid-stream", killedAt)
	}
	cmd := start()
	deadline := time.Now().Add(60 * time.Second)
	for cursor() < total && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("exporter stopped by SIGTERM: %v", err)
	}
	if got := cursor(); got != total {
		t.Fatalf("cursor %d after the last run, want %d (cursors after each kill: %v)", got, total, killedAt)
	}

	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	seen := make([]bool, total+1)
	var prev uint64
	lines, resends := 0, 0
	for sc.Scan() {
		var e struct{ Seq uint64 }
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %d is not whole: %v: %.80s", lines+1, err, sc.Text())
		}
		lines++
		switch {
		case e.Seq == prev+1:
		case e.Seq <= prev:
			resends++ // a restart writes again what followed its cursor
		default:
			t.Fatalf("line %d: seq %d follows %d: a gap", lines, e.Seq, prev)
		}
		if e.Seq < 1 || e.Seq > total {
			t.Fatalf("line %d: seq %d out of range", lines, e.Seq)
		}
		seen[e.Seq] = true
		prev = e.Seq
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= total; seq++ {
		if !seen[seq] {
			t.Fatalf("seq %d never exported", seq)
		}
	}
	t.Logf("%d lines for %d events (%d restarts wrote again), cursors after the kills: %v", lines, total, resends, killedAt)
}
