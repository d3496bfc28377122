package replay

import (
	"fmt"
	"html/template"
	"io"
	"strconv"
	"strings"
	"time"
)

// The page is one file a person can open anywhere, offline: no script,
// style or font is fetched (the Content-Security-Policy forbids every
// request), everything is inline SVG and CSS, and html/template escapes
// every value taken from the log (pod names, reasons, manifests).

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
	// Spans is the lane's rects, written here rather than by a template
	// range (a month of flapping pods is 100k rects; the template's
	// per-field escaping took half a second), every text from the log
	// escaped with template.HTMLEscapeString.
	Spans   template.HTML
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
	return timelineTemplate.Execute(w, page)
}

// spansHTML writes a lane's span rects. The class names are the span
// states (this package's constants, checked here); every other text is
// escaped.
func spansHTML(spans []Span, h int, x func(time.Time) float64) template.HTML {
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
		b.WriteString(template.HTMLEscapeString(s.State + " " + s.Start.UTC().Format(time.RFC3339) + " → " + s.End.UTC().Format(time.RFC3339) +
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
	return template.HTML(b.String()) // #nosec: built above, every log text escaped
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

var timelineTemplate = template.Must(template.New("timeline").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{{.Title}}</title>
<style>
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
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<div class="meta">{{.Since}} → {{.Until}} ({{.Window}}) · events #{{.FromSeq}}–#{{.ToSeq}} · {{.NLanes}} lanes · times in UTC · hover for details, click a marker or span to pin them below</div>
<div class="legend">{{range .States}}<span><svg width="18" height="10"><rect class="s-{{.Class}}" width="18" height="10" rx="2"/></svg>{{.Label}}</span>{{end}}</div>
<div class="legend">{{range .Marks}}<span><svg width="14" height="14" class="m-{{.Class}}"><g transform="translate(7,7)"><path d="{{.Path}}"/></g></svg>{{.Label}}</span>{{end}}</div>
<div id="chart">
<svg xmlns="http://www.w3.org/2000/svg" id="timeline" width="{{.SVGWidth}}" height="{{.Height}}" data-lanes="{{.NLanes}}" data-markers="{{.NMarkers}}">
{{range .GroupStripes}}<rect class="group" x="0" y="{{.Y}}" width="100%" height="{{.H}}"/>{{end}}
<g transform="translate({{.LabelW}},0)">
{{range .Ticks}}<line class="tick" x1="{{.X}}" x2="{{.X}}" y1="16" y2="{{$.Height}}"/><text class="ticklabel" x="{{.X}}" y="12" text-anchor="middle">{{.Label}}</text>
{{end}}</g>
{{range .Lanes}}<g class="lane lane-{{.Kind}}" id="{{.DOMID}}" data-lane="{{.Name}}" transform="translate(0,{{.Y}})">
<text class="label" x="{{.LabelX}}" y="{{.TextY}}">{{.Label}}</text>
<g transform="translate({{$.LabelW}},0)">
<rect class="bg" x="0" y="0" width="{{$.Width}}" height="{{.H}}"/>
{{.Spans}}{{range .Markers}}<g class="marker m-{{.Kind}}" transform="translate({{.X}},{{.Y}})" data-count="{{.Count}}"{{if .DiffID}} data-diff="{{.DiffID}}"{{end}}><title>{{.Title}}</title><path d="{{.Path}}"/>{{if .CountTxt}}<text class="count" x="5" y="-2">{{.CountTxt}}</text>{{end}}</g>
{{end}}</g>
</g>
{{end}}</svg>
</div>
<div id="details">Click a marker (a manifest change shows its diff) or a span.</div>
<div class="diffs">{{range .Diffs}}<pre id="{{.ID}}" data-title="{{.Title}}">{{.Text}}</pre>{{end}}</div>
<script>
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
`))
