package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ledgerlet/ledgerlet/eventlog"
	"github.com/ledgerlet/ledgerlet/projector"
)

// projection keeps the agent's in-memory copy of projected state: a cache of
// the log's fold, fed only by a subscription to the log, so it can never hold
// a fact that is not durable.
type projection struct {
	log      *eventlog.Log
	every    uint64 // snapshot after this many events
	logger   *slog.Logger
	events   *prometheus.CounterVec
	snapDurs prometheus.Histogram

	mu       sync.RWMutex
	state    *projector.State
	lastSnap uint64
	changed  chan struct{} // closed and replaced after each applied event
}

func newProjection(l *eventlog.Log, st *projector.State, every uint64, logger *slog.Logger, reg prometheus.Registerer) *projection {
	p := &projection{
		log: l, every: every, logger: logger, state: st, lastSnap: st.Seq,
		changed: make(chan struct{}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ledgerlet_events_folded_total", Help: "Events folded into the projection, by type.",
		}, []string{"type"}),
		snapDurs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ledgerlet_snapshot_duration_seconds", Help: "Time to encode and store a snapshot.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	reg.MustRegister(p.events, p.snapDurs)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ledgerlet_projection_seq", Help: "Seq of the last event folded into the projection.",
	}, func() float64 { return float64(p.Seq()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ledgerlet_pods", Help: "Static pods in the projection.",
	}, func() float64 { p.mu.RLock(); defer p.mu.RUnlock(); return float64(len(p.state.Pods)) }))
	return p
}

// Run follows the log until ctx is done.
func (p *projection) Run(ctx context.Context) error {
	sub := p.log.Subscribe(p.Seq() + 1)
	defer sub.Close()
	for {
		e, err := sub.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, eventlog.ErrClosed) {
				return nil
			}
			return fmt.Errorf("follow log: %w", err)
		}
		// Fold what is already committed before anyone sees the state, so
		// no decision is made between two events of one append.
		batch := []eventlog.Event{e}
		for sub.Ready() > 0 {
			e, err := sub.Next(ctx)
			if err != nil {
				break
			}
			batch = append(batch, e)
		}
		p.mu.Lock()
		for _, e := range batch {
			p.state.Apply(e)
		}
		ch := p.changed
		p.changed = make(chan struct{})
		last := batch[len(batch)-1].Seq
		due := p.every > 0 && last-p.lastSnap >= p.every
		p.mu.Unlock()
		close(ch)
		for _, e := range batch {
			p.events.WithLabelValues(e.Type()).Inc()
		}
		if due {
			if err := p.snapshot(ctx); err != nil {
				// A missed snapshot costs start-up time, not correctness.
				p.logger.Warn("snapshot failed", "err", err)
			}
		}
	}
}

func (p *projection) snapshot(ctx context.Context) error {
	timer := prometheus.NewTimer(p.snapDurs)
	defer timer.ObserveDuration()
	p.mu.RLock()
	seq := p.state.Seq
	b, err := p.state.Canonical()
	p.mu.RUnlock()
	if err != nil {
		return err
	}
	if err := p.log.SaveSnapshot(ctx, eventlog.Snapshot{Seq: seq, State: b}); err != nil {
		return fmt.Errorf("save snapshot at %d: %w", seq, err)
	}
	p.mu.Lock()
	p.lastSnap = seq
	p.mu.Unlock()
	p.logger.Debug("snapshot saved", "seq", seq, "bytes", len(b))
	return nil
}

// Read calls fn with the current state under the read lock.
func (p *projection) Read(fn func(*projector.State)) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	fn(p.state)
}

// Changed is closed when the next event is folded.
func (p *projection) Changed() <-chan struct{} {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.changed
}

// Seq is the last folded seq.
func (p *projection) Seq() uint64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.state.Seq
}

// WaitFor blocks until event seq has been folded (read-your-writes for the API).
func (p *projection) WaitFor(ctx context.Context, seq uint64) error {
	for {
		p.mu.RLock()
		done, ch := p.state.Seq >= seq, p.changed
		p.mu.RUnlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Views renders the pods as of now.
func (p *projection) Views(now time.Time) []projector.PodView {
	p.mu.RLock()
	defer p.mu.RUnlock()
	// Back-offs are in steady time: read now on the same clock.
	return p.state.ViewsAt(p.state.SteadyAt(now.UnixNano(), eventlog.Boottime()))
}
