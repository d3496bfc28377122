package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestClockStepNeverDelaysARestartBeyondItsBackoff steps the agent's wall
// clock (through the hidden test hook LEDGERLET_TEST_CLOCK_OFFSET_FILE; the
// machine's clock is shared and left alone) while a container crash-loops:
// back 8 h while the agent runs, then across a kill -9 and restart (the
// restarted agent used to stamp every event with the frozen future time and
// wait 8 h), then forward 8 h. Each restart comes after its back-off of real
// time, neither later (a step back) nor sooner (a step forward); the records
// carry the stepped wall times, and the log verifies.
func TestClockStepNeverDelaysARestartBeyondItsBackoff(t *testing.T) {
	offset := filepath.Join(t.TempDir(), "clock-offset")
	setOffset := func(d time.Duration) {
		t.Helper()
		if err := os.WriteFile(offset, []byte(d.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	setOffset(0)
	a := newAgent(t)
	a.env = []string{"LEDGERLET_TEST_CLOCK_OFFSET_FILE=" + offset}
	a.start()
	a.writeManifest("crash.yaml", shPod("crash", "Always", "exit 3"))

	// nextStart waits for start n (0-based) and returns when the test saw
	// it, on the test's own monotonic clock.
	nextStart := func(n int, timeout time.Duration) time.Time {
		t.Helper()
		a.waitFor("start "+string(rune('0'+n)), timeout, func() bool { return len(a.startTimes("crash")) > n })
		return time.Now()
	}
	seen0 := nextStart(0, 30*time.Second)

	// Back 8 h while it runs: the first restart is due 10 s after the exit.
	setOffset(-8 * time.Hour)
	seen1 := nextStart(1, 30*time.Second)
	if gap := seen1.Sub(seen0); gap < 9*time.Second || gap > 18*time.Second {
		t.Fatalf("first restart %s after the start, clock stepped back 8 h; want ~10 s", gap)
	}

	// An agent restarted with the clock still 8 h back: the next restart is
	// due 20 s after the exit, not 8 h.
	a.waitFor("the second exit", 20*time.Second, func() bool {
		p := a.pod("crash")
		return p != nil && p.Restarts >= 1 && p.Status == "CrashLoopBackOff"
	})
	a.kill9()
	a.start()
	seen2 := nextStart(2, 40*time.Second)
	if gap := seen2.Sub(seen1); gap < 19*time.Second || gap > 30*time.Second {
		t.Fatalf("second restart %s after the first, across an agent restart 8 h back; want ~20 s", gap)
	}

	// Forward 8 h: the 40 s back-off is not cut short.
	setOffset(0)
	seen3 := nextStart(3, 70*time.Second)
	if gap := seen3.Sub(seen2); gap < 39*time.Second || gap > 52*time.Second {
		t.Fatalf("third restart %s after the second, clock stepped forward 8 h; want ~40 s", gap)
	}

	// The records say when things happened, by the clock as it was: the
	// starts planned 8 h back are stamped 8 h back, not frozen at the first.
	starts := a.startTimes("crash")
	if d := starts[0].Sub(starts[1]); d < 7*time.Hour {
		t.Fatalf("start 1 stamped %s, start 0 %s: want the stepped clock's time", starts[1], starts[0])
	}
	if d := starts[3].Sub(starts[2]); d < 7*time.Hour {
		t.Fatalf("start 3 stamped %s, start 2 %s: want the clock stepped forward again", starts[3], starts[2])
	}
	a.stop()
	db := filepath.Join(a.dataDir, "ledger.db")
	if out, err := a.cli("check", "--db", db); err != nil {
		t.Errorf("check: %v\n%s", err, out)
	}
	if out, err := a.cli("replay", "verify", "--db", db); err != nil {
		t.Errorf("replay verify: %v\n%s", err, out)
	}
}
