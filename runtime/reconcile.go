package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

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

// Reconciler closes the loop between the log and the runtime: it relists the
// runtime and records what changed, plans on the projected state, records
// each intent before carrying it out, and records the outcome after.
type Reconciler struct {
	Runtime      *Runtime
	Endpoint     string
	Log          Recorder
	Projection   Projection
	Logger       *slog.Logger
	RelistPeriod time.Duration    // default 1s
	Workers      int              // actions carried out at once, across pods; default 8
	Now          func() time.Time // default time.Now
	// HostIP is the node's address, for status.hostIP in env fieldRefs.
	HostIP string
}

func (c *Reconciler) defaults() {
	if c.RelistPeriod <= 0 {
		c.RelistPeriod = time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Run observes and reconciles until ctx is done. Actions under way when ctx
// ends are cancelled; their outcomes are still recorded where possible, and
// recovery at the next start reconciles any that were not.
func (c *Reconciler) Run(ctx context.Context) error {
	c.defaults()
	// Intents left pending by an earlier run of the agent: resolved from the
	// first relist, before anything is planned.
	var dangling []danglingIntent
	c.Projection.Read(func(s *projector.State) {
		for seq, in := range s.Pending {
			dangling = append(dangling, danglingIntent{seq: seq, pod: in.Pod})
		}
	})
	sort.Slice(dangling, func(i, j int) bool { return dangling[i].seq < dangling[j].seq })

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); errc <- c.observe(ctx, dangling) }()
	go func() { defer wg.Done(); errc <- c.plan(ctx) }()
	err := <-errc
	cancel()
	if err2 := <-errc; err == nil {
		err = err2
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// observe relists every RelistPeriod and records changes; it also records
// losing and regaining the runtime, with back-off between attempts.
// danglingIntent is an intent an earlier run recorded without its outcome.
type danglingIntent struct {
	seq uint64
	pod string
}

func (c *Reconciler) observe(ctx context.Context, dangling []danglingIntent) error {
	connected, adopt := false, true
	backoff := c.RelistPeriod
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		var evs []eventlog.Event
		var version VersionInfo
		err := func() error {
			if !connected {
				v, err := c.Runtime.Version(ctx)
				if err != nil {
					return err
				}
				version = v
			}
			l, err := c.Runtime.list(ctx, c.Now())
			if err != nil {
				return err
			}
			var known map[string]knownPod
			c.Projection.Read(func(s *projector.State) { known = knownObjects(s) })
			evs, err = observations(ctx, c.Runtime, known, l, adopt)
			return err
		}()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if connected {
				c.Logger.Warn("runtime lost", "endpoint", c.Endpoint, "err", err)
				if _, aerr := c.Log.Append(ctx, disconnectedEvent(c.Endpoint, err)); aerr != nil {
					return fmt.Errorf("record runtime lost: %w", aerr)
				}
				connected = false
			} else if adopt {
				c.Logger.Warn("runtime not reachable yet", "endpoint", c.Endpoint, "err", err)
			}
			backoff = min(backoff*2, 30*time.Second)
			timer.Reset(backoff)
			continue
		}
		backoff = c.RelistPeriod
		if !connected {
			// The picture of the runtime lands before the connection does, so
			// nothing is planned on a half-known runtime.
			evs = append(evs, connectedEvent(c.Endpoint, version))
			for _, d := range dangling {
				evs = append(evs, eventlog.Event{Pod: d.pod, Data: &pb.Outcome{
					IntentSeq: d.seq, Ok: false, Reason: projector.ReasonReconciled,
					Error: "the agent stopped before the outcome was recorded; the runtime was re-listed instead",
				}})
			}
			dangling = nil
		}
		if len(evs) > 0 {
			if _, err := c.Log.Append(ctx, evs...); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("record observations: %w", err)
			}
		}
		if !connected {
			c.Logger.Info("runtime connected", "endpoint", c.Endpoint, "runtime", version.RuntimeName, "version", version.RuntimeVersion, "adopted", adopt)
		}
		connected, adopt = true, false
		timer.Reset(c.RelistPeriod)
	}
}

// work is one decision with what its execution needs.
type work struct {
	pod       string
	intent    *pb.Intent
	spec      *corev1.Pod
	lastOfUID bool
}

// plan decides on the projected state whenever it changes (or a back-off
// expires), records the intents, then carries them out concurrently across
// pods — never two at once for one pod, since a pod with a pending intent is
// not planned for.
func (c *Reconciler) plan(ctx context.Context) error {
	sem := make(chan struct{}, c.Workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		var (
			plan    projector.Plan
			seq     uint64
			changed <-chan struct{}
			works   []work
		)
		now := c.Now()
		changed = c.Projection.Changed()
		c.Projection.Read(func(s *projector.State) {
			seq = s.Seq
			plan = s.Plan(now.UnixNano())
			for _, d := range plan.Decisions {
				w := work{pod: d.Pod, intent: d.Intent}
				if p := s.Pods[d.Pod]; p != nil {
					if spec := p.DecodeSpec(); spec != nil && p.UID == d.Intent.Uid {
						w.spec = spec.DeepCopy()
					}
					w.lastOfUID = true
					for id, sb := range p.Sandboxes {
						if sb.UID == d.Intent.Uid && id != d.Intent.SandboxId {
							w.lastOfUID = false
						}
					}
				}
				works = append(works, w)
			}
		})
		if len(works) > 0 {
			evs := make([]eventlog.Event, len(works))
			for i, w := range works {
				w.intent.PlanSeq = seq
				w.intent.PlanTimeUnixNano = now.UnixNano()
				evs[i] = eventlog.Event{Pod: w.pod, Data: w.intent}
			}
			seqs, err := c.Log.Append(ctx, evs...)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("record %d intents: %w", len(evs), err)
			}
			// The next plan must see these as pending.
			if err := c.Projection.WaitFor(ctx, seqs[len(seqs)-1]); err != nil {
				return nil
			}
			for i, w := range works {
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					return nil
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					c.carryOut(ctx, w, seqs[i])
				}()
			}
			continue
		}
		var wake <-chan time.Time
		var t *time.Timer
		if plan.Wake > 0 {
			t = time.NewTimer(time.Until(time.Unix(0, plan.Wake)))
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
			return nil
		}
	}
}

func (c *Reconciler) carryOut(ctx context.Context, w work, intentSeq uint64) {
	start := time.Now()
	out := c.Runtime.Execute(ctx, w.spec, w.intent, ExecOptions{LastOfUID: w.lastOfUID, HostIP: c.HostIP})
	out.IntentSeq = intentSeq
	// Record the outcome even while stopping; if this fails too, recovery
	// at the next start reconciles the intent from the runtime.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := c.Log.Append(actx, eventlog.Event{Pod: w.pod, Data: out}); err != nil {
		c.Logger.Error("record outcome", "pod", w.pod, "intent", intentSeq, "err", err)
		return
	}
	lvl := slog.LevelInfo
	if !out.Ok {
		lvl = slog.LevelWarn
	}
	c.Logger.Log(ctx, lvl, "action", "pod", w.pod, "action", w.intent.Action, "container", w.intent.Container,
		"ok", out.Ok, "reason", out.Reason, "err", out.Error, "took", time.Since(start))
}

func sortStrings(s []string) { sort.Strings(s) }
