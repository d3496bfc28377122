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

	corev1 "k8s.io/api/core/v1"
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
	ms, err := cgroupMountsWithTypes(fsRoot)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.path)
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

// podCgroupLimits are the limits the kubelet puts on a pod's own cgroup
// (pkg/kubelet/cm ResourceConfigForPod): CPU shares from the pod's CPU
// requests, and a CPU quota and memory limit only when every container has
// that limit (one container without a limit leaves the pod unbounded).
// Containers keep their own limits below it; the pod's cgroup also bounds
// the sandbox and what the containers' limits do not cover (a container
// being replaced while its successor starts).
type podCgroupLimits struct {
	cpuShares   uint64 // cgroup v1 cpu.shares (v2 weight derived from it)
	cpuQuotaUS  int64  // per cpuPeriodUS; -1: none
	memoryBytes int64  // -1: none
}

const (
	cpuPeriodUS = 100000 // the kubelet's default CFS period
	minShares   = 2      // the kernel's floor, and a BestEffort pod's shares
	maxShares   = 262144
)

// podLimits computes the pod's cgroup limits from its containers, as the
// kubelet: the effective request or limit of a pod is the larger of the sum
// over its regular containers (and restartable init containers, which run
// alongside them) and the largest plain init container.
func podLimits(pod *corev1.Pod) podCgroupLimits {
	var cpuReq, cpuLim, memLim int64 // milli-CPU and bytes
	cpuAll, memAll := true, true
	var sideReq, sideCPULim, sideMemLim, initCPUReq, initCPULim, initMemLim int64
	for _, c := range pod.Spec.InitContainers {
		req, lim := c.Resources.Requests, c.Resources.Limits
		cl, hasCPU := lim[corev1.ResourceCPU]
		ml, hasMem := lim[corev1.ResourceMemory]
		cpuAll, memAll = cpuAll && hasCPU, memAll && hasMem
		cr := req.Cpu().MilliValue()
		if _, ok := req[corev1.ResourceCPU]; !ok && hasCPU {
			cr = cl.MilliValue() // a limit without a request: the request defaults to it
		}
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sideReq += cr
			sideCPULim += cl.MilliValue()
			sideMemLim += ml.Value()
			continue
		}
		// A plain init container runs alone, after the sidecars before it.
		initCPUReq = max(initCPUReq, sideReq+cr)
		initCPULim = max(initCPULim, sideCPULim+cl.MilliValue())
		initMemLim = max(initMemLim, sideMemLim+ml.Value())
	}
	cpuReq, cpuLim, memLim = sideReq, sideCPULim, sideMemLim
	for _, c := range pod.Spec.Containers {
		req, lim := c.Resources.Requests, c.Resources.Limits
		cl, hasCPU := lim[corev1.ResourceCPU]
		ml, hasMem := lim[corev1.ResourceMemory]
		cpuAll, memAll = cpuAll && hasCPU, memAll && hasMem
		cr := req.Cpu().MilliValue()
		if _, ok := req[corev1.ResourceCPU]; !ok && hasCPU {
			cr = cl.MilliValue()
		}
		cpuReq += cr
		cpuLim += cl.MilliValue()
		memLim += ml.Value()
	}
	cpuReq, cpuLim, memLim = max(cpuReq, initCPUReq), max(cpuLim, initCPULim), max(memLim, initMemLim)

	out := podCgroupLimits{cpuShares: minShares, cpuQuotaUS: -1, memoryBytes: -1}
	if cpuReq > 0 {
		out.cpuShares = uint64(min(max(cpuReq*1024/1000, minShares), maxShares))
	}
	if cpuAll && cpuLim > 0 {
		// The kubelet's MilliCPUToQuota, with its 1 ms floor.
		out.cpuQuotaUS = max(cpuLim*cpuPeriodUS/1000, 1000)
	}
	if memAll && memLim > 0 {
		out.memoryBytes = memLim
	}
	return out
}

// ensurePodCgroup creates the pod's cgroup with its limits before the
// sandbox is started in it (the runtime only creates what is missing, and
// leaves what is there). Only with the cgroupfs driver: under systemd the
// slice's properties are systemd's to set, and the containers' own limits
// still apply.
func (r *Runtime) ensurePodCgroup(pod *corev1.Pod) error {
	if r.driver != cgroupfsDriver {
		return nil
	}
	parent, err := r.PodCgroupParent(string(pod.UID))
	if err != nil {
		return err
	}
	lim := podLimits(pod)
	mounts, err := cgroupMountsWithTypes(r.cfg.CgroupFS)
	if err != nil {
		return err
	}
	for _, m := range mounts {
		dir := filepath.Join(m.path, parent)
		files := map[string]string{}
		switch {
		case m.v2 && !m.controllers["memory"]:
			continue // the hybrid layout's v2 hierarchy: no controllers to set
		case m.v2:
			// Controllers must be enabled in every ancestor for the files to exist.
			if err := enableV2Controllers(m.path, parent); err != nil {
				return err
			}
			files["cpu.weight"] = fmt.Sprint(1 + ((lim.cpuShares-2)*9999)/262142) // runc's ConvertCPUSharesToCgroupV2Value
			if lim.cpuQuotaUS > 0 {
				files["cpu.max"] = fmt.Sprintf("%d %d", lim.cpuQuotaUS, cpuPeriodUS)
			}
			if lim.memoryBytes > 0 {
				files["memory.max"] = fmt.Sprint(lim.memoryBytes)
			}
		case m.controllers["cpu"]:
			files["cpu.shares"] = fmt.Sprint(lim.cpuShares)
			if lim.cpuQuotaUS > 0 {
				files["cpu.cfs_period_us"] = fmt.Sprint(cpuPeriodUS)
				files["cpu.cfs_quota_us"] = fmt.Sprint(lim.cpuQuotaUS)
			}
		case m.controllers["memory"]:
			if lim.memoryBytes > 0 {
				files["memory.limit_in_bytes"] = fmt.Sprint(lim.memoryBytes)
			}
		}
		if len(files) == 0 {
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		for _, name := range []string{"cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.shares", "cpu.weight", "cpu.max", "memory.limit_in_bytes", "memory.max"} {
			v, ok := files[name]
			if !ok {
				continue
			}
			if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0); err != nil {
				return fmt.Errorf("set %s of pod cgroup %s to %s: %w", name, dir, v, err)
			}
		}
	}
	return nil
}

type cgroupMount struct {
	path        string
	v2          bool
	controllers map[string]bool // v1: the controllers this hierarchy has
}

// cgroupMountsWithTypes lists the cgroup hierarchies mounted under fsRoot
// with each one's version and controllers (v1: from the mount options; v2:
// cgroup.controllers).
func cgroupMountsWithTypes(fsRoot string) ([]cgroupMount, error) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return nil, fmt.Errorf("list cgroup mounts: %w", err)
	}
	defer f.Close()
	var out []cgroupMount
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 4 || (fields[2] != "cgroup" && fields[2] != "cgroup2") {
			continue
		}
		if fields[1] != fsRoot && !strings.HasPrefix(fields[1], fsRoot+"/") {
			continue
		}
		m := cgroupMount{path: fields[1], v2: fields[2] == "cgroup2", controllers: map[string]bool{}}
		for _, o := range strings.Split(fields[3], ",") {
			m.controllers[o] = true
		}
		if m.v2 {
			// A v2 hierarchy beside v1 ones (hybrid) has no controllers.
			b, _ := os.ReadFile(filepath.Join(m.path, "cgroup.controllers"))
			for _, c := range strings.Fields(string(b)) {
				m.controllers[c] = true
			}
		}
		out = append(out, m)
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("list cgroup mounts: %w", err)
	}
	return out, nil
}

// enableV2Controllers enables cpu and memory in every ancestor of parent,
// as runc does when it creates a cgroup path.
func enableV2Controllers(root, parent string) error {
	dir := root
	for _, part := range strings.Split(strings.Trim(parent, "/"), "/") {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+cpu +memory"), 0); err != nil {
			return fmt.Errorf("enable cpu and memory in %s: %w", dir, err)
		}
		dir = filepath.Join(dir, part)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create cgroup %s: %w", dir, err)
		}
	}
	return nil
}
