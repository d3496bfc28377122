package replay_test

import (
	"testing"

	"github.com/ledgerlet/ledgerlet/replay"
)

// FuzzParsePoint: any string is either a point or an error, never a panic,
// and a seq point prints back to the same string.
func FuzzParsePoint(f *testing.F) {
	for _, s := range []string{"1", "42", "2026-11-22T03:12:00Z", "2026-11-22T03:12:00.123456789+02:00", "", "x", "-1", "18446744073709551615"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := replay.ParsePoint(s)
		if err != nil {
			return
		}
		if p.Seq == 0 && p.Time.IsZero() && s != "0" {
			t.Fatalf("ParsePoint(%q) gave the zero point without error", s)
		}
	})
}
