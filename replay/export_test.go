package replay_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"go.uber.org/goleak"
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
	requests []*collogs.ExportLogsServiceRequest
	fail     int // answer the next n requests 503
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
	if o.fail > 0 {
		o.fail--
		o.mu.Unlock()
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	o.requests = append(o.requests, &req)
	o.mu.Unlock()
	out, _ := proto.Marshal(&collogs.ExportLogsServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
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
