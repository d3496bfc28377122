package main

import (
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"time"
)

// figures are one column of the table; a nil figures or a zero field was not measured.
type figures struct {
	onePod         []time.Duration
	bulk           time.Duration
	removedStopped time.Duration
	removedGone    time.Duration
	restarted      []time.Duration // exit → a new container running
	seen           []time.Duration // exit → recorded by the agent (ledgerlet only)
	idleCPU        float64         // % of one core
	idleRSS        residentSet
	kill10         *killFigures
	kill50         *killFigures
	// 10 at once by ledgerlet and by the floor back to back (ledgerlet's column only).
	pairedAgent, pairedFloor []time.Duration
	// One pod by ledgerlet and by the floor in turn (ledgerlet's column only).
	onePairedAgent, onePairedFloor []time.Duration
}

// results hold one figures per round and column; a failed round's is nil.
type results struct {
	kubelet, ledgerlet, floor []*figures
}

// cell is a number in the row's unit (with the range over rounds when there were several), or a
// text; an empty cell was not measured.
type cell struct {
	v, lo, hi float64
	n         int // rounds behind v
	ok        bool
	text      string
}

func num(v float64) cell { return cell{v: v, ok: true} }

// mibCell is bytes in MiB (as /proc's "kB", which are KiB); 0 is not measured.
func mibCell(b int64) cell {
	if b == 0 {
		return cell{}
	}
	return num(float64(b) / (1 << 20))
}

func (c cell) String(prec int) string {
	if c.text != "" {
		return c.text
	}
	if !c.ok {
		return "—"
	}
	if c.n > 1 {
		return fmt.Sprintf("%.*f (%.*f–%.*f)", prec, c.v, prec, c.lo, prec, c.hi)
	}
	return fmt.Sprintf("%.*f", prec, c.v)
}

// across folds one cell per round into one: the median, with the range; texts that differ are
// listed.
func across(cs []cell) cell {
	var vs []float64
	var texts []string
	seen := map[string]bool{}
	for _, c := range cs {
		switch {
		case c.text != "":
			if !seen[c.text] {
				seen[c.text] = true
				texts = append(texts, c.text)
			}
		case c.ok:
			vs = append(vs, c.v)
		}
	}
	if len(texts) > 0 {
		return cell{text: strings.Join(texts, "; ")}
	}
	if len(vs) == 0 {
		return cell{}
	}
	sort.Float64s(vs)
	return cell{v: vs[len(vs)/2], lo: vs[0], hi: vs[len(vs)-1], n: len(vs), ok: true}
}

type row struct {
	label                     string
	unit                      string
	prec                      int
	kubelet, ledgerlet, floor cell
	// diff, when set, is the ledgerlet − floor column as it is (a figure of its own, not the
	// difference of the two cells).
	diff string
}

func msCell(d time.Duration) cell {
	if d == 0 {
		return cell{}
	}
	return num(float64(d.Microseconds()) / 1000)
}

func sCell(d time.Duration) cell {
	if d == 0 {
		return cell{}
	}
	return num(d.Seconds())
}

// pick applies get to every round of a column; a failed round is left out.
func pick(fs []*figures, get func(*figures) cell) cell {
	var cs []cell
	for _, f := range fs {
		if f != nil {
			cs = append(cs, get(f))
		}
	}
	return across(cs)
}

func rows(r results) []row {
	col := func(get func(*figures) cell) (cell, cell, cell) {
		return pick(r.kubelet, get), pick(r.ledgerlet, get), pick(r.floor, get)
	}
	mk := func(label, unit string, prec int, get func(*figures) cell) row {
		k, l, f := col(get)
		return row{label: label, unit: unit, prec: prec, kubelet: k, ledgerlet: l, floor: f}
	}
	killCell := func(k *killFigures, get func(*killFigures) cell) cell {
		if k == nil {
			return cell{}
		}
		return get(k)
	}
	kept := func(k *killFigures) cell {
		return cell{text: fmt.Sprintf("%d/%d kept, %d new", k.kept, k.pods, k.created)}
	}
	// The sample counts, for the labels: the same in every column that has them.
	exitsN := 0
	for _, fs := range [][]*figures{r.kubelet, r.ledgerlet} {
		for _, f := range fs {
			if f != nil {
				exitsN = max(exitsN, len(f.restarted))
			}
		}
	}
	pairsN, onePairsN := 0, 0
	for _, f := range r.ledgerlet {
		if f != nil {
			pairsN = max(pairsN, len(f.pairedAgent))
			onePairsN = max(onePairsN, len(f.onePairedAgent))
		}
	}
	out := []row{
		mk("one pod manifest → container running (median of 10)", "ms", 0, func(f *figures) cell { return msCell(median(f.onePod)) }),
		mk("— slowest of the 10", "ms", 0, func(f *figures) cell { return msCell(quantile(f.onePod, 1)) }),
		paired(r, fmt.Sprintf("— the same, ledgerlet and the floor in turn, %d each a round (median of all, range)", onePairsN),
			func(f *figures) ([]time.Duration, []time.Duration) { return f.onePairedAgent, f.onePairedFloor }),
		withinPairs(r, func(f *figures) ([]time.Duration, []time.Duration) { return f.onePairedAgent, f.onePairedFloor }),
		mk("10 manifests at once → all running", "ms", 0, func(f *figures) cell { return msCell(f.bulk) }),
		paired(r, fmt.Sprintf("— the same, ledgerlet and the floor in turn, %d pairs a round (median of all, range)", pairsN),
			func(f *figures) ([]time.Duration, []time.Duration) { return f.pairedAgent, f.pairedFloor }),
		withinPairs(r, func(f *figures) ([]time.Duration, []time.Duration) { return f.pairedAgent, f.pairedFloor }),
		mk("removal of 20 pods (grace 1 s) → all containers stopped", "s", 2, func(f *figures) cell { return sCell(f.removedStopped) }),
		mk("removal of 20 pods → no CRI object left (container or sandbox)", "s", 2, func(f *figures) cell { return sCell(f.removedGone) }),
		mk(fmt.Sprintf("container exit → restarted (first restart, median of %d)", exitsN), "s", 2, func(f *figures) cell { return sCell(median(f.restarted)) }),
		mk("container exit → seen by the agent (ledger), p50", "ms", 1, func(f *figures) cell { return msCell(median(f.seen)) }),
		mk(fmt.Sprintf("container exit → seen by the agent (ledger), max of %d", exitsN), "ms", 1, func(f *figures) cell { return msCell(quantile(f.seen, 1)) }),
		mk("idle with 10 pods, CPU (% of a core)", "%", 2, func(f *figures) cell {
			if f.idleRSS.total == 0 {
				return cell{}
			}
			return num(f.idleCPU)
		}),
		mk("idle with 10 pods, RSS", "MiB", 1, func(f *figures) cell { return mibCell(f.idleRSS.total) }),
		mk("— of which anonymous (heap, stacks)", "MiB", 1, func(f *figures) cell { return mibCell(f.idleRSS.anon) }),
		mk("— of which file pages (the binary, mapped from the page cache)", "MiB", 1, func(f *figures) cell { return mibCell(f.idleRSS.file) }),
		mk("kill -9 + restart, 10 pods: containers", "", 0, func(f *figures) cell { return killCell(f.kill10, kept) }),
		mk("kill -9 + restart, 10 pods → agent answers (kubelet /healthz, ledgerlet socket)", "ms", 0, func(f *figures) cell {
			return killCell(f.kill10, func(k *killFigures) cell { return msCell(k.ready) })
		}),
		mk("kill -9 + restart, 10 pods → reconciled (runtime re-listed and adopted)", "ms", 0, func(f *figures) cell {
			return killCell(f.kill10, func(k *killFigures) cell { return msCell(k.reconciled) })
		}),
		mk("kill -9 + restart, 50 pods: containers", "", 0, func(f *figures) cell { return killCell(f.kill50, kept) }),
		mk("kill -9 + restart, 50 pods → reconciled", "ms", 0, func(f *figures) cell {
			return killCell(f.kill50, func(k *killFigures) cell { return msCell(k.reconciled) })
		}),
	}
	return out
}

// paired is a row of ledgerlet and the floor in turn (get picks which): both columns come from
// ledgerlet's rounds, each cell the median of every sample of every round, with their range.
func paired(r results, label string, get func(*figures) (agent, floor []time.Duration)) row {
	var agent, floor []cell
	for _, f := range r.ledgerlet {
		if f == nil {
			continue
		}
		as, fs := get(f)
		for _, d := range as {
			agent = append(agent, msCell(d))
		}
		for _, d := range fs {
			floor = append(floor, msCell(d))
		}
	}
	return row{label: label, unit: "ms", ledgerlet: across(agent), floor: across(floor)}
}

// withinPairs is the row of the difference within each pair of an in-turn measure (get picks
// which): ledgerlet's sample less the floor's next to it, in ms and in % of the floor's, the
// median over every pair of every round with the range. A pair shares its minute, so a drift
// in the machine's load between pairs, which moves both medians of the row above, falls out.
func withinPairs(r results, get func(*figures) (agent, floor []time.Duration)) row {
	var ms, pct []cell
	for _, f := range r.ledgerlet {
		if f == nil {
			continue
		}
		as, fs := get(f)
		for i := range min(len(as), len(fs)) {
			d := float64((as[i] - fs[i]).Microseconds()) / 1000
			ms = append(ms, num(d))
			pct = append(pct, num(100*d/(float64(fs[i].Microseconds())/1000)))
		}
	}
	rw := row{label: "— within each pair: ledgerlet − the floor (median of all pairs, range)", unit: "ms"}
	if m, p := across(ms), across(pct); m.ok && p.ok {
		rw.diff = fmt.Sprintf("%+.0f (%+.0f…%+.0f); %+.0f %% (%+.0f…%+.0f)", m.v, m.lo, m.hi, p.v, p.lo, p.hi)
	}
	return rw
}

// render is the table (markdown) with the machine line under it.
func render(m machine, r results) string {
	var b strings.Builder
	b.WriteString("| figure | unit | kubelet | ledgerlet | floor (CRI, no agent) | ledgerlet / kubelet | ledgerlet − floor |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|\n")
	for _, rw := range rows(r) {
		ratio, diff := "", ""
		if rw.kubelet.ok && rw.ledgerlet.ok && rw.kubelet.v != 0 {
			ratio = fmt.Sprintf("%.2f×", rw.ledgerlet.v/rw.kubelet.v)
		}
		if rw.diff != "" {
			diff = rw.diff
		} else if rw.ledgerlet.ok && rw.floor.ok {
			diff = fmt.Sprintf("%+.*f", rw.prec, rw.ledgerlet.v-rw.floor.v)
			if rw.floor.v != 0 {
				diff += fmt.Sprintf(" (%+.0f %%)", 100*(rw.ledgerlet.v-rw.floor.v)/math.Abs(rw.floor.v))
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", rw.label, rw.unit,
			rw.kubelet.String(rw.prec), rw.ledgerlet.String(rw.prec), rw.floor.String(rw.prec), ratio, diff)
	}
	facts := []string{fmt.Sprintf("%d × %s", m.cores, m.cpu), "Linux " + m.kernel, m.runtime}
	for _, v := range []string{m.kubelet, m.ledgerlet} {
		if v != "" {
			facts = append(facts, v)
		}
	}
	facts = append(facts, m.goVersion)
	rounds := max(len(r.kubelet), len(r.ledgerlet), len(r.floor))
	if rounds > 1 {
		fmt.Fprintf(&b, "\nEach cell is the median of %d rounds (the kubelet, ledgerlet and the floor in turn), their range in brackets; ratio and difference are of the medians.\n", rounds)
	}
	fmt.Fprintf(&b, "\nMeasured %s on %s; load average %s at the start, %s at the end (a shared machine: other work ran beside it). Observed through CRI every %s.\n",
		m.when, strings.Join(facts, ", "), m.loadStart, m.loadEnd, pollEvery)
	return b.String()
}

const (
	markerBegin = "<!-- bench-kubelet:begin -->"
	markerEnd   = "<!-- bench-kubelet:end -->"
)

// writeBetweenMarkers replaces what is between the markers in file with table; a file without
// them gets a section with them at its end.
func writeBetweenMarkers(file, table string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read %s: %w", file, err)
	}
	s := string(b)
	i, j := strings.Index(s, markerBegin), strings.Index(s, markerEnd)
	block := markerBegin + "\n" + table + markerEnd
	switch {
	case i >= 0 && j > i:
		s = s[:i] + block + s[j+len(markerEnd):]
	default:
		s = strings.TrimRight(s, "\n") + "\n\n## Against the kubelet: `make bench-kubelet`\n\n" + block + "\n"
	}
	if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}
