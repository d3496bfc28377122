package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Downward API volumes (and projected volumes of downwardAPI sources): files
// holding the pod's name, namespace, UID, labels and annotations, and the
// containers' resource requests and limits, as the kubelet writes them. They
// live under <DataDir>/pods/<uid>/volumes/downward-api/<volume> and are
// mounted read-only.
//
// A static pod's metadata never changes under one version (an edit is a new
// version, whose containers are created afresh), so the files are written
// when a container that mounts them is created and not watched afterwards.

// downwardAPIFile is one file of a downward API volume.
type downwardAPIFile struct {
	path    string // relative to the volume
	content string
	mode    os.FileMode
}

// downwardAPIDir is the host directory behind a downward API volume.
func (r *Runtime) downwardAPIDir(uid, volume string) string {
	return filepath.Join(r.cfg.DataDir, "pods", uid, "volumes", "downward-api", volume)
}

// prepareDownwardAPI writes the volume's files and returns its directory.
func (r *Runtime) prepareDownwardAPI(pod *corev1.Pod, v *corev1.Volume) (string, error) {
	files, err := downwardAPIFiles(pod, v)
	if err != nil {
		return "", err
	}
	dir := r.downwardAPIDir(string(pod.UID), v.Name)
	if err := writeVolumeFiles(dir, files); err != nil {
		return "", fmt.Errorf("write downward API files: %w", err)
	}
	if err := applyFSGroup(pod, dir, true); err != nil {
		return "", err
	}
	return dir, nil
}

// downwardAPIFiles renders the files of a downwardAPI or projected volume.
func downwardAPIFiles(pod *corev1.Pod, v *corev1.Volume) ([]downwardAPIFile, error) {
	type source struct {
		items       []corev1.DownwardAPIVolumeFile
		defaultMode *int32
	}
	var sources []source
	switch {
	case v.DownwardAPI != nil:
		sources = append(sources, source{v.DownwardAPI.Items, v.DownwardAPI.DefaultMode})
	case v.Projected != nil:
		for _, s := range v.Projected.Sources {
			if s.DownwardAPI == nil {
				return nil, errors.New("projected volume: only downwardAPI sources are supported for static pods")
			}
			sources = append(sources, source{s.DownwardAPI.Items, v.Projected.DefaultMode})
		}
	default:
		return nil, errors.New("not a downward API volume")
	}
	var out []downwardAPIFile
	for _, s := range sources {
		def := int32(corev1.DownwardAPIVolumeSourceDefaultMode)
		if s.defaultMode != nil {
			def = *s.defaultMode
		}
		for _, item := range s.items {
			content, err := downwardAPIValue(pod, item)
			if err != nil {
				return nil, fmt.Errorf("item %q: %w", item.Path, err)
			}
			mode := def
			if item.Mode != nil {
				mode = *item.Mode
			}
			out = append(out, downwardAPIFile{path: item.Path, content: content, mode: os.FileMode(mode) & fs.ModePerm})
		}
	}
	return out, nil
}

func downwardAPIValue(pod *corev1.Pod, item corev1.DownwardAPIVolumeFile) (string, error) {
	switch {
	case item.FieldRef != nil:
		switch path := item.FieldRef.FieldPath; path {
		case "metadata.labels":
			return formatMap(pod.Labels), nil
		case "metadata.annotations":
			return formatMap(pod.Annotations), nil
		case "metadata.name", "metadata.namespace", "metadata.uid":
			return fieldRefValue(pod, path, FieldValues{})
		default:
			if _, ok := subscript(path, "metadata.labels"); ok {
				return fieldRefValue(pod, path, FieldValues{})
			}
			if _, ok := subscript(path, "metadata.annotations"); ok {
				return fieldRefValue(pod, path, FieldValues{})
			}
			return "", fmt.Errorf("fieldRef %q is not supported in a volume", path)
		}
	case item.ResourceFieldRef != nil:
		ref := item.ResourceFieldRef
		c, _ := findContainer(pod, ref.ContainerName)
		if c == nil {
			return "", fmt.Errorf("resourceFieldRef: no container %q in the pod", ref.ContainerName)
		}
		return resourceFieldValue(c, ref)
	}
	return "", errors.New("neither fieldRef nor resourceFieldRef is set")
}

// formatMap renders labels or annotations as the kubelet does
// (fieldpath.FormatMap): key="value" lines, sorted by key.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(k + "=" + strconv.Quote(m[k]))
	}
	return b.String()
}

// writeVolumeFiles makes dir hold exactly files: each written to a temporary
// file and renamed into place, so a container reading one never sees it half
// written; files of an earlier version that are no longer wanted are
// removed.
func writeVolumeFiles(dir string, files []downwardAPIFile) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	want := map[string]bool{}
	for _, f := range files {
		clean := filepath.Clean(f.path)
		if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") || clean == "." {
			return fmt.Errorf("path %q must be relative and stay inside the volume", f.path)
		}
		target := filepath.Join(dir, clean)
		want[target] = true
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		tmp, err := os.CreateTemp(filepath.Dir(target), ".tmp-")
		if err != nil {
			return err
		}
		_, werr := tmp.WriteString(f.content)
		cerr := tmp.Close()
		if err := errors.Join(werr, cerr, os.Chmod(tmp.Name(), f.mode)); err != nil {
			os.Remove(tmp.Name())
			return err
		}
		if err := os.Rename(tmp.Name(), target); err != nil {
			os.Remove(tmp.Name())
			return err
		}
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || want[p] {
			return err
		}
		return os.Remove(p)
	})
}
