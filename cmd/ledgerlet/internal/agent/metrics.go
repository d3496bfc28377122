package agent

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ledgerlet/ledgerlet/eventlog"
)

// meteredLog is the log as sources, observers and effectors see it: Append, timed.
type meteredLog struct {
	log     *eventlog.Log
	latency prometheus.Histogram
}

func newMeteredLog(l *eventlog.Log, reg prometheus.Registerer) *meteredLog {
	m := &meteredLog{log: l, latency: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "ledgerlet_append_duration_seconds", Help: "Durable append latency (commit + fsync).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})}
	reg.MustRegister(m.latency)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ledgerlet_log_last_seq", Help: "Highest committed seq.",
	}, func() float64 { return float64(l.LastSeq()) }))
	return m
}

func (m *meteredLog) Append(ctx context.Context, evs ...eventlog.Event) ([]uint64, error) {
	t := time.Now()
	seqs, err := m.log.Append(ctx, evs...)
	m.latency.Observe(time.Since(t).Seconds())
	return seqs, err
}

func healthMux(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}
