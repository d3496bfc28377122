package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTableReplacesOnlyWhatIsBetweenTheMarkers(t *testing.T) {
	f := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	before := "# Benchmarks\n\nintro\n\n" + markerBegin + "\nold table\n" + markerEnd + "\n\nafter\n"
	if err := os.WriteFile(f, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeBetweenMarkers(f, "| new |\n"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(f)
	want := "# Benchmarks\n\nintro\n\n" + markerBegin + "\n| new |\n" + markerEnd + "\n\nafter\n"
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestTableWithoutMarkersGetsASectionAtTheEnd(t *testing.T) {
	f := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := os.WriteFile(f, []byte("# Benchmarks\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeBetweenMarkers(f, "| new |\n"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(f)
	if !strings.HasSuffix(string(got), markerBegin+"\n| new |\n"+markerEnd+"\n") {
		t.Errorf("no section with markers at the end:\n%s", got)
	}
}

func TestRoundsFoldIntoTheMedianAndTheRange(t *testing.T) {
	c := across([]cell{num(3), num(1), {}, num(2)})
	if got := c.String(0); got != "2 (1–3)" {
		t.Errorf("got %q, want 2 (1–3)", got)
	}
	if got := across([]cell{num(5)}).String(1); got != "5.0" {
		t.Errorf("one round: got %q, want 5.0", got)
	}
	if got := across(nil).String(0); got != "—" {
		t.Errorf("no round: got %q, want —", got)
	}
	same := cell{text: "10/10 kept, 0 new"}
	if got := across([]cell{same, same}).String(0); got != "10/10 kept, 0 new" {
		t.Errorf("equal texts: got %q", got)
	}
}

func TestResidentSetIsReadWithItsParts(t *testing.T) {
	status := "Name:\tledgerlet\nVmHWM:\t   31000 kB\nVmRSS:\t   26976 kB\nRssAnon:\t    8484 kB\nRssFile:\t   18492 kB\nRssShmem:\t       0 kB\n"
	got, err := parseResidentSet([]byte(status))
	if err != nil {
		t.Fatal(err)
	}
	if want := (residentSet{total: 26976 << 10, anon: 8484 << 10, file: 18492 << 10}); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if _, err := parseResidentSet([]byte("Name:\tx\n")); err == nil {
		t.Fatal("a status without VmRSS was read")
	}
	self, err := procRSS(os.Getpid())
	if err != nil || self.anon == 0 || self.file == 0 || self.total < self.anon {
		t.Fatalf("own RSS %+v, %v", self, err)
	}
}

func TestPairedRowIsTheMedianAndRangeOfEverySample(t *testing.T) {
	r := results{ledgerlet: []*figures{
		{pairedAgent: msList(900, 1000, 1100), pairedFloor: msList(800, 950, 1200)},
		nil, // a failed round is left out
		{pairedAgent: msList(700, 1300, 1050), pairedFloor: msList(1000, 900, 850)},
	}}
	row := paired(r, "10 at once in turn", func(f *figures) ([]time.Duration, []time.Duration) { return f.pairedAgent, f.pairedFloor })
	if got := row.ledgerlet.String(0); got != "1050 (700–1300)" {
		t.Errorf("ledgerlet cell = %q, want 1050 (700–1300)", got)
	}
	if got := row.floor.String(0); got != "950 (800–1200)" {
		t.Errorf("floor cell = %q, want 950 (800–1200)", got)
	}
	if row.kubelet.ok {
		t.Errorf("the kubelet has no paired figure, got %v", row.kubelet)
	}
}

func TestOnePodInTurnRowIsOfTheOnePodSamplesOnly(t *testing.T) {
	r := results{ledgerlet: []*figures{
		{onePairedAgent: msList(150, 160), onePairedFloor: msList(140, 155), pairedAgent: msList(900), pairedFloor: msList(800)},
		{onePairedAgent: msList(170), onePairedFloor: msList(145)},
	}}
	var got row
	for _, rw := range rows(r) {
		if strings.HasPrefix(rw.label, "— the same, ledgerlet and the floor in turn, 2 each a round") {
			got = rw
		}
	}
	if got.label == "" {
		t.Fatalf("no one-pod in-turn row in %v", rows(r))
	}
	if s := got.ledgerlet.String(0); s != "160 (150–170)" {
		t.Errorf("ledgerlet cell = %q, want 160 (150–170)", s)
	}
	if s := got.floor.String(0); s != "145 (140–155)" {
		t.Errorf("floor cell = %q, want 145 (140–155)", s)
	}
}

func TestWithinPairsIsTheMedianOfEachPairsDifference(t *testing.T) {
	// In every pair ledgerlet took 10 % more than the floor beside it, while the pairs
	// themselves drift by a factor of three: the percentage must not move with the drift.
	r := results{ledgerlet: []*figures{
		{pairedAgent: msList(550, 1100, 1650), pairedFloor: msList(500, 1000, 1500)},
		{pairedAgent: msList(880), pairedFloor: msList(800)},
	}}
	row := withinPairs(r, func(f *figures) ([]time.Duration, []time.Duration) { return f.pairedAgent, f.pairedFloor })
	if want := "+100 (+50…+150); +10 % (+10…+10)"; row.diff != want {
		t.Errorf("diff = %q, want %q", row.diff, want)
	}
	if row.ledgerlet.ok || row.floor.ok {
		t.Errorf("within-pair row has its own column only, got %v / %v", row.ledgerlet, row.floor)
	}
}

// msList is durations of whole milliseconds.
func msList(vs ...int) []time.Duration {
	out := make([]time.Duration, len(vs))
	for i, v := range vs {
		out[i] = time.Duration(v) * time.Millisecond
	}
	return out
}
