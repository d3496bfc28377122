package runtime

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestOOMScoreAdjFollowsQoSAsTheKubelets(t *testing.T) {
	const capacity = 10 << 30 // 10 GiB
	mem := func(req, lim string) corev1.ResourceRequirements {
		r := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
		if req != "" {
			r.Requests[corev1.ResourceMemory] = resource.MustParse(req)
		}
		if lim != "" {
			r.Limits[corev1.ResourceMemory] = resource.MustParse(lim)
		}
		return r
	}
	guaranteed := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")},
	}
	always := corev1.ContainerRestartPolicyAlways
	tests := []struct {
		name     string
		priority string
		c        corev1.Container
		others   []corev1.Container
		want     int64
	}{
		{"best effort", "", corev1.Container{}, nil, 1000},
		{"guaranteed", "", corev1.Container{Resources: guaranteed}, nil, -997},
		{"node-critical static pod", systemNodeCritical, corev1.Container{}, nil, -997},
		{"burstable requesting 10% of the node", "", corev1.Container{Resources: mem("1Gi", "")}, nil, 900},
		{"burstable requesting nothing of memory", "", corev1.Container{Resources: mem("", "2Gi")}, nil, 999},
		{"burstable requesting it all", "", corev1.Container{Resources: mem("10Gi", "")}, nil, 3},
		{"a sidecar is not killed before its app", "", corev1.Container{RestartPolicy: &always, Resources: mem("", "")},
			[]corev1.Container{{Name: "app", Resources: mem("5Gi", "")}}, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{Spec: corev1.PodSpec{PriorityClassName: tt.priority}}
			if tt.c.RestartPolicy != nil {
				pod.Spec.InitContainers = []corev1.Container{tt.c}
				pod.Spec.Containers = tt.others
			} else {
				pod.Spec.Containers = append([]corev1.Container{tt.c}, tt.others...)
			}
			if got := oomScoreAdj(pod, &tt.c, capacity); got != tt.want {
				t.Fatalf("oom_score_adj %d, want %d", got, tt.want)
			}
		})
	}
	if nodeMemoryCapacity() <= 0 {
		t.Fatal("no MemTotal in /proc/meminfo")
	}
}
