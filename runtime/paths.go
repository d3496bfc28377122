package runtime

import (
	"fmt"
	"path/filepath"
	"strings"
)

// joinUnder joins root and names, each of which must be exactly one plain
// path component. Pod UIDs, names and volume names come from manifests; a
// component such as ".." or "a/b" would otherwise put a world-writable
// emptyDir, a log directory or a cgroup (and later an rmdir walk) outside the
// agent's roots. Sources validate these values too; this is the last line.
func joinUnder(root string, names ...string) (string, error) {
	p := filepath.Clean(root)
	for _, n := range names {
		if err := plainName(n); err != nil {
			return "", fmt.Errorf("path under %s: %w", root, err)
		}
		p = filepath.Join(p, n)
	}
	return p, nil
}

// plainName accepts exactly one path component.
func plainName(n string) error {
	if n == "" || n == "." || n == ".." || strings.ContainsAny(n, "/\x00") {
		return fmt.Errorf("%q is not a single path component", n)
	}
	return nil
}

// checkUID refuses a pod UID that is not one plain path component. Paths that
// embed the UID in a larger component (pod<uid>, <ns>_<name>_<uid>) would
// stay inside their root anyway; checking the UID itself keeps every path of
// a pod refusing the same UIDs.
func checkUID(uid string) error {
	if err := plainName(uid); err != nil {
		return fmt.Errorf("pod uid: %w", err)
	}
	return nil
}
