package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector"
)

// Projection is the agent's projected state, fed only by the log.
type Projection interface {
	// Read calls fn with the current state; fn must not keep or change it.
	Read(fn func(*projector.State))
	// WaitFor returns once event seq has been folded.
	WaitFor(ctx context.Context, seq uint64) error
	// Changed is closed when the next event is folded.
	Changed() <-chan struct{}
}

// Recorder appends events durably (*eventlog.Log satisfies it).
type Recorder interface {
	Append(ctx context.Context, evs ...eventlog.Event) ([]uint64, error)
}

// Loop closes the circle from the log to the world: it plans on the
// projected state whenever it changes (or a back-off expires), appends each
// decision as an Intent — durably, before anything happens — hands it to the
// effector of its lane, and appends the outcome. It decides nothing itself:
// every choice, including how to settle an intent an earlier run left without
// an outcome, is the planner's, so `replay verify` can check it.
type Loop struct {
	Log        Recorder
	Projection Projection
	// Effectors by lane. A lane without one is never planned for (the
	// planner also waits for the lane's connection in this run).
	Effectors map[pb.Lane]Effector
	// StartSeq is this run's AgentStarted: nothing is planned before it is
	// folded, so no decision rests on the previous run's state.
	StartSeq uint64
	Workers  int              // actions carried out at once, across pods and lanes; default 32
	Now      func() time.Time // the wall clock; default time.Now
	// Boottime reads the monotonic clock events carry (eventlog.Boottime,
	// the default): the planner's now is the state's steady time plus the
	// boottime since its last event, so a wall clock step moves no deadline.
	Boottime func() int64
	Logger   *slog.Logger
}

func (l *Loop) defaults() {
	if l.Workers <= 0 {
		l.Workers = 32
	}
	if l.Now == nil {
		l.Now = time.Now
	}
	if l.Boottime == nil {
		l.Boottime = eventlog.Boottime
	}
	if l.Logger == nil {
		l.Logger = slog.Default()
	}
}

// errLogFailed ends the loop: an outcome that cannot be recorded would leave
// its intent pending for the rest of the run, wedging its lane. The agent
// exits and the next run settles the intent from what it observes.
var errLogFailed = errors.New("the log refused an append")

// Run plans and acts until ctx is done or the log fails. Actions under way
// when ctx ends are cancelled; their outcomes are still recorded where
// possible, and the next run settles any that were not.
func (l *Loop) Run(ctx context.Context) error {
	l.defaults()
	if err := l.Projection.WaitFor(ctx, l.StartSeq); err != nil {
		return nil // stopped before the start was folded
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, l.Workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		plan, jobs, seq, wall, changed := l.plan()
		if len(plan.Reconcile) > 0 {
			evs := make([]eventlog.Event, len(plan.Reconcile))
			for i, r := range plan.Reconcile {
				evs[i] = eventlog.Event{Pod: r.Pod, Data: &pb.Outcome{
					IntentSeq: r.IntentSeq, Ok: false, Reason: pb.ReasonReconciled,
					Error: "the agent stopped before the outcome was recorded; settled from what this run observes",
				}}
			}
			if err := l.appendAndWait(ctx, evs); err != nil {
				return l.stopped(ctx, fmt.Errorf("record %d reconciled outcomes: %w", len(evs), err))
			}
			continue
		}
		if len(jobs) > 0 {
			evs := make([]eventlog.Event, len(jobs))
			for i, j := range jobs {
				j.Intent.PlanSeq = seq
				j.Intent.PlanTimeUnixNano = wall
				j.Intent.PlanSteadyNano = plan.Now
				evs[i] = eventlog.Event{Pod: j.Pod, Data: j.Intent}
			}
			seqs, err := l.Log.Append(ctx, evs...)
			if err != nil {
				return l.stopped(ctx, fmt.Errorf("record %d intents: %w", len(evs), err))
			}
			// The next plan must see these as pending.
			if err := l.Projection.WaitFor(ctx, seqs[len(seqs)-1]); err != nil {
				return l.stopped(ctx, nil)
			}
			for i, j := range jobs {
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					return l.stopped(ctx, nil)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					if err := l.carryOut(ctx, j, seqs[i]); err != nil {
						cancel(err)
					}
				}()
			}
			continue
		}
		var wake <-chan time.Time
		var t *time.Timer
		if plan.Wake > 0 {
			// A duration from the plan's own clock reading.
			t = time.NewTimer(time.Duration(plan.Wake - plan.Now))
			wake = t.C
		}
		select {
		case <-ctx.Done():
		case <-changed:
		case <-wake:
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return l.stopped(ctx, nil)
		}
	}
}

// plan runs the planner on the current state and copies what each decision
// needs, so no effector ever reads the projection.
//
// The planner's now is a steady time (projector.Clock): the state's, plus
// the boottime elapsed since its last event. wall is the wall clock as read,
// recorded in the intents beside it.
func (l *Loop) plan() (plan projector.Plan, jobs []Job, seq uint64, wall int64, changed <-chan struct{}) {
	wall, boottime := l.Now().UnixNano(), l.Boottime()
	changed = l.Projection.Changed()
	l.Projection.Read(func(s *projector.State) {
		seq = s.Seq
		plan = s.Plan(s.SteadyAt(wall, boottime))
		for _, d := range plan.Decisions {
			j := Job{Pod: d.Pod, Intent: d.Intent}
			if p := s.Pods[d.Pod]; p != nil {
				if spec := p.DecodeSpec(); spec != nil && p.UID == d.Intent.Uid {
					j.Spec = spec.DeepCopy()
				}
				if pb.Action(d.Intent.Action) == pb.ActionMirrorStatus {
					st := p.APIStatus(s.Agent.NodeIP)
					j.Status = &st
				}
			}
			jobs = append(jobs, j)
		}
	})
	return plan, jobs, seq, wall, changed
}

func (l *Loop) appendAndWait(ctx context.Context, evs []eventlog.Event) error {
	seqs, err := l.Log.Append(ctx, evs...)
	if err != nil {
		return err
	}
	return l.Projection.WaitFor(ctx, seqs[len(seqs)-1])
}

// stopped turns the end of the loop into its result: nil for a stop asked
// for by ctx, the cause when the log failed.
func (l *Loop) stopped(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// carryOut runs one job's effect and records its outcome. An outcome that
// cannot be recorded stops the loop (errLogFailed): the intent would
// otherwise stay pending and its lane of the pod would never move again.
func (l *Loop) carryOut(ctx context.Context, j Job, intentSeq uint64) error {
	start := time.Now()
	action := pb.Action(j.Intent.Action)
	eff := l.Effectors[action.Lane()]
	var out *pb.Outcome
	if eff == nil {
		out = &pb.Outcome{Ok: false, Reason: pb.ReasonRuntimeError, Error: fmt.Sprintf("no effector for lane %s", action.Lane())}
	} else {
		out = eff.Execute(ctx, j)
	}
	out.IntentSeq = intentSeq
	// Record the outcome even while stopping; if the log refuses it, the
	// next run settles the intent from what it observes.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := l.Log.Append(actx, eventlog.Event{Pod: j.Pod, Data: out}); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("%w: outcome of intent %d (%s %s): %v", errLogFailed, intentSeq, action, j.Pod, err)
	}
	lvl := slog.LevelInfo
	if !out.Ok {
		lvl = slog.LevelWarn
	}
	l.Logger.Log(ctx, lvl, "action", "pod", j.Pod, "action", action, "container", j.Intent.Container,
		"ok", out.Ok, "reason", out.Reason, "err", out.Error, "took", time.Since(start))
	return nil
}
