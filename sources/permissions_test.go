package sources

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

// TestManifestWritableByOthersIsWarnedOrRefused: whoever can write a static
// pod's manifest owns the node. A manifest writable by group or others is
// recorded with a warning, or refused with --strict-manifest-permissions.
func TestManifestWritableByOthersIsWarnedOrRefused(t *testing.T) {
	for _, strict := range []bool{false, true} {
		dir := manifestDir(t)
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "web.yaml")
		write(t, path, podYAML("web", "busybox:1.36"))
		if err := os.Chmod(path, 0o666); err != nil {
			t.Fatal(err)
		}
		h := startFile(t, dir, nil, func(c *FileConfig) { c.StrictPermissions = strict })
		ev := h.rec.events()[0]
		switch d := ev.Data.(type) {
		case *eventpb.ManifestAdded:
			if strict || len(d.Warnings) == 0 || !strings.Contains(strings.Join(d.Warnings, ";"), "writable by group or others") {
				t.Errorf("strict=%v: added with warnings %v", strict, d.Warnings)
			}
		case *eventpb.ManifestRejected:
			if !strict || !strings.Contains(d.Reason, "writable by group or others") || ev.Pod != "default/web-node1" {
				t.Errorf("strict=%v: rejected %q for %q", strict, d.Reason, ev.Pod)
			}
		default:
			t.Errorf("strict=%v: first event %T", strict, ev.Data)
		}
	}
	// A private manifest in a private directory has no warning.
	dir := manifestDir(t)
	write(t, filepath.Join(dir, "ok.yaml"), podYAML("ok", "busybox:1.36"))
	h := startFile(t, dir, nil, func(c *FileConfig) { c.StrictPermissions = true })
	if d, ok := h.rec.events()[0].Data.(*eventpb.ManifestAdded); !ok || len(d.Warnings) != 0 {
		t.Errorf("private manifest: %v", h.rec.events()[0].Data)
	}
}
