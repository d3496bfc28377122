package agent

import (
	"runtime/debug"
	"testing"
)

func TestRunningGCPercentYieldsToGOGC(t *testing.T) {
	orig := debug.SetGCPercent(100)
	defer debug.SetGCPercent(orig)
	for _, tc := range []struct {
		name string
		gogc string
		want int
	}{
		{"unset: the agent's own target", "", runningGCPercent},
		{"set by the operator: left alone", "200", 100},
		{"off by the operator: left alone", "off", 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			restore := setRunningGCPercent(func(k string) string {
				if k == "GOGC" {
					return tc.gogc
				}
				return ""
			})
			if got := debug.SetGCPercent(100); got != tc.want {
				t.Errorf("GC percent while running = %d, want %d", got, tc.want)
			}
			debug.SetGCPercent(tc.want)
			restore()
			if got := debug.SetGCPercent(100); got != 100 {
				t.Errorf("GC percent after restore = %d, want 100", got)
			}
		})
	}
}
