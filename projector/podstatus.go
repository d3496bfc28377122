package projector

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	corev1 "k8s.io/api/core/v1"
)

// APIStatus is a placeholder until the mirror status lands.
func (p *Pod) APIStatus(nodeIP string) corev1.PodStatus {
	v := p.View(p.UpdatedAt)
	return corev1.PodStatus{Phase: corev1.PodPhase(v.Phase), HostIP: nodeIP}
}

// StatusHash identifies a status.
func StatusHash(st corev1.PodStatus) string {
	b, _ := json.Marshal(st)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}
