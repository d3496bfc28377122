package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector"
)

// Prober runs the containers' liveness, readiness and startup probes, as the
// kubelet's prober manager does: one worker per (container instance, probe
// kind), started when the projection shows the instance running and stopped
// when it no longer does, so no probe runs while a container is not running.
// A worker appends a ContainerProbed event only when its thresholded result
// changes — never one per period — so the log grows with what changed.
//
// It only records facts. What a failure means (stop the container, with
// which grace) is the planner's decision, made on the recorded result.
//
// Start-up (this run over an existing log): a worker starts from the result
// the log holds for its instance, so a restart over healthy containers
// appends nothing once the first probes confirm it, and a container known
// ready stays ready until its probe fails failureThreshold times in this
// run. (The kubelet, which forgets, starts readiness at false instead.) A
// probe never recorded starts unknown: readiness and startup then say "not
// ready" / "not started" until a result crosses its threshold; liveness
// says healthy. Nothing is probed before this run's runtime relist, so a
// container the previous run saw running but that is gone is never probed.
type Prober struct {
	Exec       Execer
	Log        Recorder
	Projection Projection
	// StartSeq is this run's AgentStarted: nothing is probed before it is
	// folded (the state before it is the previous run's).
	StartSeq uint64
	Logger   *slog.Logger
	// Second is the unit of every probe timing field; default time.Second.
	// Tests shorten it.
	Second time.Duration
	// Boottime reads the clock events carry beside the wall time; default
	// eventlog.Boottime. With the state's steady clock it gives how long
	// ago a container started, whatever the wall clock did since.
	Boottime func() int64
}

// probeKey names one worker.
type probeKey struct {
	containerID string
	kind        pb.ProbeKind
}

// probeJob is what one worker needs, copied from the projected state so that
// no worker reads the projection.
type probeJob struct {
	pod, uid, container string
	kind                pb.ProbeKind
	probe               *corev1.Probe
	target              probeTarget
	startedAt           time.Time
	// recorded is the instance's result as the log holds it ("" unknown).
	recorded pb.ProbeResult
	// gated: a startup probe has not succeeded yet, so this (liveness or
	// readiness) probe waits.
	gated bool
}

type probeWorker struct {
	job    probeJob
	gated  atomic.Bool
	kick   chan struct{} // the gate opened: probe now rather than at the next period
	cancel context.CancelFunc
}

// Run probes until ctx is done or the log refuses an append.
func (pr *Prober) Run(ctx context.Context) error {
	if pr.Logger == nil {
		pr.Logger = slog.Default()
	}
	if pr.Second <= 0 {
		pr.Second = time.Second
	}
	if err := pr.Projection.WaitFor(ctx, pr.StartSeq); err != nil {
		return nil // stopped before the start was folded
	}
	runner := newProbeRunner(pr.Exec)
	runner.second = pr.Second
	defer runner.close()
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // before wg.Wait: workers end with the context
	errc := make(chan error, 1)
	workers := map[probeKey]*probeWorker{}
	for {
		changed := pr.Projection.Changed()
		want := pr.jobs()
		for k, w := range workers {
			if _, ok := want[k]; !ok {
				w.cancel()
				delete(workers, k)
			}
		}
		for k, job := range want {
			if w := workers[k]; w != nil {
				if w.gated.Swap(job.gated) && !job.gated {
					select {
					case w.kick <- struct{}{}:
					default:
					}
				}
				continue
			}
			wctx, wcancel := context.WithCancel(ctx)
			w := &probeWorker{job: job, kick: make(chan struct{}, 1), cancel: wcancel}
			w.gated.Store(job.gated)
			workers[k] = w
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := pr.work(wctx, w, runner); err != nil {
					select {
					case errc <- err:
					default:
					}
				}
			}()
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case <-changed:
		}
	}
}

// jobs lists, from the projected state, the probes that should be running:
// for every running, current instance of a container of a desired pod, each
// probe its spec has, unless that probe's result ends its probing (startup
// succeeded; liveness or startup failed, and the planner stops the instance).
func (pr *Prober) jobs() map[probeKey]probeJob {
	out := map[probeKey]probeJob{}
	boottime := pr.Boottime
	if boottime == nil {
		boottime = eventlog.Boottime
	}
	wall := time.Now() // keeps its monotonic reading: workers wait from it
	bt := boottime()
	pr.Projection.Read(func(s *projector.State) {
		if !s.Agent.Running || !s.Runtime.Connected {
			return // nothing is known to run until this run relisted
		}
		steady := s.SteadyAt(wall.UnixNano(), bt)
		for key, p := range s.Pods {
			spec := p.DecodeSpec()
			if spec == nil || p.Removed {
				continue
			}
			for _, c := range p.Containers {
				if c.UID != p.UID || c.Stale || c.State != pb.StateRunning || c.PostStartPending {
					continue // probes begin once the postStart hook completed
				}
				sc, typ := findContainer(spec, c.Name)
				if sc == nil || (typ == ContainerTypeInit && !isSidecar(sc)) {
					continue
				}
				target := probeTarget{containerID: c.ID, ports: sc.Ports, env: sc.Env}
				if spec.Spec.HostNetwork {
					target.host = "127.0.0.1"
				} else if sb := p.Sandboxes[c.SandboxID]; sb != nil {
					target.host = sb.IP
				}
				started := p.ContainerStarted(c)
				for _, kind := range pb.ProbeKinds() {
					probe := specProbe(sc, kind)
					if probe == nil {
						continue
					}
					rec := recordedResult(c.Probe(kind), kind)
					if (kind == pb.ProbeStartup && rec != "") || (kind == pb.ProbeLiveness && rec == pb.ProbeFailure) {
						continue
					}
					if target.host == "" && probe.Exec == nil {
						continue // no address yet; the next change brings it
					}
					// When it started, as a reading of this process's
					// monotonic clock: the time since its start on the
					// steady clock, back from now. A recorded wall time
					// compared with time.Now would hold probes back for
					// as long as the clock was stepped back (or skip the
					// initial delay after a step forward).
					var startedAt time.Time
					if c.StartedSteady != 0 {
						startedAt = wall.Add(-time.Duration(max(steady-c.StartedSteady, 0)))
					}
					out[probeKey{c.ID, kind}] = probeJob{
						pod: key, uid: c.UID, container: c.Name, kind: kind, probe: probe.DeepCopy(),
						target: target, startedAt: startedAt, recorded: rec, gated: kind != pb.ProbeStartup && !started,
					}
				}
			}
		}
	})
	return out
}

// recordedResult is the result the log holds; a liveness probe never
// recorded counts as a success (healthy until proven otherwise).
func recordedResult(st *projector.ProbeState, kind pb.ProbeKind) pb.ProbeResult {
	switch {
	case st == nil && kind == pb.ProbeLiveness:
		return pb.ProbeSuccess
	case st == nil:
		return ""
	case st.Success:
		return pb.ProbeSuccess
	}
	return pb.ProbeFailure
}

func specProbe(c *corev1.Container, kind pb.ProbeKind) *corev1.Probe {
	switch kind {
	case pb.ProbeLiveness:
		return c.LivenessProbe
	case pb.ProbeReadiness:
		return c.ReadinessProbe
	case pb.ProbeStartup:
		return c.StartupProbe
	}
	return nil
}

// isSidecar: an init container with restartPolicy Always (a native sidecar).
func isSidecar(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// work is one worker, the kubelet's worker.doProbe: not before
// initialDelaySeconds after the container started, then every periodSeconds,
// each attempt bounded by timeoutSeconds; a result counts once it repeats
// successThreshold (failureThreshold) times in a row, and is appended only
// when it differs from the recorded one. It returns when its probing ends:
// a startup success, a liveness or startup failure (held until the planner
// replaces the instance), or ctx.
func (pr *Prober) work(ctx context.Context, w *probeWorker, runner *probeRunner) error {
	job, p := w.job, w.job.probe
	start := job.startedAt
	if start.IsZero() {
		start = time.Now() // not known: count the delay from now
	}
	if d := time.Until(start.Add(time.Duration(p.InitialDelaySeconds) * pr.Second)); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
	period := time.Duration(max(p.PeriodSeconds, 1)) * pr.Second
	ticker := time.NewTicker(period)
	defer ticker.Stop()
	var last probeResult
	run := int32(0)
	for {
		if !w.gated.Load() {
			res, out := runner.run(ctx, p, job.target)
			if ctx.Err() != nil {
				return nil
			}
			if res == probeUnknown {
				pr.Logger.Debug("probe could not run", "pod", job.pod, "container", job.container, "probe", job.kind, "err", out)
			} else {
				if res == last {
					run++
				} else {
					last, run = res, 1
				}
				threshold := max(p.FailureThreshold, 1)
				result := pb.ProbeFailure
				if res == probeSuccess {
					threshold, result, out = max(p.SuccessThreshold, 1), pb.ProbeSuccess, ""
				}
				if run >= threshold {
					if result != job.recorded {
						if err := pr.record(ctx, job, result, out, run); err != nil {
							return err
						}
						job.recorded = result
					}
					if (result == pb.ProbeFailure && job.kind != pb.ProbeReadiness) || (result == pb.ProbeSuccess && job.kind == pb.ProbeStartup) {
						return nil
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		case <-w.kick:
			ticker.Reset(period) // a full period between this probe and the next
		}
	}
}

func (pr *Prober) record(ctx context.Context, job probeJob, result pb.ProbeResult, output string, run int32) error {
	pr.Logger.Info("probe result changed", "pod", job.pod, "container", job.container, "id", job.target.containerID,
		"probe", job.kind, "result", result, "output", output, "consecutive", run)
	_, err := pr.Log.Append(ctx, eventlog.Event{Pod: job.pod, Data: &pb.ContainerProbed{
		Uid: job.uid, Container: job.container, ContainerId: job.target.containerID, Probe: string(job.kind),
		Result: string(result), Output: output, Consecutive: uint32(run),
	}})
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("record %s probe result of %s in %s: %w", job.kind, job.container, job.pod, err)
	}
	return nil
}
