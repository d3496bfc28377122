package runtime

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	criv1 "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Reason is a machine-readable cause, spelled as the kubelet's container waiting reasons so
// that a caller can show it as-is. It is an error so callers can test with errors.Is.
type Reason string

func (r Reason) Error() string { return string(r) }

// Image failures, as the kubelet names them.
const (
	// ErrImagePull: the pull was needed and failed (unreachable registry, unknown image...).
	ErrImagePull Reason = "ErrImagePull"
	// ErrImageNeverPull: pull policy Never and the image is not on the node.
	ErrImageNeverPull Reason = "ErrImageNeverPull"
	// ErrImageInspect: the runtime could not say whether the image is present.
	ErrImageInspect Reason = "ImageInspectError"
	// ErrInvalidImageName: the container names no image.
	ErrInvalidImageName Reason = "InvalidImageName"
)

// EnsureImage makes the container's image present according to its pull policy and returns
// the image id to create the container from, so the container runs exactly the image that
// was checked even if the tag moves meanwhile.
//
// The local store is always asked first: with IfNotPresent and Never a present image is used
// without any registry traffic, which also makes images that were only imported (never
// pulled) usable, as PullImage of such an image fails. Always pulls, and a failed pull fails
// even if an older copy is present, as with the kubelet.
func (r *Runtime) EnsureImage(ctx context.Context, pod *corev1.Pod, c *corev1.Container) (string, error) {
	if strings.TrimSpace(c.Image) == "" {
		return "", fmt.Errorf("ensure image for container %q of %s: %w", c.Name, podString(pod), ErrInvalidImageName)
	}
	policy := PullPolicy(c)
	id, err := r.imageID(ctx, c.Image)
	if err != nil {
		return "", fmt.Errorf("inspect image %q for container %q of %s: %w: %w", c.Image, c.Name, podString(pod), ErrImageInspect, err)
	}
	switch {
	case id != "" && policy != corev1.PullAlways:
		return id, nil
	case id == "" && policy == corev1.PullNever:
		return "", fmt.Errorf("image %q for container %q of %s is not present and pull policy is Never: %w",
			c.Image, c.Name, podString(pod), ErrImageNeverPull)
	}

	pctx, cancel := context.WithTimeout(ctx, r.cfg.PullTimeout)
	defer cancel()
	resp, err := r.is.PullImage(pctx, &criv1.PullImageRequest{Image: &criv1.ImageSpec{Image: c.Image}})
	if err != nil {
		return "", fmt.Errorf("pull image %q for container %q of %s: %w: %w", c.Image, c.Name, podString(pod), ErrImagePull, err)
	}
	r.log.Info("image pulled", "image", c.Image, "ref", resp.ImageRef, "pod", podString(pod))
	// The pull answers with a ref; ask again for the id so both paths return the same kind.
	id, err = r.imageID(ctx, c.Image)
	if err != nil || id == "" {
		return resp.ImageRef, nil
	}
	return id, nil
}

// imageID returns the id of a locally present image, or "" when it is absent.
func (r *Runtime) imageID(ctx context.Context, image string) (string, error) {
	ctx, cancel := r.callCtx(ctx)
	defer cancel()
	resp, err := r.is.ImageStatus(ctx, &criv1.ImageStatusRequest{Image: &criv1.ImageSpec{Image: image}})
	if err != nil {
		if isNotFound(err) {
			return "", nil
		}
		return "", err
	}
	if resp.GetImage() == nil {
		return "", nil
	}
	return resp.GetImage().GetId(), nil
}

// PullPolicy is the container's pull policy with the API server's default applied, because
// static pods never pass through the API server: Always for :latest or an untagged image,
// IfNotPresent otherwise.
func PullPolicy(c *corev1.Container) corev1.PullPolicy {
	if c.ImagePullPolicy != "" {
		return c.ImagePullPolicy
	}
	if imageTag(c.Image) == "latest" || (imageTag(c.Image) == "" && !strings.Contains(c.Image, "@")) {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

// imageTag returns the tag of an image reference, or "" if it has none. A colon before the
// last slash belongs to a registry port (localhost:5000/x), not a tag.
func imageTag(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	slash := strings.LastIndex(image, "/")
	colon := strings.LastIndex(image, ":")
	if colon > slash {
		return image[colon+1:]
	}
	return ""
}
