package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	corev1 "k8s.io/api/core/v1"
)

// Memory-backed emptyDirs (medium: Memory): a tmpfs mounted on the
// emptyDir's host directory, sized by sizeLimit (without one, the kernel's
// default of half the node's memory), as the kubelet does. It is mounted
// once, when the first container that uses it is created (a container
// restart finds it mounted and keeps its contents), and unmounted when the
// pod's data is removed. After a reboot it is empty, like the kubelet's.

// mountTmpfs mounts a tmpfs on dir unless one already is.
func mountTmpfs(dir string, sizeLimit int64) error {
	mounted, err := isMountPoint(dir)
	if err != nil {
		return fmt.Errorf("check tmpfs mount at %s: %w", dir, err)
	}
	if mounted {
		return nil
	}
	opts := "mode=0777"
	if sizeLimit > 0 {
		opts += ",size=" + strconv.FormatInt(sizeLimit, 10)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount tmpfs at %s (%s): %w", dir, opts, err)
	}
	return nil
}

// emptyDirSizeLimit is the volume's sizeLimit in bytes, 0 if none.
func emptyDirSizeLimit(v *corev1.EmptyDirVolumeSource) int64 {
	if v.SizeLimit == nil {
		return 0
	}
	return v.SizeLimit.Value()
}

// isMountPoint: dir is on another device than its parent (a mount's root).
func isMountPoint(dir string) (bool, error) {
	var st, parent syscall.Stat_t
	if err := syscall.Lstat(dir, &st); err != nil {
		return false, err
	}
	if err := syscall.Lstat(filepath.Dir(dir), &parent); err != nil {
		return false, err
	}
	return st.Dev != parent.Dev, nil
}

// unmountEmptyDirs unmounts every memory-backed emptyDir under a pod's data
// directory, so that removing the directory removes them (a mounted tmpfs
// would make the removal fail with EBUSY and keep its memory).
func unmountEmptyDirs(podDir string) error {
	root := filepath.Join(podDir, "volumes", "empty-dir")
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		p := filepath.Join(root, e.Name())
		if mounted, err := isMountPoint(p); err != nil || !mounted {
			continue
		}
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount tmpfs at %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}
