package runtime

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func fieldEnv(name, path string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
}

func TestFieldRefsResolveFromPodAndPlacement(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: "web-n1", Namespace: "default", UID: "u1",
		Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"a": "b"},
	}}
	c := &corev1.Container{Name: "c", Env: []corev1.EnvVar{
		fieldEnv("NAME", "metadata.name"),
		fieldEnv("NS", "metadata.namespace"),
		fieldEnv("UID", "metadata.uid"),
		fieldEnv("NODE", "spec.nodeName"),
		fieldEnv("POD_IP", "status.podIP"),
		fieldEnv("HOST_IP", "status.hostIP"),
		fieldEnv("APP", "metadata.labels['app']"),
		fieldEnv("ANN", "metadata.annotations['a']"),
		{Name: "URL", Value: "http://$(POD_IP):80/$(NAME)"},
	}}
	got, err := ResolveEnv(pod, c, FieldValues{NodeName: "n1", PodIP: "10.0.0.5", HostIP: "192.168.1.2"})
	if err != nil {
		t.Fatal(err)
	}
	want := []EnvVar{
		{"NAME", "web-n1"}, {"NS", "default"}, {"UID", "u1"}, {"NODE", "n1"},
		{"POD_IP", "10.0.0.5"}, {"HOST_IP", "192.168.1.2"}, {"APP", "web"}, {"ANN", "b"},
		{"URL", "http://10.0.0.5:80/web-n1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ResolveEnv =\n%v\nwant\n%v", got, want)
	}
}

func TestUnsupportedEnvSourcesAreErrors(t *testing.T) {
	pod := &corev1.Pod{}
	for _, e := range []corev1.EnvVar{
		{Name: "S", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{Key: "k"}}},
		fieldEnv("X", "status.phase"),
	} {
		if _, err := ResolveEnv(pod, &corev1.Container{Name: "c", Env: []corev1.EnvVar{e}}, FieldValues{}); err == nil {
			t.Errorf("ResolveEnv(%s) succeeded; want an error", e.Name)
		}
	}
}

func TestResourceFieldRef(t *testing.T) {
	c := &corev1.Container{Name: "c", Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("1500m"), corev1.ResourceMemory: resource.MustParse("64Mi"),
	}}, Env: []corev1.EnvVar{
		{Name: "CPU", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}},
		{Name: "MCPU", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu", Divisor: resource.MustParse("1m")}}},
		{Name: "MEM", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
	}}
	got, err := ResolveEnv(&corev1.Pod{}, c, FieldValues{})
	if err != nil {
		t.Fatal(err)
	}
	want := []EnvVar{{"CPU", "2"}, {"MCPU", "1500"}, {"MEM", "64"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ResolveEnv = %v, want %v", got, want)
	}
}

func TestExpansionFollowsKubeletRules(t *testing.T) {
	vars := map[string]string{"A": "x", "B": "y"}
	for in, want := range map[string]string{
		"$(A)":         "x",
		"$(A)-$(B)":    "x-y",
		"$$(A)":        "$(A)",
		"$(MISSING)":   "$(MISSING)",
		"$(A":          "$(A",
		"$A":           "$A",
		"cost $":       "cost $",
		"no refs":      "no refs",
		"$(A)$(A)$$$$": "xx$$",
	} {
		if got := expand(in, vars); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
	env := []EnvVar{{"GREETING", "hi"}}
	if got := ExpandCommand([]string{"echo", "$(GREETING)", "$(hostname)"}, env); !reflect.DeepEqual(got, []string{"echo", "hi", "$(hostname)"}) {
		t.Errorf("ExpandCommand = %q", got)
	}
}

func TestPullPolicyDefaultsLikeAPIServer(t *testing.T) {
	for image, want := range map[string]corev1.PullPolicy{
		"busybox":                   corev1.PullAlways,
		"busybox:latest":            corev1.PullAlways,
		"localhost/busybox:1.36":    corev1.PullIfNotPresent,
		"localhost:5000/busybox":    corev1.PullAlways,
		"localhost:5000/busybox:1":  corev1.PullIfNotPresent,
		"busybox@sha256:0123456789": corev1.PullIfNotPresent,
	} {
		if got := PullPolicy(&corev1.Container{Image: image}); got != want {
			t.Errorf("PullPolicy(%s) = %s, want %s", image, got, want)
		}
	}
	if got := PullPolicy(&corev1.Container{Image: "busybox", ImagePullPolicy: corev1.PullNever}); got != corev1.PullNever {
		t.Errorf("explicit policy not kept: %s", got)
	}
}

func TestCPUAndMemoryBecomeCgroupLimits(t *testing.T) {
	c := &corev1.Container{Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("128Mi"),
	}}}
	r := linuxResources(c)
	if r.CpuShares != 512 || r.CpuQuota != 50000 || r.CpuPeriod != 100000 || r.MemoryLimitInBytes != 128<<20 {
		t.Errorf("linuxResources = %+v", r)
	}
	if r := linuxResources(&corev1.Container{}); r.CpuShares != 2 || r.CpuQuota != 0 {
		t.Errorf("best-effort linuxResources = %+v", r)
	}
}
