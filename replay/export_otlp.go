package replay

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
)

// OTLPSink ships records as OpenTelemetry logs over OTLP/HTTP. A commit is
// one export the collector acknowledged: the SDK's own batching would
// report a failure only to a global handler, so the sink collects the
// records and exports them itself, retrying with back-off, before the
// cursor may move.
type OTLPSink struct {
	exporter  sdklog.Exporter
	provider  *sdklog.LoggerProvider
	logger    otellog.Logger
	collected *collector
	log       *slog.Logger
}

// collector is the provider's processor: it keeps what was emitted (with
// the resource and scope the provider stamped) for the next commit.
type collector struct{ records []sdklog.Record }

func (c *collector) OnEmit(_ context.Context, r *sdklog.Record) error {
	c.records = append(c.records, r.Clone())
	return nil
}
func (c *collector) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }
func (c *collector) Shutdown(context.Context) error                         { return nil }
func (c *collector) ForceFlush(context.Context) error                       { return nil }

// NewOTLPSink exports to endpoint, an http(s) URL; with no path the OTLP
// default /v1/logs is used.
func NewOTLPSink(ctx context.Context, endpoint string, logger *slog.Logger) (*OTLPSink, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("otlp endpoint %q: want an http(s) URL such as http://127.0.0.1:4318/v1/logs", endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/logs"
	}
	exp, err := otlploghttp.New(ctx, otlploghttp.WithEndpointURL(u.String()),
		// The sink retries itself, so a commit reports what happened.
		otlploghttp.WithRetry(otlploghttp.RetryConfig{Enabled: false}), otlploghttp.WithTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("otlp exporter for %s: %w", u, err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", "ledgerlet"))
	c := &collector{}
	provider := sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(c),
		sdklog.WithAttributeValueLengthLimit(-1), sdklog.WithAttributeCountLimit(-1))
	if logger == nil {
		logger = slog.Default()
	}
	return &OTLPSink{exporter: exp, provider: provider, logger: provider.Logger("github.com/ledgerlet/ledgerlet/replay"),
		collected: c, log: logger}, nil
}

// otlpAttrs are the attributes each record carries.
func otlpAttrs(rec ExportRecord) []attribute.KeyValue {
	if rec.Gap != nil {
		return []attribute.KeyValue{attribute.String("ledgerlet.type", "Gap"), attribute.Int64("ledgerlet.gap.from", int64(rec.Gap.From)),
			attribute.Int64("ledgerlet.gap.to", int64(rec.Gap.To))}
	}
	e := rec.Event
	kv := []attribute.KeyValue{attribute.Int64("ledgerlet.seq", int64(e.Seq)), attribute.String("ledgerlet.type", e.Type)}
	if e.Pod != "" {
		kv = append(kv, attribute.String("ledgerlet.pod", e.Pod))
		if ns, name, ok := strings.Cut(e.Pod, "/"); ok {
			kv = append(kv, attribute.String("k8s.namespace.name", ns), attribute.String("k8s.pod.name", name))
		}
	}
	return kv
}

// Write turns the record into a log record: its time, the type as event
// name, seq/type/pod attributes, and the JSON line as the body.
func (s *OTLPSink) Write(rec ExportRecord) error {
	body, err := rec.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encode record %d: %w", rec.Seq(), err)
	}
	var r otellog.Record
	r.SetObservedTimestamp(time.Now())
	r.SetSeverity(otellog.SeverityInfo)
	r.SetSeverityText("INFO")
	if rec.Gap != nil {
		r.SetTimestamp(rec.Gap.Time)
		r.SetEventName("Gap")
		r.SetSeverity(otellog.SeverityWarn)
		r.SetSeverityText("WARN")
	} else {
		r.SetTimestamp(rec.Event.Time)
		r.SetEventName(rec.Event.Type)
	}
	r.SetBody(attribute.StringValue(string(body)))
	r.AddAttributes(otlpAttrs(rec)...)
	s.logger.Emit(context.Background(), r)
	return nil
}

// Commit exports what was written, retrying with back-off until the
// collector takes it or ctx ends.
func (s *OTLPSink) Commit(ctx context.Context) error {
	if len(s.collected.records) == 0 {
		return nil
	}
	wait := 250 * time.Millisecond
	for {
		err := s.exporter.Export(ctx, s.collected.records)
		if err == nil {
			s.collected.records = s.collected.records[:0]
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("otlp export: %w", err)
		}
		s.log.Warn("otlp export failed; retrying", "records", len(s.collected.records), "err", err, "retry", wait)
		select {
		case <-ctx.Done():
			return fmt.Errorf("otlp export: %w", err)
		case <-time.After(wait):
		}
		wait = min(wait*2, 30*time.Second)
	}
}

// Close shuts the exporter down (what was not committed is not sent).
func (s *OTLPSink) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.exporter.Shutdown(ctx)
	if perr := s.provider.Shutdown(ctx); err == nil {
		err = perr
	}
	return err
}
