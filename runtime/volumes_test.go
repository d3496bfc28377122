package runtime

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestHostPathTypesAreCheckedAsTheKubelet(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tests := []struct {
		typ     corev1.HostPathType
		path    string
		wantErr string // "" for success
	}{
		{corev1.HostPathUnset, filepath.Join(dir, "missing"), ""},
		{corev1.HostPathDirectoryOrCreate, filepath.Join(dir, "new", "dir"), ""},
		{corev1.HostPathDirectoryOrCreate, file, "is not a directory"},
		{corev1.HostPathFileOrCreate, filepath.Join(dir, "newdir", "newfile"), ""},
		{corev1.HostPathFileOrCreate, dir, "is not a file"},
		{corev1.HostPathDirectory, dir, ""},
		{corev1.HostPathDirectory, file, "is not a directory"},
		{corev1.HostPathDirectory, filepath.Join(dir, "missing"), "no such file"},
		{corev1.HostPathFile, file, ""},
		{corev1.HostPathFile, sock, "is not a file"},
		{corev1.HostPathSocket, sock, ""},
		{corev1.HostPathSocket, file, "is not a socket file"},
		{corev1.HostPathCharDev, "/dev/null", ""},
		{corev1.HostPathBlockDev, "/dev/null", "is not a block device"},
	}
	for _, tt := range tests {
		t.Run(string(tt.typ)+" "+filepath.Base(tt.path), func(t *testing.T) {
			typ := tt.typ
			err := prepareHostPath(&corev1.HostPathVolumeSource{Path: tt.path, Type: &typ})
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
