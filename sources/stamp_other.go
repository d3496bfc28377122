//go:build !linux

package sources

import "io/fs"

// statStamp is Linux-only; elsewhere every re-list reads every file.
func statStamp(fs.FileInfo) (fileStamp, bool) { return fileStamp{}, false }
