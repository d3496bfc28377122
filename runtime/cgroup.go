package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

type cgroupDriver int

const (
	cgroupfsDriver cgroupDriver = iota
	systemdDriver
)

func parseCgroupDriver(s string) (cgroupDriver, error) {
	switch s {
	case "", "cgroupfs":
		return cgroupfsDriver, nil
	case "systemd":
		return systemdDriver, nil
	}
	return 0, fmt.Errorf("cgroup driver %q: want cgroupfs or systemd", s)
}

// PodCgroupParent is the CgroupParent given to the runtime for a pod. With cgroupfs it is
// <root>/pod<uid>; with systemd it is the slice path the kubelet would use, e.g.
// /ledgerlet.slice/ledgerlet-pod<uid>.slice (dashes in the uid become underscores because
// systemd reads a dash as nesting). A uid that would not make one plain path component is an
// error: the parent is created by the runtime and removed by RemovePodCgroup.
func (r *Runtime) PodCgroupParent(uid string) (string, error) {
	return podCgroupParent(r.driver, r.cfg.CgroupRoot, uid)
}

func podCgroupParent(d cgroupDriver, root, uid string) (string, error) {
	if err := checkUID(uid); err != nil {
		return "", fmt.Errorf("cgroup of pod: %w", err)
	}
	if d == cgroupfsDriver {
		return joinUnder(root, "pod"+uid)
	}
	prefix := strings.ReplaceAll(strings.Trim(root, "/"), "/", "-")
	return joinUnder("/"+prefix+".slice", prefix+"-pod"+strings.ReplaceAll(uid, "-", "_")+".slice")
}

// RemovePodCgroup deletes the pod's cgroup from every mounted hierarchy. containerd removes
// each container's cgroup but never the parent we named, so without this every pod leaves an
// empty directory per controller behind. Call it after RemovePodSandbox. Busy cgroups (a
// process still inside) are reported, not forced.
func (r *Runtime) RemovePodCgroup(uid string) error {
	mounts, err := cgroupMounts(r.cfg.CgroupFS)
	if err != nil {
		return fmt.Errorf("remove cgroup of pod %s: %w", uid, err)
	}
	parent, err := r.PodCgroupParent(uid)
	if err != nil {
		return fmt.Errorf("remove cgroup of pod %q: %w", uid, err)
	}
	var errs []error
	for _, m := range mounts {
		if err := rmdirTree(filepath.Join(m, parent)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove cgroup of pod %s: %w", uid, err)
	}
	return nil
}

// PodCgroupPaths lists where the pod's cgroup would be in each mounted hierarchy; tests and
// diagnostics use it to check that nothing is left.
func (r *Runtime) PodCgroupPaths(uid string) ([]string, error) {
	mounts, err := cgroupMounts(r.cfg.CgroupFS)
	if err != nil {
		return nil, err
	}
	parent, err := r.PodCgroupParent(uid)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(mounts))
	for _, m := range mounts {
		out = append(out, filepath.Join(m, parent))
	}
	return out, nil
}

// cgroupMounts returns mount points of cgroup v1 and v2 hierarchies under fsRoot. Reading
// /proc/self/mounts instead of assuming a layout covers v1, hybrid and unified hosts alike.
func cgroupMounts(fsRoot string) ([]string, error) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return nil, fmt.Errorf("list cgroup mounts: %w", err)
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 3 || (fields[2] != "cgroup" && fields[2] != "cgroup2") {
			continue
		}
		if fields[1] == fsRoot || strings.HasPrefix(fields[1], fsRoot+"/") {
			out = append(out, fields[1])
		}
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("list cgroup mounts: %w", err)
	}
	return out, nil
}

// rmdirTree removes a cgroup directory and its children, deepest first. cgroup directories
// are removed with rmdir alone: their control files cannot (and need not) be unlinked.
func rmdirTree(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("walk %s: %w", dir, err)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := syscall.Rmdir(dirs[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rmdir %s: %w", dirs[i], err)
		}
	}
	return nil
}
