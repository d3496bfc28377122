package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"
	criv1 "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestContainerSecurityProfilesOverrideThePods(t *testing.T) {
	profile := "ledgerlet-test"
	pod := &corev1.Pod{Spec: corev1.PodSpec{SecurityContext: &corev1.PodSecurityContext{
		SeccompProfile:  &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		AppArmorProfile: &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeLocalhost, LocalhostProfile: &profile},
		SELinuxOptions:  &corev1.SELinuxOptions{Level: "s0:c1"},
	}}}
	tests := []struct {
		name     string
		c        corev1.Container
		seccomp  criv1.SecurityProfile_ProfileType
		apparmor string
	}{
		{"the pod's", corev1.Container{}, criv1.SecurityProfile_RuntimeDefault, "ledgerlet-test"},
		{"the container's", corev1.Container{SecurityContext: &corev1.SecurityContext{
			SeccompProfile:  &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined},
			AppArmorProfile: &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeRuntimeDefault},
		}}, criv1.SecurityProfile_Unconfined, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := containerSecurityContext(pod, &tt.c, "/seccomp")
			if sc.Seccomp.GetProfileType() != tt.seccomp || sc.Apparmor.GetLocalhostRef() != tt.apparmor || sc.SelinuxOptions.GetLevel() != "s0:c1" {
				t.Fatalf("seccomp %v apparmor %v selinux %v", sc.Seccomp, sc.Apparmor, sc.SelinuxOptions)
			}
		})
	}
	if got := containerSecurityContext(&corev1.Pod{}, &corev1.Container{}, "/seccomp"); got.Seccomp != nil || got.Apparmor != nil {
		t.Fatalf("no profile set, yet %v %v: the runtime's default must apply", got.Seccomp, got.Apparmor)
	}
}

func TestRunAsNonRootIsVerifiedAsTheKubelet(t *testing.T) {
	yes, no := true, false
	root, user := int64(0), int64(1000)
	tests := []struct {
		name     string
		pod      *corev1.PodSecurityContext
		c        *corev1.SecurityContext
		imageUID *int64
		imageUsr string
		ok       bool
	}{
		{"not asked", nil, nil, &root, "", true},
		{"root image", &corev1.PodSecurityContext{RunAsNonRoot: &yes}, nil, &root, "", false},
		{"non-root image", &corev1.PodSecurityContext{RunAsNonRoot: &yes}, nil, &user, "", true},
		{"named image user cannot be verified", &corev1.PodSecurityContext{RunAsNonRoot: &yes}, nil, nil, "nobody", false},
		{"runAsUser decides", &corev1.PodSecurityContext{RunAsNonRoot: &yes, RunAsUser: &user}, nil, &root, "", true},
		{"runAsUser 0 breaks it", &corev1.PodSecurityContext{RunAsNonRoot: &yes}, &corev1.SecurityContext{RunAsUser: &root}, &user, "", false},
		{"the container lifts the pod's", &corev1.PodSecurityContext{RunAsNonRoot: &yes}, &corev1.SecurityContext{RunAsNonRoot: &no}, &root, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{Spec: corev1.PodSpec{SecurityContext: tt.pod}}
			c := &corev1.Container{Name: "c", SecurityContext: tt.c}
			nonRoot, runAs := effectiveNonRoot(pod, c)
			var err error
			switch {
			case !nonRoot:
			case runAs != nil:
				err = verifyNonRoot(pod, c, runAs, "")
			default:
				err = verifyNonRoot(pod, c, tt.imageUID, tt.imageUsr)
			}
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrCreateContainerConfig)) {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestFSGroupOwnsTheVolume(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing a file's group needs root")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	gid := int64(4242)
	pod := &corev1.Pod{Spec: corev1.PodSpec{SecurityContext: &corev1.PodSecurityContext{FSGroup: &gid}}}
	if err := applyFSGroup(pod, dir, false); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{dir: 0o770 | os.ModeSetgid, filepath.Join(dir, "f"): 0o660} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if int64(st.Gid) != gid || fi.Mode()&(os.ModePerm|os.ModeSetgid)&want != want {
			t.Errorf("%s: gid %d mode %v, want gid %d and at least %v", p, st.Gid, fi.Mode(), gid, want)
		}
	}
}
