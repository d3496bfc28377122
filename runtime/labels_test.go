package runtime

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The expected values were computed with the kubelet's own code path (go-spew "%#v" of the
// JSON, FNV-32a), so a kubelet and ledgerlet agree on whether a container changed.
func TestContainerHashMatchesKubelet(t *testing.T) {
	for _, tc := range []struct{ name, image, want string }{
		{"web", "localhost/busybox:1.36", "21803cae"},
	} {
		got := ContainerHash(&corev1.Container{Name: tc.name, Image: tc.image})
		if got != tc.want {
			t.Errorf("ContainerHash(%s, %s) = %s, want %s", tc.name, tc.image, got, tc.want)
		}
	}
}

func TestContainerHashIgnoresEverythingButNameAndImage(t *testing.T) {
	a := &corev1.Container{Name: "c", Image: "i", Command: []string{"x"}}
	b := &corev1.Container{Name: "c", Image: "i", Args: []string{"y"}, Env: []corev1.EnvVar{{Name: "A"}}}
	if ContainerHash(a) != ContainerHash(b) {
		t.Error("hash changed with command/args/env; the kubelet hashes only name and image")
	}
	if ContainerHash(a) == ContainerHash(&corev1.Container{Name: "c", Image: "j"}) {
		t.Error("hash did not change with the image")
	}
}

func TestLogPathsFollowKubeletLayout(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-node1", Namespace: "default", UID: "1234"}}
	if got, err := PodLogDir("/var/log/pods", pod); got != "/var/log/pods/default_web-node1_1234" || err != nil {
		t.Errorf("PodLogDir = %s, %v; want /var/log/pods/default_web-node1_1234", got, err)
	}
	if got, want := ContainerLogPath("nginx", 3), "nginx/3.log"; got != want {
		t.Errorf("ContainerLogPath = %s, want %s", got, want)
	}
}

func TestIdentityLabelsWinOverPodLabels(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: "p", Namespace: "ns", UID: "u",
		Labels: map[string]string{"app": "x", LabelPodUID: "forged", LabelManaged: "false"},
	}}
	l := sandboxLabels(pod, "true")
	if l["app"] != "x" || l[LabelPodUID] != "u" || l[LabelManaged] != "true" || l[LabelPodName] != "p" || l[LabelPodNamespace] != "ns" {
		t.Errorf("sandboxLabels = %v", l)
	}
}

func TestHostnameIsPodNameCutToValidLength(t *testing.T) {
	long := strings.Repeat("a", 61) + "-.xyz"
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: long}}
	if got := podHostname(pod); got != strings.Repeat("a", 61) {
		t.Errorf("podHostname = %q (len %d)", got, len(got))
	}
	pod.Spec.Hostname = "explicit"
	if got := podHostname(pod); got != "explicit" {
		t.Errorf("podHostname with spec.hostname = %q", got)
	}
}

func TestCgroupParentPerDriver(t *testing.T) {
	if got, err := podCgroupParent(cgroupfsDriver, "/ledgerlet", "ab-cd"); got != "/ledgerlet/podab-cd" || err != nil {
		t.Errorf("cgroupfs parent = %s, %v; want /ledgerlet/podab-cd", got, err)
	}
	if got, err := podCgroupParent(systemdDriver, "/ledgerlet", "ab-cd"); got != "/ledgerlet.slice/ledgerlet-podab_cd.slice" || err != nil {
		t.Errorf("systemd parent = %s, %v; want /ledgerlet.slice/ledgerlet-podab_cd.slice", got, err)
	}
}

func TestSysctlSlashFormBecomesDotted(t *testing.T) {
	for in, want := range map[string]string{
		"net.ipv4.ip_forward":               "net.ipv4.ip_forward",
		"net/ipv4/ip_forward":               "net.ipv4.ip_forward",
		"net/ipv4/conf/eth0.100/forwarding": "net.ipv4.conf.eth0/100.forwarding",
	} {
		if got := sysctlName(in); got != want {
			t.Errorf("sysctlName(%q) = %q, want %q", in, got, want)
		}
	}
}
