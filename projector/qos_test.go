package projector_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/ledgerlet/ledgerlet/projector"
)

func resources(req, lim map[corev1.ResourceName]string) corev1.ResourceRequirements {
	out := corev1.ResourceRequirements{}
	for n, q := range req {
		if out.Requests == nil {
			out.Requests = corev1.ResourceList{}
		}
		out.Requests[n] = resource.MustParse(q)
	}
	for n, q := range lim {
		if out.Limits == nil {
			out.Limits = corev1.ResourceList{}
		}
		out.Limits[n] = resource.MustParse(q)
	}
	return out
}

func TestQOSClassIsTheKubelets(t *testing.T) {
	cpu, mem := corev1.ResourceCPU, corev1.ResourceMemory
	both := resources(map[corev1.ResourceName]string{cpu: "1", mem: "1Gi"}, map[corev1.ResourceName]string{cpu: "1", mem: "1Gi"})
	tests := []struct {
		name  string
		cs    []corev1.ResourceRequirements
		inits []corev1.ResourceRequirements
		want  corev1.PodQOSClass
	}{
		{"nothing set", []corev1.ResourceRequirements{{}}, nil, corev1.PodQOSBestEffort},
		{"only ephemeral storage", []corev1.ResourceRequirements{resources(map[corev1.ResourceName]string{corev1.ResourceEphemeralStorage: "1Gi"}, nil)}, nil, corev1.PodQOSBestEffort},
		{"requests equal limits everywhere", []corev1.ResourceRequirements{both, both}, []corev1.ResourceRequirements{both}, corev1.PodQOSGuaranteed},
		{"a request below its limit", []corev1.ResourceRequirements{resources(map[corev1.ResourceName]string{cpu: "500m", mem: "1Gi"}, map[corev1.ResourceName]string{cpu: "1", mem: "1Gi"})}, nil, corev1.PodQOSBurstable},
		{"one container without limits", []corev1.ResourceRequirements{both, {}}, nil, corev1.PodQOSBurstable},
		{"an init container without limits", []corev1.ResourceRequirements{both}, []corev1.ResourceRequirements{resources(map[corev1.ResourceName]string{cpu: "100m"}, nil)}, corev1.PodQOSBurstable},
		{"cpu request only", []corev1.ResourceRequirements{resources(map[corev1.ResourceName]string{cpu: "250m"}, nil)}, nil, corev1.PodQOSBurstable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var spec corev1.PodSpec
			for _, r := range tt.cs {
				spec.Containers = append(spec.Containers, corev1.Container{Resources: r})
			}
			for _, r := range tt.inits {
				spec.InitContainers = append(spec.InitContainers, corev1.Container{Resources: r})
			}
			if got := projector.QOSClass(&spec); got != tt.want {
				t.Fatalf("QoS %s, want %s", got, tt.want)
			}
		})
	}
}
