//go:build !linux

package sources

import "errors"

// newDirWatcher has nothing to offer without inotify: the file source then
// relies on its periodic re-list.
func newDirWatcher() (dirWatcher, error) {
	return nil, errors.New("watching manifests needs Linux inotify")
}
