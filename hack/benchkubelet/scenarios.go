package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// podDriver makes pods come and go: an agent through manifests, the floor through CRI.
type podDriver interface {
	Add(ctx context.Context, names []string) error
	Remove(ctx context.Context, names []string) error
	// PodName is the pod's name in the runtime (the agent's node name appended).
	PodName(manifest string) string
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// addAndWait adds the pods and returns the time from the call to the first listing in which
// every one of them has a running container. The call runs beside the observer: an agent's Add
// returns at once, the floor's only when containerd is done, and both are timed alike.
func addAndWait(ctx context.Context, obs *observer, d podDriver, pods []string, timeout time.Duration) (time.Duration, error) {
	want := map[string]bool{}
	for _, p := range pods {
		want[d.PodName(p)] = true
	}
	begin := time.Now()
	ctx, cancel, errc := drive(ctx, func(ctx context.Context) error { return d.Add(ctx, pods) })
	defer cancel()
	at, err := obs.waitUntil(ctx, fmt.Sprintf("%d pods running", len(pods)), timeout, false, func(s snapshot) bool {
		running := s.running()
		for p := range want {
			if _, ok := running[p]; !ok {
				return false
			}
		}
		return true
	})
	if addErr := <-errc; addErr != nil {
		return 0, addErr
	}
	if err != nil {
		return 0, err
	}
	return at.Sub(begin), nil
}

// drive runs a driver's call beside the observer's wait. A failed call ends the wait at once
// (through the returned context) instead of leaving it to its timeout; errc has its error.
// The caller cancels the context when done waiting.
func drive(ctx context.Context, call func(context.Context) error) (context.Context, context.CancelFunc, <-chan error) {
	ctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		err := call(ctx)
		if err != nil {
			cancel()
		}
		errc <- err
	}()
	return ctx, cancel, errc
}

// onePodEach starts the pods one after the other, each measured alone.
func onePodEach(ctx context.Context, obs *observer, d podDriver, pods []string) ([]time.Duration, error) {
	var out []time.Duration
	for _, p := range pods {
		took, err := onePod(ctx, obs, d, p)
		if err != nil {
			return nil, err
		}
		out = append(out, took)
	}
	return out, nil
}

// onePod starts one pod, measured alone, and then lets the agent finish what follows a start
// (its relist, its bookkeeping) so the next sample starts from rest.
func onePod(ctx context.Context, obs *observer, d podDriver, p string) (time.Duration, error) {
	took, err := addAndWait(ctx, obs, d, []string{p}, 2*time.Minute)
	if err != nil {
		return 0, fmt.Errorf("one pod %s: %w", p, err)
	}
	return took, sleep(ctx, 500*time.Millisecond)
}

// removal removes the pods at once and returns the time until none of their containers runs
// and until no CRI object of theirs (container or sandbox, in any state) is left.
func removal(ctx context.Context, obs *observer, d podDriver, pods []string) (stopped, gone time.Duration, err error) {
	want := map[string]bool{}
	for _, p := range pods {
		want[d.PodName(p)] = true
	}
	begin := time.Now()
	ctx, cancel, errc := drive(ctx, func(ctx context.Context) error { return d.Remove(ctx, pods) })
	defer cancel()
	var stoppedAt time.Time
	// The kubelet leaves exited sandboxes to its garbage collection (about a minute).
	at, err := obs.waitUntil(ctx, fmt.Sprintf("%d pods removed", len(pods)), 5*time.Minute, true, func(s snapshot) bool {
		if stoppedAt.IsZero() {
			running := 0
			for p := range s.running() {
				if want[p] {
					running++
				}
			}
			if running == 0 {
				stoppedAt = s.at
			}
		}
		return s.objects(want) == 0
	})
	if rmErr := <-errc; rmErr != nil {
		return 0, 0, rmErr
	}
	if err != nil {
		return 0, 0, err
	}
	return stoppedAt.Sub(begin), at.Sub(begin), nil
}

// pairedBulk starts 10 pods at once by the agent and by the floor (straight through CRI) in
// turn, o.pairs times each, on the same runtime within the same minute, each batch removed
// (no CRI object left) before the next. "10 at once" against a floor measured minutes apart,
// with one sample a round, moved by ±25 % from run to run on this machine: more than the
// difference it is meant to show.
func pairedBulk(ctx context.Context, obs *observer, o options, a *agent, fl *floor) (agentRuns, floorRuns []time.Duration, err error) {
	batch := names("p", 10)
	agentRuns, floorRuns, err = inTurn(o.pairs, a, fl, func(d podDriver, _ int) (time.Duration, error) {
		took, err := addAndWait(ctx, obs, d, batch, 5*time.Minute)
		if err != nil {
			return 0, err
		}
		if _, _, err := removal(ctx, obs, d, batch); err != nil {
			return 0, err
		}
		return took, sleep(ctx, 2*time.Second)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("10 at once, %w", err)
	}
	return agentRuns, floorRuns, nil
}

// pairedOnePod starts one pod by the agent and one by the floor in turn, o.onePairs times each,
// 0.5 s apart as onePodEach, then removes them all. The floor's "one pod" is otherwise measured
// minutes after the agent's, and on this machine containerd's own time for one pod moves by
// more than the 20 ms the two are compared on (the floor's median alone: 141–161 ms between
// rounds of one run); in turn, a drift in the machine's load falls on both alike.
func pairedOnePod(ctx context.Context, obs *observer, o options, a *agent, fl *floor) (agentRuns, floorRuns []time.Duration, err error) {
	pods := names("q", o.onePairs)
	agentRuns, floorRuns, err = inTurn(o.onePairs, a, fl, func(d podDriver, i int) (time.Duration, error) {
		return onePod(ctx, obs, d, pods[i])
	})
	if err != nil {
		return nil, nil, fmt.Errorf("one pod in turn, %w", err)
	}
	for _, d := range []podDriver{a, fl} {
		if _, _, err := removal(ctx, obs, d, pods); err != nil {
			return nil, nil, fmt.Errorf("one pod in turn, removal: %w", err)
		}
	}
	return agentRuns, floorRuns, nil
}

// inTurn runs one(d, i) for the agent and for the floor, n times each; which goes first
// alternates, so neither is always the one that follows the other.
func inTurn(n int, a, fl podDriver, one func(d podDriver, i int) (time.Duration, error)) (agentRuns, floorRuns []time.Duration, err error) {
	for i := range n {
		order := []podDriver{a, fl}
		if i%2 == 1 {
			order = []podDriver{fl, a}
		}
		for _, d := range order {
			took, err := one(d, i)
			if err != nil {
				return nil, nil, fmt.Errorf("pair %d: %w", i+1, err)
			}
			if d == fl {
				floorRuns = append(floorRuns, took)
			} else {
				agentRuns = append(agentRuns, took)
			}
		}
	}
	return agentRuns, floorRuns, nil
}

// exitSample is one container exit: until the agent had it running again, and until the agent
// had recorded the exit (ledgerlet only; zero otherwise).
type exitSample struct {
	restarted time.Duration
	seen      time.Duration
}

// exits kills the running container of each pod in turn, from outside, and waits for the agent
// to run a new one. seen, when set, tells when the agent recorded the exit of a container.
func exits(ctx context.Context, obs *observer, a *agent, pods []string, seen func(ctx context.Context, containerID string) (time.Time, error)) ([]exitSample, error) {
	var out []exitSample
	for _, p := range pods {
		name := a.PodName(p)
		s, err := obs.list(ctx, false)
		if err != nil {
			return nil, err
		}
		old, ok := s.running()[name]
		if !ok {
			return nil, fmt.Errorf("exit %s: no running container", name)
		}
		if err := obs.kill(ctx, old.ID); err != nil {
			return nil, err
		}
		exitedAt, err := obs.exitedAt(ctx, old.ID)
		if err != nil {
			return nil, err
		}
		at, err := obs.waitUntil(ctx, name+" restarted", 3*time.Minute, false, func(s snapshot) bool {
			c, ok := s.running()[name]
			return ok && c.ID != old.ID
		})
		if err != nil {
			return nil, err
		}
		sample := exitSample{restarted: at.Sub(exitedAt)}
		if seen != nil {
			t, err := seen(ctx, old.ID)
			if err != nil {
				return nil, fmt.Errorf("exit of %s: %w", name, err)
			}
			sample.seen = t.Sub(exitedAt)
		}
		out = append(out, sample)
	}
	return out, nil
}

// killFigures: the agent killed with SIGKILL and started again with its pods running.
type killFigures struct {
	pods       int
	ready      time.Duration // exec → the agent answers (kubelet: /healthz; ledgerlet: its socket)
	reconciled time.Duration // exec → runtime re-listed and adopted (ledgerlet: RuntimeConnected); 0 unknown
	kept       int           // pods whose running container is the one from before
	created    int           // containers that are new after the restart
}

// killRestart kills the agent, starts it again, and watches the pods' containers for window.
// reconciled, when set, tells when the agent's restarted run had adopted the runtime.
func killRestart(ctx context.Context, obs *observer, a *agent, pods []string, window time.Duration,
	reconciled func(ctx context.Context, since time.Time) (time.Time, error)) (killFigures, error) {
	want := map[string]bool{}
	for _, p := range pods {
		want[a.PodName(p)] = true
	}
	s, err := obs.list(ctx, false)
	if err != nil {
		return killFigures{}, err
	}
	before := map[string]string{} // pod → running container
	known := map[string]bool{}
	for p, c := range s.running() {
		if want[p] {
			before[p] = c.ID
		}
	}
	for _, c := range s.containers {
		known[c.ID] = true
	}
	if len(before) != len(pods) {
		return killFigures{}, fmt.Errorf("kill -9: %d of %d pods running before", len(before), len(pods))
	}
	a.kill9()
	begin := time.Now()
	if err := a.start(ctx); err != nil {
		return killFigures{}, err
	}
	f := killFigures{pods: len(pods), ready: time.Since(begin)}
	if err := sleep(ctx, window-time.Since(begin)); err != nil {
		return killFigures{}, err
	}
	// The ledger is read once the window is over: reading it while the
	// agent starts (a CLI process every 50 ms) took CPU from the start it
	// measures, 40-60 ms of a 110 ms figure with 50 pods on two cores. The
	// record's time is the agent's own.
	if reconciled != nil {
		at, err := reconciled(ctx, begin)
		if err != nil {
			return killFigures{}, err
		}
		f.reconciled = at.Sub(begin)
	}
	s, err = obs.list(ctx, false)
	if err != nil {
		return killFigures{}, err
	}
	running := s.running()
	for p, id := range before {
		if running[p].ID == id {
			f.kept++
		}
	}
	for _, c := range s.containers {
		if want[c.Pod] && !known[c.ID] {
			f.created++
		}
	}
	return f, nil
}

// idle measures the agent's CPU (share of one core) over d, and its RSS at the end.
func idle(ctx context.Context, pid int, d time.Duration) (cpuPercent float64, rss residentSet, err error) {
	cpu0, err := procCPU(pid)
	if err != nil {
		return 0, rss, err
	}
	t0 := time.Now()
	if err := sleep(ctx, d); err != nil {
		return 0, rss, err
	}
	cpu1, err := procCPU(pid)
	if err != nil {
		return 0, rss, err
	}
	rss, err = procRSS(pid)
	if err != nil {
		return 0, rss, err
	}
	return 100 * (cpu1 - cpu0) / time.Since(t0).Seconds(), rss, nil
}

// procCPU is the process's user+system CPU time in seconds (/proc/PID/stat).
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU time of %d: %w", pid, err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, err1 := strconv.ParseFloat(fields[11], 64)
	st, err2 := strconv.ParseFloat(fields[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat: %q", pid, s)
	}
	return (ut + st) / 100, nil // USER_HZ
}

// residentSet is a process's resident memory in bytes, and its two parts: anonymous pages
// (heap, stacks: the process's own) and file pages (mostly its binary's, clean and shared with
// the page cache). The split matters when comparing agents: the kernel maps a binary's page
// cache in large folios, so the file part grows with the size of the binary, not with use.
type residentSet struct{ total, anon, file int64 }

// procRSS reads the process's resident set (/proc/PID/status).
func procRSS(pid int) (residentSet, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return residentSet{}, fmt.Errorf("read RSS of %d: %w", pid, err)
	}
	r, err := parseResidentSet(b)
	if err != nil {
		return r, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	return r, nil
}

// parseResidentSet reads the RSS lines of a /proc/PID/status.
func parseResidentSet(b []byte) (residentSet, error) {
	var r residentSet
	fields := map[string]*int64{"VmRSS:": &r.total, "RssAnon:": &r.anon, "RssFile:": &r.file}
	for _, line := range strings.Split(string(b), "\n") {
		name, v, ok := strings.Cut(line, "\t")
		dst := fields[strings.TrimSpace(name)]
		if !ok || dst == nil {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		if err != nil {
			return r, fmt.Errorf("parse %s: %w", name, err)
		}
		*dst = kb << 10
	}
	if r.total == 0 {
		return r, fmt.Errorf("no VmRSS")
	}
	return r, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func median(ds []time.Duration) time.Duration { return quantile(ds, 0.5) }

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(q*float64(len(s)-1)+0.5)]
}
