package runtime

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	criv1 "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Security profiles (seccomp, AppArmor) and SELinux labels, as the kubelet
// passes them: the container's setting wins over the pod's; none set leaves
// the runtime's default (for seccomp, Unconfined — the kubelet's default
// without --seccomp-default; for AppArmor, the runtime's default profile
// where AppArmor is enabled).

// podSecurityProfiles applies the pod's settings to a sandbox.
func podSecurityProfiles(pod *corev1.Pod, seccompRoot string, sc *criv1.LinuxSandboxSecurityContext) {
	psc := pod.Spec.SecurityContext
	if psc == nil {
		return
	}
	sc.Seccomp = seccompProfile(psc.SeccompProfile, seccompRoot)
	sc.Apparmor = appArmorProfile(psc.AppArmorProfile)
	sc.SelinuxOptions = selinuxOptions(psc.SELinuxOptions)
}

// containerSecurityProfiles applies the pod's, then the container's settings.
func containerSecurityProfiles(pod *corev1.Pod, c *corev1.Container, seccompRoot string, sc *criv1.LinuxContainerSecurityContext) {
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
	sc.Seccomp = seccompProfile(seccomp, seccompRoot)
	sc.Apparmor = appArmorProfile(apparmor)
	sc.SelinuxOptions = selinuxOptions(selinux)
}

// seccompProfile is the CRI profile for p. A Localhost profile is a file
// under root (the kubelet's <root-dir>/seccomp), named relative to it;
// validation has checked that the name cannot leave root.
func seccompProfile(p *corev1.SeccompProfile, root string) *criv1.SecurityProfile {
	if p == nil {
		return nil
	}
	switch p.Type {
	case corev1.SeccompProfileTypeRuntimeDefault:
		return &criv1.SecurityProfile{ProfileType: criv1.SecurityProfile_RuntimeDefault}
	case corev1.SeccompProfileTypeUnconfined:
		return &criv1.SecurityProfile{ProfileType: criv1.SecurityProfile_Unconfined}
	case corev1.SeccompProfileTypeLocalhost:
		if p.LocalhostProfile != nil {
			return &criv1.SecurityProfile{ProfileType: criv1.SecurityProfile_Localhost,
				LocalhostRef: filepath.Join(root, filepath.Clean("/"+*p.LocalhostProfile))}
		}
	}
	return nil
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

// ErrCreateContainerConfig: the container cannot be created as its spec
// asks (the kubelet's CreateContainerConfigError), e.g. runAsNonRoot with an
// image that runs as root.
const ErrCreateContainerConfig Reason = "CreateContainerConfigError"

// checkRunAsNonRoot refuses to create a container whose effective
// runAsNonRoot cannot be honoured, as the kubelet's verifyRunAsNonRoot: the
// user it runs as (runAsUser, else the image's) must be known and not root.
func (r *Runtime) checkRunAsNonRoot(ctx context.Context, pod *corev1.Pod, c *corev1.Container, image string) error {
	nonRoot, runAsUser := effectiveNonRoot(pod, c)
	if !nonRoot {
		return nil
	}
	if runAsUser != nil {
		return verifyNonRoot(pod, c, runAsUser, "")
	}
	uid, username, err := r.imageUser(ctx, image)
	if err != nil {
		return err
	}
	return verifyNonRoot(pod, c, uid, username)
}

// effectiveNonRoot is the container's runAsNonRoot and runAsUser, the
// container's setting winning over the pod's.
func effectiveNonRoot(pod *corev1.Pod, c *corev1.Container) (bool, *int64) {
	var nonRoot *bool
	var user *int64
	if psc := pod.Spec.SecurityContext; psc != nil {
		nonRoot, user = psc.RunAsNonRoot, psc.RunAsUser
	}
	if csc := c.SecurityContext; csc != nil {
		if csc.RunAsNonRoot != nil {
			nonRoot = csc.RunAsNonRoot
		}
		if csc.RunAsUser != nil {
			user = csc.RunAsUser
		}
	}
	return nonRoot != nil && *nonRoot, user
}

// verifyNonRoot: uid (or, if nil, username) is who the container runs as.
func verifyNonRoot(pod *corev1.Pod, c *corev1.Container, uid *int64, username string) error {
	switch {
	case uid != nil && *uid == 0:
		return fmt.Errorf("container %q of %s has runAsNonRoot and would run as root: %w", c.Name, podString(pod), ErrCreateContainerConfig)
	case uid == nil && username != "":
		return fmt.Errorf("container %q of %s has runAsNonRoot and the image has non-numeric user %q, which cannot be verified as non-root: %w",
			c.Name, podString(pod), username, ErrCreateContainerConfig)
	}
	return nil
}

// imageUser is the user an image runs as: a uid, or a user name; an image
// that names none runs as root (the kubelet's getImageUser).
func (r *Runtime) imageUser(ctx context.Context, image string) (*int64, string, error) {
	ctx, cancel := r.callCtx(ctx)
	defer cancel()
	resp, err := r.is.ImageStatus(ctx, &criv1.ImageStatusRequest{Image: &criv1.ImageSpec{Image: image}})
	if err != nil {
		return nil, "", fmt.Errorf("inspect the user of image %s: %w", image, err)
	}
	if img := resp.GetImage(); img != nil {
		if img.GetUid() != nil {
			uid := img.GetUid().GetValue()
			return &uid, "", nil
		}
		if img.GetUsername() != "" {
			return nil, img.GetUsername(), nil
		}
	}
	root := int64(0)
	return &root, "", nil
}

// fsGroup is the pod's securityContext.fsGroup, or nil.
func fsGroup(pod *corev1.Pod) *int64 {
	if psc := pod.Spec.SecurityContext; psc != nil {
		return psc.FSGroup
	}
	return nil
}

// applyFSGroup gives the pod's fsGroup a volume, as the kubelet's
// SetVolumeOwnership: every file and directory under dir gets the group,
// read (and, unless readOnly, write) access for it, and directories the
// setgid bit so that what the containers create inherits the group.
func applyFSGroup(pod *corev1.Pod, dir string, readOnly bool) error {
	gid := fsGroup(pod)
	if gid == nil {
		return nil
	}
	if psc := pod.Spec.SecurityContext; psc.FSGroupChangePolicy != nil && *psc.FSGroupChangePolicy == corev1.FSGroupChangeOnRootMismatch {
		// Only when the volume's root does not show the group already.
		var st syscall.Stat_t
		if err := syscall.Stat(dir, &st); err == nil && int64(st.Gid) == *gid && st.Mode&syscall.S_ISGID != 0 {
			return nil
		}
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		if err := os.Lchown(p, -1, int(*gid)); err != nil {
			return fmt.Errorf("apply fsGroup %d to %s: %w", *gid, p, err)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mode := fi.Mode().Perm() | 0o440
		if !readOnly {
			mode |= 0o220
		}
		if d.IsDir() {
			mode |= 0o110 | fs.ModeSetgid
		}
		if err := os.Chmod(p, mode); err != nil {
			return fmt.Errorf("apply fsGroup %d to %s: %w", *gid, p, err)
		}
		return nil
	})
}
