package replay_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/ledgerlet/ledgerlet/replay"
)

// FuzzExportLine: any line is a record or an error, never a panic, and a
// record written back reads as the same record.
func FuzzExportLine(f *testing.F) {
	for _, s := range []string{
		`{"seq":3,"time":"2026-11-20T03:00:00Z","type":"AgentStarted","pod":"","data":{}}`,
		`{"type":"Gap","time":"2026-11-20T03:00:00Z","from":5,"to":9,"reason":"compacted"}`,
		`{"type":"Gap"}`, `{}`, `[]`, `null`, `{"seq":-1}`, "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		var r replay.ExportRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return
		}
		if (r.Gap == nil) == (r.Event == nil) {
			t.Fatalf("%q read as neither or both an event and a gap", line)
		}
		b, err := json.Marshal(r)
		if err != nil {
			return // e.g. raw data that is not JSON
		}
		var again replay.ExportRecord
		if err := json.Unmarshal(b, &again); err != nil || again.Seq() != r.Seq() || (again.Gap == nil) != (r.Gap == nil) {
			t.Fatalf("%q -> %s does not read back: %v", line, b, err)
		}
	})
}

// FuzzCursor: any cursor file content loads as a seq or an error; a seq
// stored loads back.
func FuzzCursor(f *testing.F) {
	for _, s := range []string{"0\n", "42\n", "18446744073709551615", " 7 ", "x", "", "-1", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, content string) {
		c := replay.Cursor{Path: filepath.Join(t.TempDir(), "cursor")}
		if err := os.WriteFile(c.Path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		seq, ok, err := c.Load()
		if err != nil {
			return
		}
		if !ok {
			t.Fatalf("%q: an existing cursor read as none", content)
		}
		if err := c.Store(seq); err != nil {
			t.Fatal(err)
		}
		if again, _, err := c.Load(); err != nil || again != seq {
			t.Fatalf("%q: stored %d, loaded %d %v", content, seq, again, err)
		}
	})
}
