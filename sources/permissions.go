package sources

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// permissionProblem says what makes a manifest, or the directory holding it,
// writable by someone other than the agent's user: a static pod runs as
// root with host access, so whoever can write its manifest owns the node.
// Empty when nothing is wrong.
func permissionProblem(what string, fi fs.FileInfo) string {
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Sprintf("%s %s is writable by group or others (mode %04o)", what, fi.Name(), fi.Mode().Perm())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Sprintf("%s %s is owned by uid %d, not by the agent's uid %d", what, fi.Name(), st.Uid, os.Geteuid())
	}
	return ""
}

// checkPermissions applies --strict-manifest-permissions to a parsed manifest:
// a problem with the file or its directory is a warning recorded with the
// manifest, or with strict set, a rejection (the last good version runs on).
func (s *FileSource) checkPermissions(path string, fi fs.FileInfo, o *observation) {
	if o.res == nil {
		return
	}
	problem := permissionProblem("manifest", fi)
	if problem == "" && s.isDir {
		if dfi, err := os.Stat(filepath.Dir(path)); err == nil {
			problem = permissionProblem("manifest directory", dfi)
		}
	}
	if problem == "" {
		return
	}
	if s.cfg.StrictPermissions {
		o.err = &ManifestError{Path: path, Pod: o.res.Key, Err: fmt.Errorf("%s (--strict-manifest-permissions)", problem)}
		o.res = nil
		return
	}
	o.res.Warnings = append(o.res.Warnings, problem)
}
