// Package containerlogs owns container log files under the pod log root
// (kubelet layout <root>/<ns>_<name>_<uid>/<container>/<restartCount>.log,
// CRI log format): which files make up one container instance's log, their
// rotation (the Rotator actor), their removal, and reading them back.
//
// It never decides which pods or containers exist: the Rotator works on the
// running containers the projection shows, and removal happens when the
// runtime lane removes what the planner said to remove.
package containerlogs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Suffixes of the files rotation makes beside a live log N.log: rotated
// files are N.log.<timestamp>, compressed N.log.<timestamp>.gz; a
// compression in progress writes N.log.<timestamp>.tmp.
const (
	// TimestampFormat names rotated files, as the kubelet does: 0.log.20260102-150405.
	TimestampFormat = "20060102-150405"
	gzSuffix        = ".gz"
	tmpSuffix       = ".tmp"
)

// PodDir is the kubelet's pod log directory <root>/<namespace>_<name>_<uid>.
// It is an error unless that is one plain path component under root.
func PodDir(root, namespace, name, uid string) (string, error) {
	comp := namespace + "_" + name + "_" + uid
	if err := plainName(uid); err != nil {
		return "", fmt.Errorf("log directory of %s/%s: pod uid: %w", namespace, name, err)
	}
	if err := plainName(comp); err != nil {
		return "", fmt.Errorf("log directory of %s/%s: %w", namespace, name, err)
	}
	return filepath.Join(filepath.Clean(root), comp), nil
}

// Path is the live log of one container instance:
// <root>/<ns>_<name>_<uid>/<container>/<restartCount>.log.
func Path(root, namespace, name, uid, container string, restartCount uint32) (string, error) {
	dir, err := PodDir(root, namespace, name, uid)
	if err != nil {
		return "", err
	}
	if err := plainName(container); err != nil {
		return "", fmt.Errorf("log of %s/%s: container: %w", namespace, name, err)
	}
	return filepath.Join(dir, container, strconv.FormatUint(uint64(restartCount), 10)+".log"), nil
}

func plainName(n string) error {
	if n == "" || n == "." || n == ".." || strings.ContainsAny(n, "/\x00") {
		return fmt.Errorf("%q is not a single path component", n)
	}
	return nil
}

// Files lists one instance's log, oldest first: its rotated files
// (compressed or not) in the order they were rotated, then the live file if
// it exists. A file whose compression was interrupted is listed once.
func Files(live string) ([]string, error) {
	rotated, err := rotatedFiles(live)
	if err != nil {
		return nil, err
	}
	out := rotated
	if _, err := os.Stat(live); err == nil {
		out = append(out, live)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("list log files of %s: %w", live, err)
	}
	return out, nil
}

// rotatedFiles lists the rotated files of live, oldest first. Leftovers of
// an interrupted compression are skipped: a .tmp file, and the uncompressed
// original when its .gz is complete.
func rotatedFiles(live string) ([]string, error) {
	dir, base := filepath.Split(live)
	entries, err := os.ReadDir(filepath.Clean(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list log files of %s: %w", live, err)
	}
	names := map[string]bool{}
	for _, e := range entries {
		n := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(n, base+".") || strings.HasSuffix(n, tmpSuffix) {
			continue
		}
		names[n] = true
	}
	var out []string
	for n := range names {
		if !strings.HasSuffix(n, gzSuffix) && names[n+gzSuffix] {
			continue
		}
		out = append(out, n)
	}
	// Timestamps sort as text; a .gz sorts by the name it was made from.
	sort.Slice(out, func(i, j int) bool {
		return strings.TrimSuffix(out[i], gzSuffix) < strings.TrimSuffix(out[j], gzSuffix)
	})
	for i, n := range out {
		out[i] = filepath.Join(dir, n)
	}
	return out, nil
}

// RemoveInstance deletes one instance's log: the live file and every file
// rotation made beside it, as the kubelet does when it removes a container.
func RemoveInstance(live string) error {
	dir, base := filepath.Split(live)
	entries, err := os.ReadDir(filepath.Clean(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove log of %s: %w", live, err)
	}
	for _, e := range entries {
		if n := e.Name(); n == base || strings.HasPrefix(n, base+".") {
			if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove log of %s: %w", live, err)
			}
		}
	}
	return nil
}

// RemovePod deletes the log directory of pod UID uid under root, whatever
// the pod was called: <ns>_<name>_<uid>. Namespaces and names are DNS names
// without '_', so the directory is the one whose name has exactly two more.
func RemovePod(root, uid string) error {
	if err := plainName(uid); err != nil {
		return fmt.Errorf("remove logs of pod: uid: %w", err)
	}
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove logs of pod %s: %w", uid, err)
	}
	for _, e := range entries {
		if !e.IsDir() || !OfPod(e.Name(), uid) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
			return fmt.Errorf("remove logs of pod %s: %w", uid, err)
		}
	}
	return nil
}

// OfPod says whether dir (a name under the log root) is the log directory
// of pod UID uid: <ns>_<name>_<uid> with ns and name non-empty and free of '_'.
func OfPod(dir, uid string) bool {
	prefix, ok := strings.CutSuffix(dir, "_"+uid)
	if !ok {
		return false
	}
	ns, name, ok := strings.Cut(prefix, "_")
	return ok && ns != "" && name != "" && !strings.Contains(name, "_")
}
