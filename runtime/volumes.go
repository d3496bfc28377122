package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	criv1 "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PodDataDir is where the agent keeps a pod's files: <DataDir>/pods/<uid>. A uid that is not
// one plain path component is an error.
func (r *Runtime) PodDataDir(uid string) (string, error) {
	return joinUnder(r.cfg.DataDir, "pods", uid)
}

// EmptyDirPath is the host directory behind an emptyDir volume:
// <DataDir>/pods/<uid>/volumes/empty-dir/<volume>.
func (r *Runtime) EmptyDirPath(uid, volume string) (string, error) {
	return joinUnder(r.cfg.DataDir, "pods", uid, "volumes", "empty-dir", volume)
}

// RemovePodData deletes the pod's data directory and with it every emptyDir. An emptyDir
// lives exactly as long as the pod (not its sandbox), so call this only when the pod is gone
// for good, after RemovePodSandbox.
func (r *Runtime) RemovePodData(uid string) error {
	dir, err := r.PodDataDir(uid)
	if err != nil {
		return fmt.Errorf("remove data of pod %q: %w", uid, err)
	}
	if err := unmountEmptyDirs(dir); err != nil {
		return fmt.Errorf("remove data of pod %s: %w", uid, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove data of pod %s: %w", uid, err)
	}
	return nil
}

// podDataPresent says whether the pod's data directory or its cgroup (in
// any of the hierarchies mounted at cgroupMounts) exists, as the listings
// in seen show it.
func (r *Runtime) podDataPresent(uid string, cgroupMounts []string, seen dirListings) bool {
	if dir, err := r.PodDataDir(uid); err == nil && seen.has(dir) {
		return true
	}
	parent, err := r.PodCgroupParent(uid)
	if err != nil {
		return false
	}
	for _, m := range cgroupMounts {
		if seen.has(filepath.Join(m, parent)) {
			return true
		}
	}
	return false
}

// dirListings holds the directories listed in one pass by path: every
// pod's data directory and cgroup sits beside the others', so a pass over
// many pods lists each parent once instead of asking for each pod's path.
type dirListings map[string]map[string]bool

// has reports whether path exists, as its parent's listing shows it. A
// parent that cannot be listed (absent, most often) holds nothing.
func (d dirListings) has(path string) bool {
	dir, base := filepath.Split(filepath.Clean(path))
	names, ok := d[dir]
	if !ok {
		names = map[string]bool{}
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			names[e.Name()] = true
		}
		d[dir] = names
	}
	return names[base]
}

// containerMounts turns volumeMounts into host bind mounts, creating what the volume type says
// should be created, plus the termination-message file.
func (r *Runtime) containerMounts(pod *corev1.Pod, c *corev1.Container, restartCount int) ([]*criv1.Mount, error) {
	volumes := make(map[string]*corev1.Volume, len(pod.Spec.Volumes))
	for i := range pod.Spec.Volumes {
		volumes[pod.Spec.Volumes[i].Name] = &pod.Spec.Volumes[i]
	}
	var mounts []*criv1.Mount
	for _, vm := range c.VolumeMounts {
		v, ok := volumes[vm.Name]
		if !ok {
			return nil, fmt.Errorf("volume mount %q: no volume of that name in the pod", vm.Name)
		}
		hostPath, err := r.volumeHostPath(pod, v)
		if err != nil {
			return nil, fmt.Errorf("volume %q: %w", v.Name, err)
		}
		if vm.SubPath != "" {
			sub := filepath.Clean(vm.SubPath)
			if filepath.IsAbs(sub) || sub == ".." || strings.HasPrefix(sub, "../") {
				return nil, fmt.Errorf("volume mount %q: subPath %q must stay inside the volume", vm.Name, vm.SubPath)
			}
			hostPath = filepath.Join(hostPath, sub)
			// As the kubelet: a missing subPath becomes a directory.
			if _, err := os.Lstat(hostPath); errors.Is(err, fs.ErrNotExist) {
				if err := os.MkdirAll(hostPath, 0o755); err != nil {
					return nil, fmt.Errorf("volume mount %q: create subPath: %w", vm.Name, err)
				}
			}
		}
		mounts = append(mounts, &criv1.Mount{
			ContainerPath: vm.MountPath,
			HostPath:      hostPath,
			// As the kubelet: downward API and projected volumes are read-only.
			Readonly:    vm.ReadOnly || v.DownwardAPI != nil || v.Projected != nil,
			Propagation: propagation(vm.MountPropagation),
		})
	}

	// The kubelet gives every container a host file at its terminationMessagePath so the
	// message outlives the container; one file per restart so a new run starts empty.
	tm, err := joinUnder(r.cfg.DataDir, "pods", string(pod.UID), "containers", c.Name, strconv.Itoa(restartCount)+terminationMessageFileSuffix)
	if err != nil {
		return nil, fmt.Errorf("termination message file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(tm), 0o755); err != nil {
		return nil, fmt.Errorf("create termination message file: %w", err)
	}
	f, err := os.OpenFile(tm, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o666)
	if err != nil {
		return nil, fmt.Errorf("create termination message file: %w", err)
	}
	f.Close()
	// The file mode is filtered by umask; the container's user may not be root.
	if err := os.Chmod(tm, 0o666); err != nil {
		return nil, fmt.Errorf("create termination message file: %w", err)
	}
	mounts = append(mounts, &criv1.Mount{ContainerPath: terminationMessagePath(c), HostPath: tm})
	return mounts, nil
}

// volumeHostPath prepares and returns the host side of a volume. Only the volume types a
// static pod can use without an API server are supported.
func (r *Runtime) volumeHostPath(pod *corev1.Pod, v *corev1.Volume) (string, error) {
	switch {
	case v.EmptyDir != nil:
		if m := v.EmptyDir.Medium; m != corev1.StorageMediumDefault && m != corev1.StorageMediumMemory {
			return "", fmt.Errorf("emptyDir medium %q is not supported", m)
		}
		p, err := r.EmptyDirPath(string(pod.UID), v.Name)
		if err != nil {
			return "", fmt.Errorf("emptyDir: %w", err)
		}
		if err := os.MkdirAll(p, 0o777); err != nil {
			return "", fmt.Errorf("create emptyDir: %w", err)
		}
		if v.EmptyDir.Medium == corev1.StorageMediumMemory {
			if err := mountTmpfs(p, emptyDirSizeLimit(v.EmptyDir)); err != nil {
				return "", fmt.Errorf("create emptyDir: %w", err)
			}
		}
		// World-writable like the kubelet's, so non-root containers can use it.
		if err := os.Chmod(p, 0o777); err != nil {
			return "", fmt.Errorf("create emptyDir: %w", err)
		}
		if err := applyFSGroup(pod, p, false); err != nil {
			return "", fmt.Errorf("create emptyDir: %w", err)
		}
		return p, nil
	case v.HostPath != nil:
		return v.HostPath.Path, prepareHostPath(v.HostPath)
	case v.DownwardAPI != nil, v.Projected != nil:
		return r.prepareDownwardAPI(pod, v)
	}
	return "", errors.New("unsupported volume type (only emptyDir, hostPath, downwardAPI and projected downwardAPI)")
}

// prepareHostPath applies the hostPath type as the kubelet's
// hostPathTypeChecker: *OrCreate creates what is missing (a directory 0755,
// an empty file 0644 — with its parent directories, where the kubelet would
// fail) and checks what exists; the other types check the path exists and is
// of that type. Symlinks are followed. The messages are the kubelet's.
func prepareHostPath(hp *corev1.HostPathVolumeSource) error {
	typ := corev1.HostPathUnset
	if hp.Type != nil {
		typ = *hp.Type
	}
	if typ == corev1.HostPathUnset {
		return nil
	}
	fi, err := os.Stat(hp.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && typ == corev1.HostPathDirectoryOrCreate:
		if err := os.MkdirAll(hp.Path, 0o755); err != nil {
			return fmt.Errorf("create hostPath directory: %w", err)
		}
		return nil
	case errors.Is(err, fs.ErrNotExist) && typ == corev1.HostPathFileOrCreate:
		if err := os.MkdirAll(filepath.Dir(hp.Path), 0o755); err != nil {
			return fmt.Errorf("create hostPath file: %w", err)
		}
		f, err := os.OpenFile(hp.Path, os.O_CREATE|os.O_RDONLY, 0o644)
		if err != nil {
			return fmt.Errorf("create hostPath file: %w", err)
		}
		return f.Close()
	case err != nil:
		return fmt.Errorf("hostPath type check failed: %s: %w", hp.Path, err)
	}
	mode := fi.Mode()
	var ok bool
	var what string
	switch typ {
	case corev1.HostPathDirectory, corev1.HostPathDirectoryOrCreate:
		ok, what = mode.IsDir(), "a directory"
	case corev1.HostPathFile, corev1.HostPathFileOrCreate:
		ok, what = mode.IsRegular(), "a file"
	case corev1.HostPathSocket:
		ok, what = mode&fs.ModeSocket != 0, "a socket file"
	case corev1.HostPathCharDev:
		ok, what = mode&fs.ModeCharDevice != 0, "a character device"
	case corev1.HostPathBlockDev:
		ok, what = mode&fs.ModeDevice != 0 && mode&fs.ModeCharDevice == 0, "a block device"
	default:
		return fmt.Errorf("hostPath type %q is not supported", typ)
	}
	if !ok {
		return fmt.Errorf("hostPath type check failed: %s is not %s", hp.Path, what)
	}
	return nil
}

func propagation(p *corev1.MountPropagationMode) criv1.MountPropagation {
	if p == nil {
		return criv1.MountPropagation_PROPAGATION_PRIVATE
	}
	switch *p {
	case corev1.MountPropagationHostToContainer:
		return criv1.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
	case corev1.MountPropagationBidirectional:
		return criv1.MountPropagation_PROPAGATION_BIDIRECTIONAL
	}
	return criv1.MountPropagation_PROPAGATION_PRIVATE
}
