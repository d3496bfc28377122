package replay_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"image/png"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ledgerlet/ledgerlet/replay"
)

// TestTimelinePageLoadsOfflineInABrowser opens the page of a known log in a
// real headless Chromium: it loads with no console error and no network
// request, holds every lane, span and marker of the timeline, shows a
// manifest diff on click, and its screenshot is a picture, not a blank.
// LEDGERLET_SCREENSHOT_DIR keeps the page and the screenshot for a person
// to look at.
func TestTimelinePageLoadsOfflineInABrowser(t *testing.T) {
	defer goleak.VerifyNone(t)
	n := busyNode(t)
	tl, err := replay.BuildTimeline(context.Background(), n.Log, replay.TimelineOptions{Buckets: 1060})
	if err != nil {
		t.Fatal(err)
	}
	n.Close()
	dir := os.Getenv("LEDGERLET_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	page := filepath.Join(dir, "timeline.html")
	var html bytes.Buffer
	if err := tl.WriteHTML(&html, "node1 — ledgerlet timeline"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(page, html.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	wantLanes, wantSpans, wantMarkers, wantDiffs := len(tl.Lanes), 0, 0, 0
	for _, l := range tl.Lanes {
		wantSpans += len(l.Spans)
		wantMarkers += len(l.Markers)
		for _, m := range l.Markers {
			if m.Diff != "" {
				wantDiffs++
			}
		}
	}

	b := startBrowser(t, 1400, 900)
	var target struct {
		TargetID string `json:"targetId"`
	}
	b.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	b.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	s := attached.SessionID
	for _, domain := range []string{"Page", "Runtime", "Log", "Network"} {
		b.call(s, domain+".enable", nil, nil)
	}
	b.call(s, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 1400, "height": 900, "deviceScaleFactor": 1, "mobile": false}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b.call(s, "Page.navigate", map[string]any{"url": (&url.URL{Scheme: "file", Path: page}).String()}, nil)
	b.waitEvent(ctx, s, "Page.loadEventFired")

	var counts struct {
		Lanes, Spans, Markers, Diffs, Pods, Containers, Nodes int
		Attr                                                  string
	}
	b.eval(s, `({
		Lanes: document.querySelectorAll('g.lane').length,
		Spans: document.querySelectorAll('rect.span').length,
		Markers: document.querySelectorAll('g.marker').length,
		Diffs: document.querySelectorAll('g.marker[data-diff]').length,
		Pods: document.querySelectorAll('g.lane-pod').length,
		Containers: document.querySelectorAll('g.lane-container').length,
		Nodes: document.querySelectorAll('g.lane-node').length,
		Attr: document.getElementById('timeline').getAttribute('data-lanes'),
	})`, &counts)
	if counts.Lanes != wantLanes || counts.Spans != wantSpans || counts.Markers != wantMarkers || counts.Diffs != wantDiffs {
		t.Errorf("DOM holds %d lanes, %d spans, %d markers (%d with a diff); the timeline has %d, %d, %d (%d)",
			counts.Lanes, counts.Spans, counts.Markers, counts.Diffs, wantLanes, wantSpans, wantMarkers, wantDiffs)
	}
	if counts.Nodes != 3 || counts.Pods != 4 || counts.Containers != 5 {
		t.Errorf("lanes: %d node, %d pod, %d container; want 3, 4, 5", counts.Nodes, counts.Pods, counts.Containers)
	}
	var byKind map[string]int
	b.eval(s, `(() => { const m = {}; document.querySelectorAll('g.marker').forEach(e => {
		const k = [...e.classList].find(c => c.startsWith('m-')); m[k] = (m[k] || 0) + 1; }); return m; })()`, &byKind)
	for _, k := range []string{"m-manifest", "m-rejected", "m-removed", "m-agent-start", "m-agent-crash", "m-agent-stop", "m-runtime-down", "m-apiserver-down", "m-mirror"} {
		if byKind[k] == 0 {
			t.Errorf("no %s marker in the DOM (%v)", k, byKind)
		}
	}

	// A click on the edit of the apiserver shows its diff.
	var details string
	b.eval(s, `(() => { const lane = document.querySelector('g.lane[data-lane="pod/kube-system/kube-apiserver-node1"]');
		const ms = lane.querySelectorAll('g.marker[data-diff]'); ms[1].dispatchEvent(new MouseEvent('click', {bubbles: true}));
		return document.getElementById('details').textContent; })()`, &details)
	if !strings.Contains(details, "+     - --enable-admission-plugins=NodeRestrictionn") || !strings.Contains(details, "manifest changed") {
		t.Errorf("clicking the edit shows:\n%s", details)
	}

	var shot struct {
		Data string `json:"data"`
	}
	b.call(s, "Page.captureScreenshot", map[string]any{"format": "png"}, &shot)
	raw, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "timeline.png"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	colours := map[uint32]int{}
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y += 2 {
		for x := bounds.Min.X; x < bounds.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[(r>>8)<<16|(g>>8)<<8|bl>>8]++
		}
	}
	if bounds.Dx() != 1400 || bounds.Dy() != 900 {
		t.Errorf("screenshot is %dx%d, want 1400x900", bounds.Dx(), bounds.Dy())
	}
	// The span colours alone are eight; text antialiasing adds many more.
	if len(colours) < 30 {
		t.Errorf("screenshot has %d distinct colours: blank or nearly", len(colours))
	}
	for _, want := range []uint32{0x2e9d4a, 0xe0452b, 0xf0a830} { // running, back-off, waiting
		if colours[want] == 0 {
			t.Errorf("screenshot has no pixel of #%06x", want)
		}
	}

	for _, e := range b.eventsOf("Runtime.exceptionThrown") {
		t.Errorf("page threw: %s", e.Params)
	}
	for _, e := range b.eventsOf("Runtime.consoleAPICalled") {
		var p struct{ Type string }
		_ = json.Unmarshal(e.Params, &p)
		if p.Type == "error" || p.Type == "warning" {
			t.Errorf("console %s: %s", p.Type, e.Params)
		}
	}
	for _, e := range b.eventsOf("Log.entryAdded") {
		var p struct {
			Entry struct{ Level, Text, URL string }
		}
		_ = json.Unmarshal(e.Params, &p)
		if p.Entry.Level == "error" || p.Entry.Level == "warning" {
			t.Errorf("console %s: %s %s", p.Entry.Level, p.Entry.Text, p.Entry.URL)
		}
	}
	requests := 0
	for _, e := range b.eventsOf("Network.requestWillBeSent") {
		var p struct{ Request struct{ URL string } }
		_ = json.Unmarshal(e.Params, &p)
		requests++
		if !strings.HasPrefix(p.Request.URL, "file://") {
			t.Errorf("the page made a network request: %s", p.Request.URL)
		}
	}
	if requests == 0 {
		t.Error("saw no request at all, not even the page's own: is the Network domain watched?")
	}
	b.close()
}
