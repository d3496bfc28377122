package replay

import (
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// spanChar and markChar are the terminal view's alphabet; the legend
// printed under the lanes spells them out.
var spanChar = map[string]byte{
	SpanRunning: '=', SpanCreating: '.', SpanWaiting: '?', SpanBackoff: '~', SpanExited: 'x',
	SpanTerminating: '>', SpanUp: '-', SpanDown: '#',
}

var markChar = map[string]byte{
	MarkAgentCrash: 'C', MarkRejected: 'R', MarkRuntimeDown: 'D', MarkApiserverOff: 'A', MarkRemoved: 'X',
	MarkManifest: 'M', MarkAgentStart: 'S', MarkAgentStop: 's', MarkMirror: 'm',
}

// markPriority: when markers share a column, the most telling one shows.
var markPriority = map[string]int{
	MarkAgentCrash: 9, MarkRejected: 8, MarkRuntimeDown: 7, MarkApiserverOff: 6, MarkRemoved: 5,
	MarkManifest: 4, MarkAgentStart: 3, MarkAgentStop: 2, MarkMirror: 1,
}

const textLabelWidth = 34

// WriteText renders the timeline for a terminal: one line per lane, one
// character per bucket (the state that lasted longest in it, or the most
// telling marker), a time axis above and a legend below.
func (t *Timeline) WriteText(w io.Writer) error {
	cols := t.Buckets
	if cols <= 0 {
		cols = 100
	}
	window := t.Until.Sub(t.Since)
	var b strings.Builder
	fmt.Fprintf(&b, "%s → %s (%s, %s per column) · events #%d–#%d · UTC\n", t.Since.UTC().Format(time.RFC3339),
		t.Until.UTC().Format(time.RFC3339), roundDuration(window), roundDuration(window/time.Duration(cols)), t.FromSeq, t.ToSeq)
	b.WriteString(textAxis(t.Since, t.Until, cols))
	for _, l := range t.Lanes {
		label := l.Label
		switch l.Kind {
		case LaneContainer:
			label = "  " + label
			if l.Init {
				label += " (init)"
			}
		case LaneNode:
			label = "[" + label + "]"
		}
		b.WriteString(padRight(label, textLabelWidth))
		b.WriteString(" |")
		b.Write(laneChars(l, t.Since, window, cols))
		b.WriteString("|\n")
	}
	b.WriteString("\nstates:  = running  . creating/restart due  ? waiting (failed step)  ~ crash-loop back-off  x exited  > terminating  - up  # down\n")
	b.WriteString("markers: M manifest change  R rejected edit  X manifest removed  S agent start  C agent restart after a crash  s agent stop\n")
	b.WriteString("         D runtime lost  A apiserver lost  m mirror action\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func laneChars(l Lane, since time.Time, window time.Duration, cols int) []byte {
	out := []byte(strings.Repeat(" ", cols))
	if window <= 0 {
		return out
	}
	col := func(at time.Time) int {
		c := int(int64(at.Sub(since)) * int64(cols) / int64(window))
		return min(max(c, 0), cols-1)
	}
	colStart := func(c int) time.Time { return since.Add(time.Duration(int64(window) * int64(c) / int64(cols))) }
	// Time per state per column: the longest wins.
	type acc struct {
		state string
		d     time.Duration
	}
	best := make([]acc, cols)
	per := make([]map[string]time.Duration, cols)
	for _, s := range l.Spans {
		for c := col(s.Start); c <= col(s.End) && c < cols; c++ {
			lo, hi := colStart(c), colStart(c+1)
			if s.Start.After(lo) {
				lo = s.Start
			}
			if s.End.Before(hi) {
				hi = s.End
			}
			d := hi.Sub(lo)
			if d <= 0 && !(s.Start.Equal(s.End)) {
				continue
			}
			if per[c] == nil {
				per[c] = map[string]time.Duration{}
			}
			per[c][s.State] += d
			if v := per[c][s.State]; best[c].state == "" || v > best[c].d || (v == best[c].d && spanSeverity[s.State] > spanSeverity[best[c].state]) {
				best[c] = acc{s.State, v}
			}
		}
	}
	for c, a := range best {
		if ch, ok := spanChar[a.state]; ok {
			out[c] = ch
		}
	}
	prio := make([]int, cols)
	for _, m := range l.Markers {
		c := col(m.Time)
		if p := markPriority[m.Kind]; p > prio[c] {
			prio[c] = p
			out[c] = markChar[m.Kind]
		}
	}
	return out
}

// textAxis labels the columns with times at about every 20 columns.
func textAxis(since, until time.Time, cols int) string {
	window := until.Sub(since)
	layout := "15:04:05"
	switch {
	case window > 72*time.Hour:
		layout = "Jan 02"
	case window > 12*time.Hour:
		layout = "02 15:04"
	case window > 10*time.Minute:
		layout = "15:04"
	}
	line := []byte(strings.Repeat(" ", cols+2))
	marks := []byte(strings.Repeat(" ", cols+2))
	step := 20
	for c := 0; c+len(layout) <= cols; c += step {
		at := since.Add(time.Duration(int64(window) * int64(c) / int64(cols))).UTC()
		copy(line[c+1:], at.Format(layout))
		marks[c+1] = '\''
	}
	pad := strings.Repeat(" ", textLabelWidth+1)
	return pad + strings.TrimRight(string(line), " ") + "\n" + pad + strings.TrimRight(string(marks), " ") + "\n"
}

func padRight(s string, n int) string {
	if utf8.RuneCountInString(s) > n {
		r := []rune(s)
		return string(r[:n-1]) + "…"
	}
	return s + strings.Repeat(" ", n-utf8.RuneCountInString(s))
}
