package replay

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"strconv"
	"strings"
	"time"
)

// The page is one file a person can open anywhere, offline: no script,
// style or font is fetched (the Content-Security-Policy forbids every
// request), everything is inline SVG and CSS, and every value taken from
// the log (pod names, reasons, manifests) is escaped as it is written.
//
// The page is written by code, not by html/template: text/template looks
// methods up by name at run time, which makes the linker keep every
// exported method of every type in the binary, a fifth of the agent's
// binary and of its resident memory (issue 11). The values written here
// sit only in element text and double-quoted attributes, where escaping
// <, >, &, ' and " is all that is needed.

const (
	labelWidth = 300
	axisHeight = 28
	laneGap    = 3
)

func laneHeight(kind string) int {
	switch kind {
	case LanePod:
		return 20
	case LaneNode:
		return 16
	}
	return 13
}

type htmlPage struct {
	Title        string
	Since, Until string
	Window       string
	FromSeq      uint64
	ToSeq        uint64
	Width        int // chart area
	SVGWidth     int
	Height       int
	LabelW       int
	Lanes        []htmlLane
	Ticks        []htmlTick
	Diffs        []htmlDiff
	States       []legendItem
	Marks        []legendItem
	NLanes       int
	NMarkers     int
	NEvents      uint64
	GroupStripes []htmlStripe
}

type htmlLane struct {
	DOMID, Name, Kind, Label string
	Y, H, TextY, LabelX      int
	// Spans is the lane's rects, written ahead (a month of flapping pods
	// is 100k rects), every text from the log escaped.
	Spans   string
	Markers []htmlMarker
}

type htmlMarker struct {
	X        string
	Y        float64
	Kind     string
	Title    string
	Count    int
	DiffID   string
	Path     string
	CountTxt string
}

type htmlTick struct {
	X     float64
	Label string
}

type htmlDiff struct {
	ID, Title, Text string
}

type htmlStripe struct {
	Y, H int
}

type legendItem struct {
	Class, Label, Path string
}

// markerPath is each marker kind's shape, centred on (0,0).
var markerPath = map[string]string{
	MarkManifest:     "M0,-5 L4,0 L0,5 L-4,0 Z",
	MarkRejected:     "M-4,-4 L4,4 M4,-4 L-4,4",
	MarkRemoved:      "M-4,-4 L4,-4 L4,4 L-4,4 Z",
	MarkAgentStart:   "M-4,5 L0,-5 L4,5 Z",
	MarkAgentCrash:   "M-5,6 L0,-6 L5,6 Z",
	MarkAgentStop:    "M-4,-5 L4,-5 L0,5 Z",
	MarkRuntimeDown:  "M-4,-5 L4,-5 L0,5 Z",
	MarkApiserverOff: "M-4,-5 L4,-5 L0,5 Z",
	MarkMirror:       "M-3,0 A3,3 0 1,0 3,0 A3,3 0 1,0 -3,0",
}

var stateLegend = []legendItem{
	{SpanRunning, "running", ""}, {SpanCreating, "creating / restart due", ""}, {SpanWaiting, "waiting (failed step, retry)", ""},
	{SpanBackoff, "crash-loop back-off", ""}, {SpanExited, "exited", ""}, {SpanTerminating, "terminating", ""},
	{SpanUp, "agent / runtime / apiserver up", ""}, {SpanDown, "down / unreachable", ""},
}

var markLegend = []legendItem{
	{MarkManifest, "manifest change (click: diff)", ""}, {MarkRejected, "rejected edit", ""}, {MarkRemoved, "manifest removed", ""},
	{MarkAgentStart, "agent start", ""}, {MarkAgentCrash, "agent restart after a crash", ""}, {MarkAgentStop, "agent stop", ""},
	{MarkRuntimeDown, "runtime / apiserver lost", ""}, {MarkMirror, "mirror action", ""},
}

// WriteHTML renders the timeline as one self-contained HTML page.
func (t *Timeline) WriteHTML(w io.Writer, title string) error {
	width := t.Buckets
	if width <= 0 {
		width = 1200
	}
	page := htmlPage{
		Title: title, Since: t.Since.UTC().Format(time.RFC3339), Until: t.Until.UTC().Format(time.RFC3339),
		Window: roundDuration(t.Until.Sub(t.Since)), FromSeq: t.FromSeq, ToSeq: t.ToSeq,
		Width: width, LabelW: labelWidth, SVGWidth: labelWidth + width + 40, NLanes: len(t.Lanes),
	}
	if t.ToSeq >= t.FromSeq && t.FromSeq > 0 {
		page.NEvents = t.ToSeq - t.FromSeq + 1
	}
	page.States = append(page.States, stateLegend...)
	for _, l := range markLegend {
		l.Path = markerPath[l.Class]
		page.Marks = append(page.Marks, l)
	}
	window := t.Until.Sub(t.Since)
	x := func(at time.Time) float64 {
		if window <= 0 {
			return 0
		}
		v := float64(at.Sub(t.Since)) / float64(window) * float64(width)
		return min(max(v, 0), float64(width))
	}
	page.Ticks = ticks(t.Since, t.Until, x)
	y := axisHeight
	for i, l := range t.Lanes {
		h := laneHeight(l.Kind)
		hl := htmlLane{DOMID: fmt.Sprintf("lane-%d", i), Name: l.ID, Kind: l.Kind, Label: l.Label, Y: y, H: h,
			TextY: h/2 + 4, LabelX: 8}
		if l.Kind == LaneContainer {
			hl.LabelX = 28
			if l.Init {
				hl.Label = l.Label + " (init)"
			}
		}
		hl.Spans = spansHTML(l.Spans, h, x)
		for _, m := range l.Markers {
			hm := htmlMarker{X: strconv.FormatFloat(x(m.Time), 'f', 2, 64), Y: float64(h) / 2, Kind: m.Kind, Count: max(m.Count, 1), Path: markerPath[m.Kind],
				Title: fmt.Sprintf("#%d %s: %s", m.Seq, m.Time.UTC().Format(time.RFC3339), m.Summary)}
			if m.Count > 1 {
				hm.Title = fmt.Sprintf("%d× %s from %s to %s; newest: %s", m.Count, m.Kind, m.First.UTC().Format(time.RFC3339),
					m.Time.UTC().Format(time.RFC3339), hm.Title)
				hm.CountTxt = fmt.Sprintf("%d", m.Count)
			}
			if m.Diff != "" {
				hm.DiffID = fmt.Sprintf("diff-%d", len(page.Diffs))
				page.Diffs = append(page.Diffs, htmlDiff{ID: hm.DiffID, Title: l.Label + " — " + hm.Title, Text: m.Diff})
			}
			hl.Markers = append(hl.Markers, hm)
			page.NMarkers++
		}
		page.Lanes = append(page.Lanes, hl)
		y += h + laneGap
	}
	// Shade every other pod's group of lanes, so a container lane reads with its pod.
	podIndex := 0
	for i, l := range page.Lanes {
		if l.Kind != LanePod {
			continue
		}
		end := l.Y + l.H
		for j := i + 1; j < len(page.Lanes) && page.Lanes[j].Kind == LaneContainer; j++ {
			end = page.Lanes[j].Y + page.Lanes[j].H
		}
		if podIndex%2 == 0 {
			page.GroupStripes = append(page.GroupStripes, htmlStripe{Y: l.Y - 1, H: end - l.Y + 2})
		}
		podIndex++
	}
	page.Height = y + 8
	return page.write(w)
}

// spansHTML writes a lane's span rects. The class names are the span
// states (this package's constants, checked here); every other text is
// escaped.
func spansHTML(spans []Span, h int, x func(time.Time) float64) string {
	var b strings.Builder
	b.Grow(len(spans) * 200)
	height := strconv.Itoa(h)
	num := func(v float64) { b.WriteString(strconv.FormatFloat(v, 'f', 2, 64)) }
	for _, s := range spans {
		if _, ok := spanSeverity[s.State]; !ok {
			continue
		}
		x0, x1 := x(s.Start), x(s.End)
		b.WriteString(`<rect class="span s-`)
		b.WriteString(s.State)
		b.WriteString(`" x="`)
		num(x0)
		b.WriteString(`" y="0" width="`)
		num(max(x1-x0, 1))
		b.WriteString(`" height="`)
		b.WriteString(height)
		b.WriteString(`"><title>`)
		b.WriteString(html.EscapeString(s.State + " " + s.Start.UTC().Format(time.RFC3339) + " → " + s.End.UTC().Format(time.RFC3339) +
			" (" + roundDuration(s.End.Sub(s.Start)) + "): " + s.Detail))
		b.WriteString("</title></rect>")
		if _, ok := spanSeverity[s.Worst]; ok && s.Merged > 1 && s.Worst != s.State {
			b.WriteString(`<rect class="stripe s-`)
			b.WriteString(s.Worst)
			b.WriteString(`" x="`)
			num(x0)
			b.WriteString(`" y="0" width="`)
			num(max(x1-x0, 1))
			b.WriteString(`" height="3"/>`)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// ticks places time-axis labels at a round step giving at most about 12.
func ticks(since, until time.Time, x func(time.Time) float64) []htmlTick {
	window := until.Sub(since)
	steps := []time.Duration{time.Second, 5 * time.Second, 15 * time.Second, time.Minute, 5 * time.Minute, 15 * time.Minute,
		30 * time.Minute, time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 48 * time.Hour, 7 * 24 * time.Hour}
	step := steps[len(steps)-1]
	for _, s := range steps {
		if window/s <= 12 {
			step = s
			break
		}
	}
	var out []htmlTick
	for at := since.UTC().Truncate(step); !at.After(until); at = at.Add(step) {
		if at.Before(since) {
			continue
		}
		layout := "15:04:05"
		switch {
		case step >= 24*time.Hour:
			layout = "Jan 02"
		case step >= time.Hour || window > 24*time.Hour:
			layout = "Jan 02 15:04"
		case step >= time.Minute:
			layout = "15:04"
		}
		out = append(out, htmlTick{X: x(at), Label: at.Format(layout)})
	}
	return out
}

func roundDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		days, hours := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
		if hours == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%dh", days, hours)
	case d >= time.Hour:
		return d.Round(time.Minute).String()
	case d >= time.Second:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Millisecond).String()
}

// write writes the page: the numbers as fmt prints them, every string
// escaped unless it is one of this package's constants (kinds, classes,
// marker paths, DOM ids).
func (p *htmlPage) write(w io.Writer) error {
	b := bufio.NewWriter(w)
	str := func(ss ...string) {
		for _, s := range ss {
			b.WriteString(s)
		}
	}
	esc := func(s string) { b.WriteString(html.EscapeString(s)) }
	num := func(v any) { fmt.Fprint(b, v) }

	str(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>`)
	esc(p.Title)
	str("</title>\n", pageStyle, "\n</head>\n<body>\n<h1>")
	esc(p.Title)
	str(`</h1>
<div class="meta">`)
	esc(p.Since)
	str(" → ")
	esc(p.Until)
	str(" (")
	esc(p.Window)
	str(") · events #")
	num(p.FromSeq)
	str("–#")
	num(p.ToSeq)
	str(" · ")
	num(p.NLanes)
	str(` lanes · times in UTC · hover for details, click a marker or span to pin them below</div>
<div class="legend">`)
	for _, l := range p.States {
		str(`<span><svg width="18" height="10"><rect class="s-`, l.Class, `" width="18" height="10" rx="2"/></svg>`)
		esc(l.Label)
		str("</span>")
	}
	str(`</div>
<div class="legend">`)
	for _, l := range p.Marks {
		str(`<span><svg width="14" height="14" class="m-`, l.Class, `"><g transform="translate(7,7)"><path d="`, l.Path, `"/></g></svg>`)
		esc(l.Label)
		str("</span>")
	}
	str(`</div>
<div id="chart">
<svg xmlns="http://www.w3.org/2000/svg" id="timeline" width="`)
	num(p.SVGWidth)
	str(`" height="`)
	num(p.Height)
	str(`" data-lanes="`)
	num(p.NLanes)
	str(`" data-markers="`)
	num(p.NMarkers)
	str("\">\n")
	for _, g := range p.GroupStripes {
		str(`<rect class="group" x="0" y="`)
		num(g.Y)
		str(`" width="100%" height="`)
		num(g.H)
		str(`"/>`)
	}
	str("\n<g transform=\"translate(")
	num(p.LabelW)
	str(",0)\">\n")
	for _, t := range p.Ticks {
		str(`<line class="tick" x1="`)
		num(t.X)
		str(`" x2="`)
		num(t.X)
		str(`" y1="16" y2="`)
		num(p.Height)
		str(`"/><text class="ticklabel" x="`)
		num(t.X)
		str(`" y="12" text-anchor="middle">`)
		esc(t.Label)
		str("</text>\n")
	}
	str("</g>\n")
	for _, l := range p.Lanes {
		str(`<g class="lane lane-`, l.Kind, `" id="`, l.DOMID, `" data-lane="`)
		esc(l.Name)
		str(`" transform="translate(0,`)
		num(l.Y)
		str(")\">\n<text class=\"label\" x=\"")
		num(l.LabelX)
		str(`" y="`)
		num(l.TextY)
		str(`">`)
		esc(l.Label)
		str("</text>\n<g transform=\"translate(")
		num(p.LabelW)
		str(",0)\">\n<rect class=\"bg\" x=\"0\" y=\"0\" width=\"")
		num(p.Width)
		str(`" height="`)
		num(l.H)
		str("\"/>\n", l.Spans)
		for _, m := range l.Markers {
			str(`<g class="marker m-`, m.Kind, `" transform="translate(`, m.X, ",")
			num(m.Y)
			str(`)" data-count="`)
			num(m.Count)
			str(`"`)
			if m.DiffID != "" {
				str(` data-diff="`, m.DiffID, `"`)
			}
			str("><title>")
			esc(m.Title)
			str(`</title><path d="`, m.Path, `"/>`)
			if m.CountTxt != "" {
				str(`<text class="count" x="5" y="-2">`, m.CountTxt, "</text>")
			}
			str("</g>\n")
		}
		str("</g>\n</g>\n")
	}
	str(`</svg>
</div>
<div id="details">Click a marker (a manifest change shows its diff) or a span.</div>
<div class="diffs">`)
	for _, d := range p.Diffs {
		str(`<pre id="`, d.ID, `" data-title="`)
		esc(d.Title)
		str(`">`)
		esc(d.Text)
		str("</pre>")
	}
	str("</div>\n", pageScript)
	return b.Flush()
}

const pageStyle = `<style>
body { font: 13px/1.35 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 16px; color: #1d1d1f; background: #fff; }
h1 { font-size: 17px; margin: 0 0 4px; }
.meta { color: #555; margin-bottom: 10px; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; margin: 4px 0; align-items: center; }
.legend span { display: inline-flex; align-items: center; gap: 5px; }
#chart { overflow-x: auto; border-top: 1px solid #ddd; margin-top: 8px; }
svg text { font: 11px system-ui, sans-serif; fill: #222; }
.lane-pod .label { font-weight: 600; }
.lane-node .label { font-style: italic; }
.lane-container .label { fill: #444; }
.bg { fill: #f4f4f6; }
.group { fill: #eef2f8; }
.tick { stroke: #d0d0d6; stroke-width: 1; }
.ticklabel { fill: #555; font-size: 10px; }
.span { cursor: pointer; }
.s-running { fill: #2e9d4a; } .s-creating { fill: #8fc1e3; } .s-waiting { fill: #f0a830; }
.s-backoff { fill: #e0452b; } .s-exited { fill: #9a9a9a; } .s-terminating { fill: #8e6cc0; }
.s-up { fill: #bfe3c8; } .s-down { fill: #505050; }
.marker { cursor: pointer; }
.marker path { stroke-width: 1.2; }
.m-manifest path { fill: #1f5fbf; stroke: #fff; } .m-rejected path { stroke: #b00020; stroke-width: 2.4; fill: none; }
.m-removed path { fill: #111; stroke: #fff; } .m-agent-start path { fill: #1b7f3a; stroke: #fff; }
.m-agent-crash path { fill: #c0001a; stroke: #fff; } .m-agent-stop path { fill: #777; stroke: #fff; }
.m-runtime-down path, .m-apiserver-down path { fill: #ff8c00; stroke: #fff; } .m-mirror path { fill: #0b8a8a; stroke: #fff; }
.count { font-size: 9px; fill: #000; font-weight: 600; }
.legend svg { vertical-align: middle; }
#details { white-space: pre-wrap; font: 12px/1.4 ui-monospace, Menlo, Consolas, monospace; background: #f7f7f9; border: 1px solid #ddd;
  padding: 8px; min-height: 2.5em; max-height: 320px; overflow: auto; margin-top: 8px; }
#details .add { color: #116329; } #details .del { color: #a40e26; }
.diffs { display: none; }
</style>`

const pageScript = `<script>
(function () {
  var details = document.getElementById('details');
  function show(el) {
    var title = el.querySelector('title');
    details.textContent = title ? title.textContent : '';
    var id = el.getAttribute('data-diff');
    var diff = id && document.getElementById(id);
    if (!diff) { return; }
    details.appendChild(document.createTextNode('\n\n'));
    diff.textContent.split('\n').forEach(function (line) {
      var s = document.createElement('span');
      if (line.charAt(0) === '+') { s.className = 'add'; } else if (line.charAt(0) === '-') { s.className = 'del'; }
      s.textContent = line + '\n';
      details.appendChild(s);
    });
  }
  document.getElementById('timeline').addEventListener('click', function (ev) {
    var el = ev.target.closest('.marker') || ev.target.closest('.span');
    if (el) { show(el); }
  });
}());
</script>
</body>
</html>
`
