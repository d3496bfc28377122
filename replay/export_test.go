package replay_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"go.uber.org/goleak"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/ledgerlet/ledgerlet/eventlog"
	"github.com/ledgerlet/ledgerlet/projector/projectortest"
	"github.com/ledgerlet/ledgerlet/replay"
)

// memSink keeps what was committed, as a collector would.
type memSink struct {
	written, committed []replay.ExportRecord
}

func (m *memSink) Write(r replay.ExportRecord) error { m.written = append(m.written, r); return nil }
func (m *memSink) Commit(context.Context) error {
	m.committed = append(m.committed, m.written...)
	m.written = nil
	return nil
}
func (m *memSink) Close() error { return nil }

func generatedLog(t *testing.T, n int) *eventlog.Log {
	t.Helper()
	l := openLog(t)
	if _, err := l.Append(context.Background(), projectortest.New(11, 5).Events(n)...); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestExportReportsACompactedGapNeverSkipsIt: a cursor older than the
// retained log gets a Gap record naming the lost seqs, then the rest.
func TestExportReportsACompactedGapNeverSkipsIt(t *testing.T) {
	ctx := context.Background()
	l := generatedLog(t, 600)
	st, err := l.Stats()
	if err != nil {
		t.Fatal(err)
	}
	retainOnce(ctx, t, l, eventlog.Retention{MaxBytes: st.DataBytes / 2})
	first := l.FirstSeq()
	cur := replay.Cursor{Path: filepath.Join(t.TempDir(), "cursor")}
	if err := cur.Store(50); err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	var gaps []replay.Gap
	x := &replay.Exporter{Sinks: []replay.ExportSink{sink}, Cursor: &cur, OnGap: func(g replay.Gap) { gaps = append(gaps, g) }, CommitEvery: 64}
	from, _, _ := cur.Load()
	if err := replay.ExportLog(ctx, l, from+1, projectortest.ScenarioStart, x.Emit(ctx)); err != nil {
		t.Fatal(err)
	}
	if len(gaps) != 1 || gaps[0].From != 51 || gaps[0].To != first-1 {
		t.Fatalf("gaps %+v, want one from 51 to %d", gaps, first-1)
	}
	recs := sink.committed
	if recs[0].Gap == nil || recs[1].Event == nil || recs[1].Event.Seq != first {
		t.Fatalf("first records %+v %+v: want the gap, then seq %d", recs[0], recs[1], first)
	}
	for i := 2; i < len(recs); i++ {
		if recs[i].Event.Seq != recs[i-1].Event.Seq+1 {
			t.Fatalf("seq %d follows %d", recs[i].Event.Seq, recs[i-1].Event.Seq)
		}
	}
	if got, _, _ := cur.Load(); got != 600 {
		t.Fatalf("cursor %d after the export, want 600", got)
	}
	line, _ := json.Marshal(recs[0])
	if !strings.HasPrefix(string(line), `{"type":"Gap","time":`) || !strings.Contains(string(line), `"from":51,"to":`) {
		t.Fatalf("gap line %s", line)
	}
}

// TestExportCursorMovesOnlyAfterACommit: a cursor never covers what the
// sink has not made durable, so a crash re-sends rather than loses.
func TestExportCursorMovesOnlyAfterACommit(t *testing.T) {
	ctx := context.Background()
	l := generatedLog(t, 250)
	cur := replay.Cursor{Path: filepath.Join(t.TempDir(), "cursor")}
	sink := &memSink{}
	x := &replay.Exporter{Sinks: []replay.ExportSink{sink}, Cursor: &cur, CommitEvery: 100}
	emit := x.Emit(ctx)
	err := replay.ExportLog(ctx, l, 0, projectortest.ScenarioStart, func(r replay.ExportRecord, more bool) error {
		if err := emit(r, more); err != nil {
			return err
		}
		got, ok, _ := cur.Load()
		if ok && got > uint64(len(sink.committed)) {
			t.Fatalf("cursor %d ahead of the %d committed records", got, len(sink.committed))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := cur.Load(); got != 250 || len(sink.committed) != 250 {
		t.Fatalf("cursor %d, %d committed; want 250", got, len(sink.committed))
	}
}

// TestExportFileCutsATornLastLine: lines after the cursor are written
// again after a crash, and a line torn by it must not glue onto them.
func TestExportFileCutsATornLastLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "export.jsonl")
	if err := os.WriteFile(path, []byte("{\"seq\":1}\n{\"seq\":2}\n{\"se"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := replay.OpenLineFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ev := replay.JSONEvent{Seq: 3, Type: "AgentStarted", Data: json.RawMessage(`{}`)}
	if err := s.Write(replay.ExportRecord{Event: &ev}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[2], `{"seq":3,`) {
		t.Fatalf("file:\n%s", b)
	}
}

// otlpReceiver is a tiny OTLP/HTTP logs endpoint: it decodes each
// ExportLogsServiceRequest and keeps its records.
type otlpReceiver struct {
	mu       sync.Mutex
	requests []*collogs.ExportLogsServiceRequest // those answered 2xx
	headers  []http.Header                       // of every request decoded
	fail     int                                 // answer the next n requests 503
	replies  []otlpReply                         // then answer the next requests so
}

// otlpReply is a scripted answer. A 2xx keeps the request's records and
// answers body (an empty ExportLogsServiceResponse if nil); any other
// status answers body as protobuf, or else text.
type otlpReply struct {
	status     int
	retryAfter string
	body       proto.Message
	text       string
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/logs" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want POST /v1/logs application/x-protobuf", http.StatusBadRequest)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req collogs.ExportLogsServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	o.headers = append(o.headers, r.Header.Clone())
	if o.fail > 0 {
		o.fail--
		o.mu.Unlock()
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	reply := otlpReply{status: http.StatusOK}
	if len(o.replies) > 0 {
		reply, o.replies = o.replies[0], o.replies[1:]
	}
	ok := reply.status >= 200 && reply.status <= 299
	if ok {
		o.requests = append(o.requests, &req)
	}
	o.mu.Unlock()
	if reply.body == nil && ok {
		reply.body = &collogs.ExportLogsServiceResponse{}
	}
	if reply.retryAfter != "" {
		w.Header().Set("Retry-After", reply.retryAfter)
	}
	if reply.body == nil {
		http.Error(w, reply.text, reply.status)
		return
	}
	out, _ := proto.Marshal(reply.body)
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(reply.status)
	_, _ = w.Write(out)
}

func (o *otlpReceiver) records() (recs []*logspb.LogRecord, service string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, req := range o.requests {
		for _, rl := range req.ResourceLogs {
			for _, a := range rl.GetResource().GetAttributes() {
				if a.Key == "service.name" {
					service = a.Value.GetStringValue()
				}
			}
			for _, sl := range rl.ScopeLogs {
				recs = append(recs, sl.LogRecords...)
			}
		}
	}
	return recs, service
}

// TestOTLPExportCarriesSeqTypePodAndTheLineAsBody: every event arrives at
// an OTLP receiver once acknowledged, with its time, seq, type and pod as
// attributes and its JSON line as the body; a refused export is retried.
func TestOTLPExportCarriesSeqTypePodAndTheLineAsBody(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	n := newNode(t, false)
	crashLoop(n)
	recv := &otlpReceiver{fail: 1}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	sink, err := replay.NewOTLPSink(ctx, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	x := &replay.Exporter{Sinks: []replay.ExportSink{sink}, CommitEvery: 10}
	if err := replay.ExportLog(ctx, n.Log, 0, n.Now, x.Emit(ctx)); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	recs, service := recv.records()
	var want []replay.JSONEvent
	_ = n.Log.Read(ctx, 1, 0, func(e eventlog.Event) error { want = append(want, replay.ToJSON(e)); return nil })
	if len(recs) != len(want) {
		t.Fatalf("receiver got %d records, want %d", len(recs), len(want))
	}
	if service != "ledgerlet" {
		t.Errorf("resource service.name %q", service)
	}
	for i, r := range recs {
		attrs := map[string]any{}
		for _, a := range r.Attributes {
			if a.Value.GetStringValue() != "" {
				attrs[a.Key] = a.Value.GetStringValue()
			} else {
				attrs[a.Key] = a.Value.GetIntValue()
			}
		}
		w := want[i]
		if attrs["ledgerlet.seq"] != int64(w.Seq) || attrs["ledgerlet.type"] != w.Type {
			t.Fatalf("record %d attributes %v, want seq %d type %s", i, attrs, w.Seq, w.Type)
		}
		if w.Pod != "" && (attrs["ledgerlet.pod"] != w.Pod || attrs["k8s.pod.name"] != strings.SplitN(w.Pod, "/", 2)[1]) {
			t.Fatalf("record %d attributes %v, want pod %s", i, attrs, w.Pod)
		}
		line, _ := json.Marshal(w)
		if !bytes.Equal([]byte(r.Body.GetStringValue()), line) {
			t.Fatalf("record %d body\n%s\nwant\n%s", i, r.Body.GetStringValue(), line)
		}
		if r.TimeUnixNano != uint64(w.Time.UnixNano()) || r.EventName != w.Type {
			t.Fatalf("record %d time %d event %q, want %d %q", i, r.TimeUnixNano, r.EventName, w.Time.UnixNano(), w.Type)
		}
	}
	srv.Close()
	n.Close()
}

// otlpRun is what one export through an OTLPSink left behind.
type otlpRun struct {
	err           error
	recv          *otlpReceiver
	log           string
	waits         []time.Duration
	before, after time.Time // around the writes
	event         replay.JSONEvent
	gap           replay.Gap
}

// exportOnce writes an event and a gap to a sink configured by env and
// commits them to a receiver answering replies first. With giveUp the
// commit's first wait cancels it, and any fifth wait does, so that an
// export that keeps failing fails the test rather than hanging it.
func exportOnce(t *testing.T, env map[string]string, replies []otlpReply, giveUp bool) otlpRun {
	t.Helper()
	run := otlpRun{
		recv:  &otlpReceiver{replies: replies},
		event: replay.JSONEvent{Seq: 7, Time: time.Unix(1700000000, 5).UTC(), Type: "PodStarted", Pod: "kube-system/etcd", Data: json.RawMessage(`{}`)},
		gap:   replay.NewGap(3, 6, time.Unix(1700000100, 0)),
	}
	srv := httptest.NewServer(run.recv)
	defer srv.Close()
	var logs bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sleep := func(ctx context.Context, d time.Duration) error {
		run.waits = append(run.waits, d)
		if giveUp || len(run.waits) == 5 {
			cancel()
		}
		return ctx.Err()
	}
	sink, err := replay.NewOTLPSinkWith(srv.URL, slog.New(slog.NewTextHandler(&logs, nil)), env, sleep)
	if err != nil {
		t.Fatal(err)
	}
	run.before = time.Now()
	for _, rec := range []replay.ExportRecord{{Event: &run.event}, {Gap: &run.gap}} {
		if err := sink.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	run.after = time.Now()
	run.err = sink.Commit(ctx)
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	run.log = logs.String()
	return run
}

// TestOTLPSinkSpeaksOTLPHTTP: the request and the answers to it follow
// the OTLP/HTTP spec and the OTEL_EXPORTER_OTLP_* variables.
func TestOTLPSinkSpeaksOTLPHTTP(t *testing.T) {
	defer goleak.VerifyNone(t)
	accepted := func(t *testing.T, r otlpRun) {
		t.Helper()
		if r.err != nil {
			t.Fatal(r.err)
		}
		if recs, _ := r.recv.records(); len(recs) != 2 {
			t.Fatalf("receiver holds %d records, want 2", len(recs))
		}
	}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		replies []otlpReply
		giveUp  bool
		check   func(t *testing.T, r otlpRun)
	}{{
		name: "records carry time, severity, event name and observed time",
		check: func(t *testing.T, r otlpRun) {
			accepted(t, r)
			req := r.recv.requests[0]
			rl := req.ResourceLogs[0]
			if len(req.ResourceLogs) != 1 || len(rl.ScopeLogs) != 1 || rl.ScopeLogs[0].Scope.GetName() != "github.com/ledgerlet/ledgerlet/replay" {
				t.Fatalf("want one resource with one scope github.com/ledgerlet/ledgerlet/replay: %v", req)
			}
			if a := rl.Resource.GetAttributes(); rl.SchemaUrl != "" || len(a) != 1 || a[0].Key != "service.name" || a[0].Value.GetStringValue() != "ledgerlet" {
				t.Fatalf("resource %v schema %q, want only service.name=ledgerlet", rl.Resource, rl.SchemaUrl)
			}
			recs := rl.ScopeLogs[0].LogRecords
			for i, want := range []struct {
				time     time.Time
				sev      int32
				sevText  string
				event    string
				intAttrs map[string]int64
			}{
				{r.event.Time, 9, "INFO", "PodStarted", map[string]int64{"ledgerlet.seq": 7}},
				{r.gap.Time, 13, "WARN", "Gap", map[string]int64{"ledgerlet.gap.from": 3, "ledgerlet.gap.to": 6}},
			} {
				rec := recs[i]
				if rec.TimeUnixNano != uint64(want.time.UnixNano()) || int32(rec.SeverityNumber) != want.sev || rec.SeverityText != want.sevText || rec.EventName != want.event {
					t.Errorf("record %d: time %d severity %v %q event %q, want %d %v %q %q", i, rec.TimeUnixNano, rec.SeverityNumber, rec.SeverityText, rec.EventName,
						want.time.UnixNano(), want.sev, want.sevText, want.event)
				}
				if obs := rec.ObservedTimeUnixNano; obs < uint64(r.before.UnixNano()) || obs > uint64(r.after.UnixNano()) {
					t.Errorf("record %d observed at %d, not while written (%v..%v)", i, obs, r.before, r.after)
				}
				for _, a := range rec.Attributes {
					if v, ok := want.intAttrs[a.Key]; ok && a.Value.GetIntValue() != v {
						t.Errorf("record %d attribute %s = %v, want int %d", i, a.Key, a.Value, v)
					}
				}
			}
		},
	}, {
		name: "headers from the environment arrive, the signal's variable winning",
		env: map[string]string{
			"OTEL_EXPORTER_OTLP_HEADERS":       "x-generic=1",
			"OTEL_EXPORTER_OTLP_LOGS_HEADERS":  "api-key=secret%20one%2Cmore, X-Tenant = b ,Content-Type=text/plain",
			"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://127.0.0.1:1/elsewhere", // the command line's endpoint wins
		},
		check: func(t *testing.T, r otlpRun) {
			accepted(t, r)
			h := r.recv.headers[0]
			if h.Get("Api-Key") != "secret one,more" || h.Get("X-Tenant") != "b" || h.Get("X-Generic") != "" {
				t.Errorf("headers %v, want api-key and x-tenant from OTEL_EXPORTER_OTLP_LOGS_HEADERS only", h)
			}
			if !strings.Contains(h.Get("User-Agent"), "ledgerlet") || h.Get("Content-Encoding") != "" {
				t.Errorf("user agent %q, content encoding %q", h.Get("User-Agent"), h.Get("Content-Encoding"))
			}
		},
	}, {
		name: "gzip compression",
		env:  map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"},
		check: func(t *testing.T, r otlpRun) {
			accepted(t, r)
			if ce := r.recv.headers[0].Get("Content-Encoding"); ce != "gzip" {
				t.Errorf("content encoding %q, want gzip", ce)
			}
		},
	}, {
		name: "the signal's compression none wins over gzip",
		env:  map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip", "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION": "none"},
		check: func(t *testing.T, r otlpRun) {
			accepted(t, r)
			if ce := r.recv.headers[0].Get("Content-Encoding"); ce != "" {
				t.Errorf("content encoding %q, want none", ce)
			}
		},
	}, {
		name:    "503 with Retry-After is retried no sooner",
		replies: []otlpReply{{status: http.StatusServiceUnavailable, retryAfter: "7", text: "busy"}},
		check: func(t *testing.T, r otlpRun) {
			accepted(t, r)
			if len(r.waits) != 1 || r.waits[0] < 7*time.Second || len(r.recv.headers) != 2 {
				t.Errorf("waits %v over %d requests, want one of at least 7s", r.waits, len(r.recv.headers))
			}
			if !strings.Contains(r.log, "503 Service Unavailable") {
				t.Errorf("log does not name the 503:\n%s", r.log)
			}
		},
	}, {
		name: "400 is reported with its status and the google.rpc.Status message",
		replies: []otlpReply{{status: http.StatusBadRequest, retryAfter: "60",
			body: &statuspb.Status{Code: 3, Message: "attribute too long"}}},
		giveUp: true,
		check: func(t *testing.T, r otlpRun) {
			if r.err == nil || !strings.Contains(r.err.Error(), "400 Bad Request") || !strings.Contains(r.err.Error(), "attribute too long") {
				t.Fatalf("err %v, want the 400 and its message", r.err)
			}
			// Retry-After is for throttling statuses only.
			if len(r.waits) != 1 || r.waits[0] != 250*time.Millisecond {
				t.Errorf("waits %v, want the first back-off", r.waits)
			}
		},
	}, {
		name:    "a text error body is cut to a snippet",
		replies: []otlpReply{{status: http.StatusBadGateway, text: strings.Repeat("x", 1000)}},
		giveUp:  true,
		check: func(t *testing.T, r otlpRun) {
			if r.err == nil || !strings.Contains(r.err.Error(), "502 Bad Gateway") || !strings.Contains(r.err.Error(), strings.Repeat("x", 200)) ||
				strings.Contains(r.err.Error(), strings.Repeat("x", 201)) {
				t.Fatalf("err %v, want the 502 and 200 bytes of its body", r.err)
			}
		},
	}, {
		name: "partial success is logged, not sent again",
		replies: []otlpReply{{status: http.StatusOK, body: &collogs.ExportLogsServiceResponse{
			PartialSuccess: &collogs.ExportLogsPartialSuccess{RejectedLogRecords: 1, ErrorMessage: "gap records not wanted"}}}},
		check: func(t *testing.T, r otlpRun) {
			accepted(t, r)
			if len(r.recv.headers) != 1 || len(r.waits) != 0 {
				t.Errorf("%d requests, waits %v: want one", len(r.recv.headers), r.waits)
			}
			if !strings.Contains(r.log, "level=WARN") || !strings.Contains(r.log, "rejected=1") || !strings.Contains(r.log, "gap records not wanted") {
				t.Errorf("log does not report the rejection:\n%s", r.log)
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, exportOnce(t, tc.env, tc.replies, tc.giveUp))
		})
	}
}

// TestOTLPSinkRefusesABadEnvironment: a variable the sink cannot use stops
// it at the start, named, rather than failing each export.
func TestOTLPSinkRefusesABadEnvironment(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		env  map[string]string
		name string // the variable the error must name
	}{
		{map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, "OTEL_EXPORTER_OTLP_COMPRESSION"},
		{map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip", "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION": "br"}, "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION"},
		{map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "api-key"}, "OTEL_EXPORTER_OTLP_HEADERS"},
		{map[string]string{"OTEL_EXPORTER_OTLP_LOGS_HEADERS": "api-key=%zz"}, "OTEL_EXPORTER_OTLP_LOGS_HEADERS"},
		{map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "api key=1"}, "OTEL_EXPORTER_OTLP_HEADERS"},
		{map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": missing}, "OTEL_EXPORTER_OTLP_CERTIFICATE"},
		{map[string]string{"OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE": garbage}, "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE"},
		{map[string]string{"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": garbage}, "OTEL_EXPORTER_OTLP_CLIENT_KEY"},
		{map[string]string{"OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE": missing, "OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY": garbage}, "OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE"},
	} {
		_, err := replay.NewOTLPSinkWith("http://127.0.0.1:4318", nil, tc.env, nil)
		if err == nil || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("env %v: err %v, want one naming %s", tc.env, err, tc.name)
		}
	}
	// NewOTLPSink itself reads the process environment.
	t.Setenv("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "zstd")
	if _, err := replay.NewOTLPSink(context.Background(), "http://127.0.0.1:4318", nil); err == nil || !strings.Contains(err.Error(), "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION") {
		t.Errorf("err %v, want one naming OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", err)
	}
	if _, err := replay.NewOTLPSink(context.Background(), "ftp://127.0.0.1:4318", nil); err == nil {
		t.Error("an ftp endpoint was taken")
	}
}

// TestOTLPSinkTLSFromTheEnvironment: the CA and client certificate files
// the environment names make an mTLS receiver trust the sink and back.
func TestOTLPSinkTLSFromTheEnvironment(t *testing.T) {
	defer goleak.VerifyNone(t)
	certPEM, keyPEM := selfSigned(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	recv := &otlpReceiver{}
	srv := httptest.NewUnstartedServer(recv)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()
	env := map[string]string{"OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE": certFile,
		"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": certFile, "OTEL_EXPORTER_OTLP_CLIENT_KEY": keyFile}
	for _, tc := range []struct {
		env    map[string]string
		wantOK bool
	}{{env, true}, {nil, false}} {
		ctx, cancel := context.WithCancel(context.Background())
		sink, err := replay.NewOTLPSinkWith(srv.URL, slog.New(slog.DiscardHandler), tc.env,
			func(context.Context, time.Duration) error { cancel(); return ctx.Err() })
		if err != nil {
			t.Fatal(err)
		}
		ev := replay.JSONEvent{Seq: 1, Type: "AgentStarted", Data: json.RawMessage(`{}`)}
		if err := sink.Write(replay.ExportRecord{Event: &ev}); err != nil {
			t.Fatal(err)
		}
		if err := sink.Commit(ctx); (err == nil) != tc.wantOK {
			t.Errorf("with env %v: commit err %v", tc.env, err)
		}
		cancel()
		if err := sink.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if recs, _ := recv.records(); len(recs) != 1 {
		t.Errorf("receiver holds %d records, want 1", len(recs))
	}
}

// selfSigned is a certificate for 127.0.0.1 that is its own CA, usable by
// server and client alike.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ledgerlet test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}
