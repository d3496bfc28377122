// Command benchkubelet measures ledgerlet against the kubelet on one containerd, one agent after
// the other, from outside through CRI, with identical static pod manifests; and the floor: the
// same starts and removals straight through CRI with no agent. It prints one markdown table and
// writes it into BENCHMARKS.md between the bench-kubelet markers. `make bench-kubelet` runs it
// (hack/bench-kubelet brings up the private containerd and the binaries).
//
//	go run ./hack/benchkubelet -endpoint unix:///var/lib/ledgerlet-bench/containerd.sock \
//	    -kubelet /path/to/kubelet -ledgerlet bin/ledgerlet -dir /var/lib/ledgerlet-bench/bench
//
// Every pod lives in namespace llbench, which is how the observer tells the benchmark's CRI
// objects from anybody else's; everything of that namespace is removed before and after each
// agent, so each starts on an empty runtime.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"
	"time"
)

type options struct {
	setup   benchSetup
	out     string // the markdown file to write the table into; empty: print only
	agents  map[string]bool
	idleFor time.Duration
	exitsN  int
	runs    int
	window  time.Duration
	pairs   int
	// onePairs: one pod by ledgerlet and by the floor in turn, this many times each a round.
	onePairs int
}

func main() {
	var o options
	var agents string
	flag.StringVar(&o.setup.endpoint, "endpoint", "", "CRI endpoint of the containerd to measure on (unix://...)")
	flag.StringVar(&o.setup.cgroupDriver, "cgroup-driver", "cgroupfs", "cgroupfs or systemd, as the containerd's SystemdCgroup")
	flag.StringVar(&o.setup.dir, "dir", "", "working directory (manifests, data and logs of each agent)")
	flag.StringVar(&o.setup.kubelet, "kubelet", "", "the kubelet binary")
	flag.StringVar(&o.setup.ledgerlet, "ledgerlet", "", "the ledgerlet binary")
	flag.StringVar(&o.out, "out", "", "markdown file to write the table into, between <!-- bench-kubelet:begin/end --> (empty: print only)")
	flag.StringVar(&agents, "agents", "kubelet,ledgerlet,floor", "what to measure (a partial run never writes -out)")
	flag.DurationVar(&o.idleFor, "idle", 30*time.Second, "how long to measure idle CPU")
	flag.IntVar(&o.exitsN, "exits", 5, "container exits to measure per agent and run")
	flag.IntVar(&o.runs, "runs", 3, "rounds (kubelet, ledgerlet, floor each); a cell is the median of the rounds, their range beside it")
	flag.DurationVar(&o.window, "window", 10*time.Second, "after kill -9 and restart: how long to watch for container changes")
	flag.IntVar(&o.pairs, "pairs", 5, "per round: 10 at once by ledgerlet and by the floor back to back, this many times each (0: none)")
	flag.IntVar(&o.onePairs, "one-pairs", 10, "per round: one pod by ledgerlet and by the floor in turn, this many times each (0: none)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	o.setup.log = log
	o.agents = map[string]bool{}
	for _, a := range strings.Split(agents, ",") {
		o.agents[strings.TrimSpace(a)] = true
	}
	if o.setup.endpoint == "" || o.setup.dir == "" || (o.agents["kubelet"] && o.setup.kubelet == "") || (o.agents["ledgerlet"] && o.setup.ledgerlet == "") {
		fmt.Fprintln(os.Stderr, "benchkubelet: -endpoint, -dir and the binaries of the agents measured are required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		log.Error("benchkubelet failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	log := o.setup.log
	obs, err := newObserver(o.setup.endpoint)
	if err != nil {
		return err
	}
	defer obs.Close()
	m, err := machineFacts(ctx, obs, o.setup)
	if err != nil {
		return err
	}
	if err := obs.clean(ctx); err != nil {
		return fmt.Errorf("start from an empty runtime: %w", err)
	}
	var res results
	var errs []error
	// Rounds interleave the agents, so a noisy minute on the shared machine hits one round of
	// each rather than every run of one.
	for round := 1; round <= o.runs && len(errs) == 0; round++ {
		if o.agents["kubelet"] {
			log.Info("measuring the kubelet", "round", round)
			f, err := measureAgent(ctx, obs, o, "kubelet")
			res.kubelet = append(res.kubelet, f)
			errs = appendErr(errs, err)
		}
		if o.agents["ledgerlet"] {
			log.Info("measuring ledgerlet", "round", round)
			f, err := measureAgent(ctx, obs, o, "ledgerlet")
			res.ledgerlet = append(res.ledgerlet, f)
			errs = appendErr(errs, err)
		}
		if o.agents["floor"] {
			log.Info("measuring the floor (CRI, no agent)", "round", round)
			f, err := measureFloor(ctx, obs, o)
			res.floor = append(res.floor, f)
			errs = appendErr(errs, err)
		}
	}
	m.loadEnd = loadAverage()
	table := render(m, res)
	fmt.Println(table)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if o.out != "" && o.agents["kubelet"] && o.agents["ledgerlet"] && o.agents["floor"] {
		if err := writeBetweenMarkers(o.out, table); err != nil {
			return err
		}
		log.Info("table written", "file", o.out)
	}
	return nil
}

// measureAgent runs one agent through every scenario, then stops it and leaves the runtime
// empty whatever happened.
func measureAgent(ctx context.Context, obs *observer, o options, which string) (f *figures, err error) {
	var a *agent
	var cgroupRoot string
	switch which {
	case "kubelet":
		a, err = newKubelet(o.setup)
		cgroupRoot = kubeletCgroupRoot
	default:
		a, err = newLedgerlet(o.setup)
		cgroupRoot = ledgerletCgroupRoot
	}
	if err != nil {
		return nil, err
	}
	defer func() {
		// The kubelet leaves its pods running when it ends; ledgerlet too. Neither must leak into
		// the next agent's figures.
		a.kill9()
		// A detached context: an interrupted run must still clean up.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		cerr := obs.clean(cctx)
		if o.setup.cgroupDriver == "cgroupfs" {
			cerr = errors.Join(cerr, removeCgroup(cgroupRoot))
			if which == "ledgerlet" && (o.pairs > 0 || o.onePairs > 0) {
				cerr = errors.Join(cerr, removeCgroup(floorCgroupRoot))
			}
		}
		cerr = errors.Join(cerr, unmountUnder(a.dir))
		if cerr != nil {
			err = errors.Join(err, fmt.Errorf("clean up after %s: %w", which, cerr))
		}
	}()
	var seen func(context.Context, string) (time.Time, error)
	var reconciled func(context.Context, time.Time) (time.Time, error)
	if which == "ledgerlet" {
		seen = func(ctx context.Context, id string) (time.Time, error) {
			return ledgerExitSeen(ctx, o.setup.ledgerlet, a, id)
		}
		reconciled = func(ctx context.Context, since time.Time) (time.Time, error) {
			return ledgerReconciled(ctx, o.setup.ledgerlet, a, since)
		}
	}
	if err := a.start(ctx); err != nil {
		return nil, err
	}
	// Start-up work (the kubelet's first housekeeping, ledgerlet's first relist) is not part of
	// any figure.
	if err := sleep(ctx, 5*time.Second); err != nil {
		return nil, err
	}
	f = &figures{}
	step := func(what string) { o.setup.log.Info(what, "agent", which) }

	step("one pod → running, 10 times")
	single := names("s", 10)
	if f.onePod, err = onePodEach(ctx, obs, a, single); err != nil {
		return nil, err
	}
	step("idle with 10 pods")
	if err := sleep(ctx, 5*time.Second); err != nil {
		return nil, err
	}
	if f.idleCPU, f.idleRSS, err = idle(ctx, a.pid(), o.idleFor); err != nil {
		return nil, err
	}
	step("kill -9 and restart with 10 pods")
	k, err := killRestart(ctx, obs, a, single, o.window, reconciled)
	if err != nil {
		return nil, err
	}
	f.kill10 = &k
	step("container exits")
	ex, err := exits(ctx, obs, a, single[:min(o.exitsN, len(single))], seen)
	if err != nil {
		return nil, err
	}
	for _, e := range ex {
		f.restarted = append(f.restarted, e.restarted)
		if seen != nil {
			f.seen = append(f.seen, e.seen)
		}
	}
	step("10 manifests at once")
	bulk := names("b", 10)
	if f.bulk, err = addAndWait(ctx, obs, a, bulk, 5*time.Minute); err != nil {
		return nil, fmt.Errorf("10 at once: %w", err)
	}
	if err := sleep(ctx, 2*time.Second); err != nil {
		return nil, err
	}
	step("removal of 20 pods")
	if f.removedStopped, f.removedGone, err = removal(ctx, obs, a, append(single, bulk...)); err != nil {
		return nil, fmt.Errorf("removal of 20: %w", err)
	}
	if which == "ledgerlet" && (o.onePairs > 0 || o.pairs > 0) {
		// One floor for both in-turn steps: each leaves no pod of its own behind.
		fl, err := newFloor(o.setup)
		if err != nil {
			return nil, err
		}
		defer fl.Close()
		if o.onePairs > 0 {
			step("one pod, ledgerlet and the floor in turn")
			if f.onePairedAgent, f.onePairedFloor, err = pairedOnePod(ctx, obs, o, a, fl); err != nil {
				return nil, err
			}
		}
		if o.pairs > 0 {
			step("10 at once, ledgerlet and the floor back to back")
			if f.pairedAgent, f.pairedFloor, err = pairedBulk(ctx, obs, o, a, fl); err != nil {
				return nil, err
			}
		}
	}
	if which == "ledgerlet" {
		step("kill -9 and restart with 50 pods")
		fifty := names("l", 50)
		if _, err := addAndWait(ctx, obs, a, fifty, 10*time.Minute); err != nil {
			return nil, fmt.Errorf("50 pods: %w", err)
		}
		if err := sleep(ctx, 3*time.Second); err != nil {
			return nil, err
		}
		k, err := killRestart(ctx, obs, a, fifty, o.window, reconciled)
		if err != nil {
			return nil, err
		}
		f.kill50 = &k
		if _, _, err := removal(ctx, obs, a, fifty); err != nil {
			return nil, fmt.Errorf("removal of 50: %w", err)
		}
	}
	return f, nil
}

// measureFloor starts and removes the same pods straight through CRI.
func measureFloor(ctx context.Context, obs *observer, o options) (f *figures, err error) {
	fl, err := newFloor(o.setup)
	if err != nil {
		return nil, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		cerr := obs.clean(cctx)
		if o.setup.cgroupDriver == "cgroupfs" {
			cerr = errors.Join(cerr, removeCgroup(floorCgroupRoot))
		}
		if cerr != nil {
			err = errors.Join(err, fmt.Errorf("clean up after the floor: %w", cerr))
		}
		fl.Close()
	}()
	f = &figures{}
	single := names("s", 10)
	if f.onePod, err = onePodEach(ctx, obs, fl, single); err != nil {
		return nil, err
	}
	bulk := names("b", 10)
	if f.bulk, err = addAndWait(ctx, obs, fl, bulk, 5*time.Minute); err != nil {
		return nil, fmt.Errorf("floor, 10 at once: %w", err)
	}
	if err := sleep(ctx, 2*time.Second); err != nil {
		return nil, err
	}
	if f.removedStopped, f.removedGone, err = removal(ctx, obs, fl, append(single, bulk...)); err != nil {
		return nil, fmt.Errorf("floor, removal of 20: %w", err)
	}
	return f, nil
}

// ledgerExitSeen is when ledgerlet recorded the container's exit: its ContainerObserved event
// with state exited for that container.
func ledgerExitSeen(ctx context.Context, binary string, a *agent, id string) (time.Time, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		evs, err := ledgerEvents(ctx, binary, a, "ContainerObserved")
		if err != nil {
			return time.Time{}, err
		}
		for _, e := range evs {
			if dataString(e.Data, "containerId", "container_id") == id && e.Data["state"] == "exited" {
				return e.Time, nil
			}
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("no ContainerObserved exited for %s in the ledger after 30 s", id)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return time.Time{}, err
		}
	}
}

// ledgerReconciled is when the run started at since had re-listed and adopted the runtime:
// its RuntimeConnected event (as BenchmarkRestartWith50Pods in test/e2e measures it).
func ledgerReconciled(ctx context.Context, binary string, a *agent, since time.Time) (time.Time, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		evs, err := ledgerEvents(ctx, binary, a, "RuntimeConnected")
		if err != nil {
			return time.Time{}, err
		}
		for _, e := range evs {
			if e.Time.After(since) {
				return e.Time, nil
			}
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("no RuntimeConnected after the restart within 60 s")
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return time.Time{}, err
		}
	}
}

func appendErr(errs []error, err error) []error {
	if err != nil {
		return append(errs, err)
	}
	return errs
}

func dataString(d map[string]any, keys ...string) string {
	for _, k := range keys {
		if s, ok := d[k].(string); ok {
			return s
		}
	}
	return ""
}

// machine is the line that says where the figures come from.
type machine struct {
	when, cpu, kernel, goVersion, runtime, kubelet, ledgerlet, loadStart, loadEnd string
	cores                                                                         int
}

func machineFacts(ctx context.Context, obs *observer, s benchSetup) (machine, error) {
	m := machine{when: time.Now().UTC().Format("2006-01-02 15:04 UTC"), cores: goruntime.NumCPU(),
		goVersion: goruntime.Version(), loadStart: loadAverage()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m.cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	v, err := obs.runtimeVersion(ctx)
	if err != nil {
		return m, err
	}
	m.runtime = v
	if s.kubelet != "" {
		m.kubelet = commandOutput(ctx, s.kubelet, "--version")
	}
	if s.ledgerlet != "" {
		m.ledgerlet = commandOutput(ctx, s.ledgerlet, "--version")
	}
	return m, nil
}

func commandOutput(ctx context.Context, name string, args ...string) string {
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		return filepath.Base(name) + " (version unknown)"
	}
	return strings.TrimSpace(string(out))
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
