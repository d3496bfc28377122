package runtime

import (
	corev1 "k8s.io/api/core/v1"
	criv1 "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Security profiles (seccomp, AppArmor) and SELinux labels, as the kubelet
// passes them: the container's setting wins over the pod's; none set leaves
// the runtime's default (for seccomp, Unconfined — the kubelet's default
// without --seccomp-default; for AppArmor, the runtime's default profile
// where AppArmor is enabled).

// podSecurityProfiles applies the pod's settings to a sandbox.
func podSecurityProfiles(pod *corev1.Pod, sc *criv1.LinuxSandboxSecurityContext) {
	psc := pod.Spec.SecurityContext
	if psc == nil {
		return
	}
	sc.Seccomp = seccompProfile(psc.SeccompProfile)
	sc.Apparmor = appArmorProfile(psc.AppArmorProfile)
	sc.SelinuxOptions = selinuxOptions(psc.SELinuxOptions)
}

// containerSecurityProfiles applies the pod's, then the container's settings.
func containerSecurityProfiles(pod *corev1.Pod, c *corev1.Container, sc *criv1.LinuxContainerSecurityContext) {
	var seccomp *corev1.SeccompProfile
	var apparmor *corev1.AppArmorProfile
	var selinux *corev1.SELinuxOptions
	if psc := pod.Spec.SecurityContext; psc != nil {
		seccomp, apparmor, selinux = psc.SeccompProfile, psc.AppArmorProfile, psc.SELinuxOptions
	}
	if csc := c.SecurityContext; csc != nil {
		if csc.SeccompProfile != nil {
			seccomp = csc.SeccompProfile
		}
		if csc.AppArmorProfile != nil {
			apparmor = csc.AppArmorProfile
		}
		if csc.SELinuxOptions != nil {
			selinux = csc.SELinuxOptions
		}
	}
	sc.Seccomp = seccompProfile(seccomp)
	sc.Apparmor = appArmorProfile(apparmor)
	sc.SelinuxOptions = selinuxOptions(selinux)
}

func seccompProfile(p *corev1.SeccompProfile) *criv1.SecurityProfile {
	if p == nil {
		return nil
	}
	switch p.Type {
	case corev1.SeccompProfileTypeRuntimeDefault:
		return &criv1.SecurityProfile{ProfileType: criv1.SecurityProfile_RuntimeDefault}
	case corev1.SeccompProfileTypeUnconfined:
		return &criv1.SecurityProfile{ProfileType: criv1.SecurityProfile_Unconfined}
	}
	return nil // Localhost is refused at validation
}

func appArmorProfile(p *corev1.AppArmorProfile) *criv1.SecurityProfile {
	if p == nil {
		return nil
	}
	switch p.Type {
	case corev1.AppArmorProfileTypeRuntimeDefault:
		return &criv1.SecurityProfile{ProfileType: criv1.SecurityProfile_RuntimeDefault}
	case corev1.AppArmorProfileTypeUnconfined:
		return &criv1.SecurityProfile{ProfileType: criv1.SecurityProfile_Unconfined}
	case corev1.AppArmorProfileTypeLocalhost:
		ref := ""
		if p.LocalhostProfile != nil {
			ref = *p.LocalhostProfile
		}
		return &criv1.SecurityProfile{ProfileType: criv1.SecurityProfile_Localhost, LocalhostRef: ref}
	}
	return nil
}

func selinuxOptions(o *corev1.SELinuxOptions) *criv1.SELinuxOption {
	if o == nil {
		return nil
	}
	return &criv1.SELinuxOption{User: o.User, Role: o.Role, Type: o.Type, Level: o.Level}
}
