package sources

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

// manifestServer serves a settable body with an ETag, or a settable failure.
type manifestServer struct {
	mu       sync.Mutex
	body     string
	etag     string
	status   int
	delay    time.Duration
	requests int
	notMod   int
	header   http.Header
	srv      *httptest.Server
}

func newManifestServer(t *testing.T) *manifestServer {
	m := &manifestServer{status: http.StatusOK}
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *manifestServer) serve(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	m.requests++
	m.header = r.Header.Clone()
	body, etag, status, delay := m.body, m.etag, m.status, m.delay
	if status == http.StatusOK && etag != "" && r.Header.Get("If-None-Match") == etag {
		m.notMod++
		m.mu.Unlock()
		w.WriteHeader(http.StatusNotModified)
		return
	}
	m.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if etag != "" {
		w.Header().Set("ETag", etag)
	}
	w.WriteHeader(status)
	w.Write([]byte(body))
}

func (m *manifestServer) set(f func(m *manifestServer)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(m)
}

// newHTTP builds a source whose polls the test drives by hand.
func newHTTP(t *testing.T, m *manifestServer, known []Known) (*HTTPSource, *recorder) {
	t.Helper()
	rec := newRecorder()
	h, err := ParseHeaderFlags([]string{"Authorization:Bearer t0ken", "X-A:1,X-B:2"})
	if err != nil {
		t.Fatal(err)
	}
	src, err := NewHTTPSource(HTTPConfig{URL: m.srv.URL + "/pods", Header: h, NodeName: "node1", Recorder: rec,
		Known: known, Timeout: 200 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	src.client = &http.Client{Timeout: src.cfg.Timeout, Transport: m.srv.Client().Transport}
	return src, rec
}

func podList(pods ...string) string {
	var items []string
	for _, p := range pods {
		name, image, _ := strings.Cut(p, "=")
		items = append(items, `{"metadata":{"name":"`+name+`"},"spec":{"containers":[{"name":"c","image":"`+image+`"}]}}`)
	}
	return `{"apiVersion":"v1","kind":"PodList","items":[` + strings.Join(items, ",") + `]}`
}

func TestHTTPFirstFetchAddsAndSyncs(t *testing.T) {
	m := newManifestServer(t)
	m.set(func(m *manifestServer) { m.body = podList("a=busybox:1.36", "b=busybox:1.36") })
	src, rec := newHTTP(t, m, nil)
	src.poll(context.Background())
	got := summary(rec.events())
	want := []string{"ManifestAdded default/a-node1 pods", "ManifestAdded default/b-node1 pods", "SourceSynced"}
	if !slices.Equal(got, want) {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	added := rec.events()[0].Data.(*eventpb.ManifestAdded)
	if added.Path != src.cfg.URL || added.Source != "http" || len(rec.events()[0].Blobs) != 1 {
		t.Errorf("ManifestAdded = %+v", added)
	}
	hdr := m.header
	if hdr.Get("Authorization") != "Bearer t0ken" || hdr.Get("X-A") != "1" || hdr.Get("X-B") != "2" {
		t.Errorf("headers not sent: %v", hdr)
	}
}

func TestHTTPETagAndIdenticalBodyAppendNothing(t *testing.T) {
	m := newManifestServer(t)
	m.set(func(m *manifestServer) { m.body, m.etag = podList("a=busybox:1.36"), `"v1"` })
	src, rec := newHTTP(t, m, nil)
	ctx := context.Background()
	src.poll(ctx)
	src.poll(ctx)
	if m.notMod != 1 {
		t.Errorf("If-None-Match not used: %d 304s", m.notMod)
	}
	// Same body under a new ETag: fetched, compared, nothing appended.
	m.set(func(m *manifestServer) { m.etag = `"v2"` })
	src.poll(ctx)
	// No ETag at all: same.
	m.set(func(m *manifestServer) { m.etag = "" })
	src.poll(ctx)
	src.poll(ctx)
	if n := rec.calls(); n != 1 {
		t.Errorf("%d appends, want 1: %v", n, summary(rec.events()))
	}
	m.set(func(m *manifestServer) { m.body = podList("a=busybox:1.37") })
	src.poll(ctx)
	if got := summary(rec.events()); got[len(got)-1] != "ManifestChanged default/a-node1 pods" {
		t.Errorf("change not seen: %v", got)
	}
}

func TestHTTPUnavailableOnceThenRecovered(t *testing.T) {
	m := newManifestServer(t)
	m.set(func(m *manifestServer) { m.body = podList("a=busybox:1.36") })
	src, rec := newHTTP(t, m, nil)
	ctx := context.Background()
	src.poll(ctx)
	failures := []func(m *manifestServer){
		func(m *manifestServer) { m.status = http.StatusInternalServerError },
		func(m *manifestServer) { m.status = http.StatusNotFound },
		func(m *manifestServer) { m.status, m.delay = http.StatusOK, time.Second }, // timeout
		func(m *manifestServer) { m.delay, m.body = 0, "{not json" },
		func(m *manifestServer) { m.body = "" },
	}
	for _, f := range failures {
		m.set(f)
		src.poll(ctx)
		src.poll(ctx)
	}
	got := summary(rec.events())
	want := []string{"ManifestAdded default/a-node1 pods", "SourceSynced", "SourceUnavailable"}
	if !slices.Equal(got, want) {
		t.Fatalf("events:\n%s\nwant (one SourceUnavailable, no removal):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if r := rec.events()[2].Data.(*eventpb.SourceUnavailable).Reason; !strings.Contains(r, "500") {
		t.Errorf("reason %q", r)
	}
	// Recovery with the same pods: SourceAvailable only.
	m.set(func(m *manifestServer) { m.body = podList("a=busybox:1.36") })
	src.poll(ctx)
	src.poll(ctx)
	got = summary(rec.events())[3:]
	if !slices.Equal(got, []string{"SourceAvailable"}) {
		t.Errorf("after recovery: %v", got)
	}
	// A second outage is recorded again.
	m.set(func(m *manifestServer) { m.status = http.StatusBadGateway })
	src.poll(ctx)
	if got := summary(rec.events()); got[len(got)-1] != "SourceUnavailable" {
		t.Errorf("second outage not recorded: %v", got)
	}
}

func TestHTTPFirstFetchFailingKeepsKnownPods(t *testing.T) {
	m := newManifestServer(t)
	m.set(func(m *manifestServer) { m.body = podList("a=busybox:1.36") })
	src, rec := newHTTP(t, m, nil)
	src.poll(context.Background())
	known := knownFrom(rec.events())

	m.set(func(m *manifestServer) { m.status = http.StatusServiceUnavailable })
	src2, rec2 := newHTTP(t, m, known)
	src2.poll(context.Background())
	m.set(func(m *manifestServer) { m.status = http.StatusOK })
	src2.poll(context.Background())
	got := summary(rec2.events())
	if want := []string{"SourceUnavailable", "SourceAvailable", "SourceSynced"}; !slices.Equal(got, want) {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestHTTPListChanges(t *testing.T) {
	m := newManifestServer(t)
	m.set(func(m *manifestServer) { m.body = podList("a=busybox:1.36", "b=busybox:1.36") })
	src, rec := newHTTP(t, m, nil)
	ctx := context.Background()
	src.poll(ctx)
	n := len(rec.events())

	// b goes, c comes, a is reordered but unchanged.
	m.set(func(m *manifestServer) { m.body = podList("c=busybox:1.36", "a=busybox:1.36") })
	src.poll(ctx)
	got := summary(rec.events())[n:]
	want := []string{"ManifestRemoved default/b-node1 pods", "ManifestAdded default/c-node1 pods"}
	if !slices.Equal(got, want) {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	n = len(rec.events())

	// An invalid a keeps its last good version; a duplicate c is refused.
	m.set(func(m *manifestServer) {
		m.body = `{"items":[{"metadata":{"name":"a"},"spec":{"containers":[{"name":"C","image":"i"}]}},` +
			`{"metadata":{"name":"c"},"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}},` +
			`{"metadata":{"name":"c"},"spec":{"containers":[{"name":"c","image":"busybox:1.37"}]}}]}`
	})
	src.poll(ctx)
	src.poll(ctx)
	got = summary(rec.events())[n:]
	want = []string{"ManifestRejected default/a-node1 pods", "ManifestRejected default/c-node1 pods"}
	if !slices.Equal(got, want) {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	n = len(rec.events())

	// An item too broken to name its pod: nothing is removed.
	m.set(func(m *manifestServer) { m.body = `{"items":[{"spec":{}}]}` })
	src.poll(ctx)
	if got := summary(rec.events())[n:]; countPrefix(got, "ManifestRemoved") != 0 {
		t.Errorf("removed pods on an unnamed bad item: %v", got)
	}
	n = len(rec.events())

	// An explicitly empty list removes everything.
	m.set(func(m *manifestServer) { m.body = `{"kind":"PodList","items":[]}` })
	src.poll(ctx)
	got = summary(rec.events())[n:]
	want = []string{"ManifestRemoved default/a-node1 pods", "ManifestRemoved default/c-node1 pods"}
	if !slices.Equal(got, want) {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestHTTPRestartWithKnownIsSilent(t *testing.T) {
	m := newManifestServer(t)
	m.set(func(m *manifestServer) {
		m.body = `{"items":[{"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"i"}]}},` +
			`{"metadata":{"name":"bad"},"spec":{"containers":[]}}]}`
	})
	src, rec := newHTTP(t, m, nil)
	src.poll(context.Background())
	src2, rec2 := newHTTP(t, m, knownFrom(rec.events()))
	src2.poll(context.Background())
	if got := summary(rec2.events()); !slices.Equal(got, []string{"SourceSynced"}) {
		t.Errorf("restart appended %v", got)
	}
}

func TestHTTPRunStopsCleanly(t *testing.T) {
	m := newManifestServer(t)
	m.set(func(m *manifestServer) { m.body = podList("a=busybox:1.36") })
	rec := newRecorder()
	src, err := NewHTTPSource(HTTPConfig{URL: m.srv.URL + "/pods", NodeName: "node1", Recorder: rec, CheckFrequency: 10 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	rec.waitFor(t, "synced", hasLine("SourceSynced"))
	m.set(func(m *manifestServer) { m.body = podList("a=busybox:1.37") })
	rec.waitFor(t, "changed", hasLine("ManifestChanged default/a-node1 pods"))
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

func TestHTTPConfigErrors(t *testing.T) {
	rec := newRecorder()
	for _, cfg := range []HTTPConfig{
		{URL: "ftp://x/pods", NodeName: "n", Recorder: rec},
		{URL: "/pods", NodeName: "n", Recorder: rec},
		{URL: "http://x/pods", Recorder: rec},
		{URL: "http://x/pods", NodeName: "n"},
	} {
		if _, err := NewHTTPSource(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	if _, err := ParseHeaderFlags([]string{"novalue"}); err == nil {
		t.Errorf("header without colon accepted")
	}
	h, err := ParseHeaderFlags([]string{"a:hello,b:again", "a:twice", "X-Url: http://x:1"})
	if err != nil || !slices.Equal(h.Values("A"), []string{"hello", "twice"}) || h.Get("X-Url") != "http://x:1" {
		t.Errorf("ParseHeaderFlags = %v, %v", h, err)
	}
}
