package replay

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"golang.org/x/net/http/httpguts"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
)

const (
	otlpScope       = "github.com/ledgerlet/ledgerlet/replay"
	otlpUserAgent   = "ledgerlet OTLP/HTTP protobuf logs exporter"
	otlpContentType = "application/x-protobuf"
	otlpTimeout     = 10 * time.Second
	// otlpMaxBody bounds what is read of a response: a collector answers
	// with a small message, and a proxy's error page must not fill memory.
	otlpMaxBody = 64 << 10
)

// OTLPSink ships records as OpenTelemetry logs over OTLP/HTTP protobuf. A
// commit is one export the collector acknowledged, so the cursor moves only
// over what it holds. The request is built from the generated OTLP types
// and posted with net/http: the OpenTelemetry SDK and its exporter cost
// the agent about 1 MB of binary and of resident memory for this.
type OTLPSink struct {
	url      string
	header   http.Header
	gzip     bool
	client   *http.Client
	records  []*logspb.LogRecord // written since the last commit
	resource *resourcepb.Resource
	log      *slog.Logger
	// sleep waits between attempts; tests replace it to see the waits.
	sleep func(ctx context.Context, d time.Duration) error
}

// NewOTLPSink exports to endpoint, an http(s) URL; with no path the OTLP
// default /v1/logs is used. The OTEL_EXPORTER_OTLP_[LOGS_]HEADERS,
// COMPRESSION, CERTIFICATE, CLIENT_CERTIFICATE and CLIENT_KEY variables
// apply as they do to OpenTelemetry's exporters; the endpoint variables do
// not, as endpoint is what the operator asked for.
func NewOTLPSink(_ context.Context, endpoint string, logger *slog.Logger) (*OTLPSink, error) {
	return newOTLPSink(endpoint, logger, os.Getenv)
}

func newOTLPSink(endpoint string, logger *slog.Logger, getenv func(string) string) (*OTLPSink, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("otlp endpoint %q: want an http(s) URL such as http://127.0.0.1:4318/v1/logs", endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/logs"
	}
	header := http.Header{"User-Agent": {otlpUserAgent}}
	if name, v := otlpEnv(getenv, "HEADERS"); v != "" {
		if err := parseOTLPHeaders(header, v); err != nil {
			return nil, fmt.Errorf("otlp exporter: %s: %w", name, err)
		}
	}
	// Set after the operator's headers, which must not change the encoding.
	header.Set("Content-Type", otlpContentType)
	name, compression := otlpEnv(getenv, "COMPRESSION")
	if compression != "" && compression != "gzip" && compression != "none" {
		return nil, fmt.Errorf("otlp exporter: %s=%q: want gzip or none", name, compression)
	}
	tlsConfig, err := otlpTLS(getenv)
	if err != nil {
		return nil, fmt.Errorf("otlp exporter: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	// An own transport, not http.DefaultTransport: its idle connections are
	// closed with the sink, and nothing else can change it.
	transport := &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: tlsConfig, ForceAttemptHTTP2: true,
		IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: otlpTimeout}
	return &OTLPSink{
		url:      u.String(),
		header:   header,
		gzip:     compression == "gzip",
		client:   &http.Client{Transport: transport, Timeout: otlpTimeout},
		resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{strAttr("service.name", "ledgerlet")}},
		log:      logger,
		sleep:    sleepCtx,
	}, nil
}

// otlpEnv returns the variable OTEL_EXPORTER_OTLP_LOGS_<key>, or else
// OTEL_EXPORTER_OTLP_<key>, and its name: the signal's own wins.
func otlpEnv(getenv func(string) string, key string) (name, value string) {
	for _, name := range []string{"OTEL_EXPORTER_OTLP_LOGS_" + key, "OTEL_EXPORTER_OTLP_" + key} {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return name, v
		}
	}
	return "OTEL_EXPORTER_OTLP_" + key, ""
}

// parseOTLPHeaders adds the comma-separated key=value pairs of s, values
// URL-decoded, to h. A malformed pair is refused rather than dropped: an
// operator relying on an auth header should learn now, not from a 401.
func parseOTLPHeaders(h http.Header, s string) error {
	for pair := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("header %q: want key=value", pair)
		}
		v, err := url.PathUnescape(v)
		if err != nil {
			return fmt.Errorf("header %q: %w", k, err)
		}
		if v = strings.TrimSpace(v); !httpguts.ValidHeaderFieldValue(v) {
			return fmt.Errorf("header %q: invalid value", k)
		}
		h.Set(k, v)
	}
	return nil
}

// otlpTLS loads the CA and client certificate files the environment names;
// nil when it names none.
func otlpTLS(getenv func(string) string) (*tls.Config, error) {
	var cfg tls.Config
	if name, path := otlpEnv(getenv, "CERTIFICATE"); path != "" {
		pem, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate in %s", name, path)
		}
	}
	certName, certPath := otlpEnv(getenv, "CLIENT_CERTIFICATE")
	keyName, keyPath := otlpEnv(getenv, "CLIENT_KEY")
	switch {
	case certPath == "" && keyPath == "":
	case certPath == "" || keyPath == "":
		return nil, fmt.Errorf("%s and %s: want both or neither", certName, keyName)
	default:
		cert, err := tls.LoadX509KeyPair(certPath, keyPath)
		if err != nil {
			return nil, fmt.Errorf("%s and %s: %w", certName, keyName, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if cfg.RootCAs == nil && cfg.Certificates == nil {
		return nil, nil
	}
	return &cfg, nil
}

func strAttr(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func intAttr(k string, v int64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
}

// otlpAttrs are the attributes each record carries.
func otlpAttrs(rec ExportRecord) []*commonpb.KeyValue {
	if rec.Gap != nil {
		return []*commonpb.KeyValue{strAttr("ledgerlet.type", "Gap"), intAttr("ledgerlet.gap.from", int64(rec.Gap.From)),
			intAttr("ledgerlet.gap.to", int64(rec.Gap.To))}
	}
	e := rec.Event
	kv := []*commonpb.KeyValue{intAttr("ledgerlet.seq", int64(e.Seq)), strAttr("ledgerlet.type", e.Type)}
	if e.Pod != "" {
		kv = append(kv, strAttr("ledgerlet.pod", e.Pod))
		if ns, name, ok := strings.Cut(e.Pod, "/"); ok {
			kv = append(kv, strAttr("k8s.namespace.name", ns), strAttr("k8s.pod.name", name))
		}
	}
	return kv
}

// unixNano is t for OTLP, where 0 means unknown; as the SDK did, a time
// before 1970 is unknown too.
func unixNano(t time.Time) uint64 {
	if t.IsZero() || t.UnixNano() < 0 {
		return 0
	}
	return uint64(t.UnixNano())
}

// Write turns the record into a log record: its time, the type as event
// name, seq/type/pod attributes, and the JSON line as the body.
func (s *OTLPSink) Write(rec ExportRecord) error {
	body, err := rec.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encode record %d: %w", rec.Seq(), err)
	}
	r := &logspb.LogRecord{
		ObservedTimeUnixNano: unixNano(time.Now()),
		SeverityNumber:       logspb.SeverityNumber_SEVERITY_NUMBER_INFO,
		SeverityText:         "INFO",
		Body:                 &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: string(body)}},
		Attributes:           otlpAttrs(rec),
	}
	if rec.Gap != nil {
		// Lost events are worth a look, so the gap stands out by severity.
		r.TimeUnixNano, r.EventName = unixNano(rec.Gap.Time), "Gap"
		r.SeverityNumber, r.SeverityText = logspb.SeverityNumber_SEVERITY_NUMBER_WARN, "WARN"
	} else {
		r.TimeUnixNano, r.EventName = unixNano(rec.Event.Time), rec.Event.Type
	}
	s.records = append(s.records, r)
	return nil
}

// Commit exports what was written, retrying with back-off until the
// collector takes it or ctx ends. Every failure is retried, not only those
// the OTLP spec calls retryable: the cursor must not pass a record the
// collector does not hold, and the operator sees each failure logged.
func (s *OTLPSink) Commit(ctx context.Context) error {
	if len(s.records) == 0 {
		return nil
	}
	body, err := s.encode()
	if err != nil {
		return err
	}
	backoff := 250 * time.Millisecond
	for {
		retryAfter, err := s.send(ctx, body)
		if err == nil {
			clear(s.records) // free the records; the array serves the next batch
			s.records = s.records[:0]
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("otlp export: %w", err)
		}
		wait := max(backoff, retryAfter)
		s.log.Warn("otlp export failed; retrying", "records", len(s.records), "err", err, "retry", wait)
		if serr := s.sleep(ctx, wait); serr != nil {
			return fmt.Errorf("otlp export: %w", err)
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// encode is the request body for the records written, compressed if asked.
func (s *OTLPSink) encode() ([]byte, error) {
	req := &collogs.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
		Resource:  s.resource,
		ScopeLogs: []*logspb.ScopeLogs{{Scope: &commonpb.InstrumentationScope{Name: otlpScope}, LogRecords: s.records}},
	}}}
	body, err := proto.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("otlp export: encode %d records: %w", len(s.records), err)
	}
	if !s.gzip {
		return body, nil
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(body); err != nil {
		return nil, fmt.Errorf("otlp export: compress: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("otlp export: compress: %w", err)
	}
	return b.Bytes(), nil
}

// send posts one export request. On failure it returns how long the
// collector asked to be left alone, if it did.
func (s *OTLPSink) send(ctx context.Context, body []byte) (retryAfter time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("post %s: %w", s.url, err)
	}
	req.Header = s.header.Clone()
	if s.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err // names the method and URL already
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, otlpMaxBody))
	// Drain what is left so the connection can carry the next export.
	_, _ = io.Copy(io.Discard, resp.Body)
	isProto := strings.HasPrefix(resp.Header.Get("Content-Type"), otlpContentType)
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		// The collector holds the records: a body we cannot read does not
		// change that, and sending them again would only duplicate them.
		var out collogs.ExportLogsServiceResponse
		if err == nil && isProto {
			err = proto.Unmarshal(b, &out)
		}
		if err != nil {
			s.log.Warn("otlp export: unreadable response", "url", s.url, "err", err)
		}
		// The spec says not to retry a partial success: the collector
		// refused those records and would refuse them again.
		if p := out.GetPartialSuccess(); p.GetRejectedLogRecords() > 0 || p.GetErrorMessage() != "" {
			s.log.Warn("otlp export: collector rejected records", "rejected", p.GetRejectedLogRecords(),
				"records", len(s.records), "msg", p.GetErrorMessage())
		}
		return 0, nil
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"))
	}
	return retryAfter, fmt.Errorf("post %s: %s: %s", s.url, resp.Status, bodySnippet(b, isProto))
}

// bodySnippet is what an error response says: the message of the
// google.rpc.Status the spec asks for, or else the start of the body.
func bodySnippet(b []byte, isProto bool) string {
	var st statuspb.Status
	if isProto && proto.Unmarshal(b, &st) == nil && st.GetMessage() != "" {
		return strconv.Quote(st.GetMessage())
	}
	if b = bytes.TrimSpace(b); len(b) == 0 {
		return "(empty body)"
	}
	if len(b) > 200 {
		return strconv.Quote(string(b[:200])) + "…"
	}
	return strconv.Quote(string(b))
}

// parseRetryAfter reads a Retry-After of seconds or an HTTP date; 0 if
// absent or unreadable. It is capped at an hour so that a confused proxy
// cannot hold exports back for days (a cancelled ctx still ends a wait).
func parseRetryAfter(v string) time.Duration {
	var d time.Duration
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t)
	}
	return min(max(d, 0), time.Hour)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Close drops what was not committed and closes the idle connections.
func (s *OTLPSink) Close() error {
	s.records = nil
	s.client.CloseIdleConnections()
	return nil
}
