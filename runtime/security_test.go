package runtime

import (
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
			sc := containerSecurityContext(pod, &tt.c)
			if sc.Seccomp.GetProfileType() != tt.seccomp || sc.Apparmor.GetLocalhostRef() != tt.apparmor || sc.SelinuxOptions.GetLevel() != "s0:c1" {
				t.Fatalf("seccomp %v apparmor %v selinux %v", sc.Seccomp, sc.Apparmor, sc.SelinuxOptions)
			}
		})
	}
	if got := containerSecurityContext(&corev1.Pod{}, &corev1.Container{}); got.Seccomp != nil || got.Apparmor != nil {
		t.Fatalf("no profile set, yet %v %v: the runtime's default must apply", got.Seccomp, got.Apparmor)
	}
}
