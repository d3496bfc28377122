// Package eventlogtest provides test helpers for code that uses the event
// log: a generator of a realistic event mix for benchmarks and size checks.
package eventlogtest

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/ledgerlet/ledgerlet/eventlog"
	"github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

// Mix generates a deterministic stream of events shaped like a control-plane
// node's log: mostly container and sandbox observations, intents and their
// outcomes for a handful of static pods, with an occasional manifest change
// carrying ~2 KB of pod JSON and its raw manifest as a blob.
type Mix struct {
	rng  *rand.Rand
	pods []*mixPod
	seq  uint64 // seqs handed out so far (approximate intent_seq values)
}

type mixPod struct {
	key, uid, sandbox, image string
	containers               []string
	ids                      []string
	attempt                  []uint32
}

var podNames = []string{
	"kube-system/etcd-node1",
	"kube-system/kube-apiserver-node1",
	"kube-system/kube-controller-manager-node1",
	"kube-system/kube-scheduler-node1",
	"kube-system/kube-proxy-node1",
	"monitoring/node-exporter-node1",
	"ingress/haproxy-node1",
	"default/edge-agent-node1",
}

// NewMix returns a generator seeded with seed.
func NewMix(seed uint64) *Mix {
	m := &Mix{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	for _, key := range podNames {
		name := key[strings.IndexByte(key, '/')+1:]
		base := strings.TrimSuffix(name, "-node1")
		p := &mixPod{
			key:        key,
			uid:        m.uuid(),
			sandbox:    m.hex64(),
			image:      "registry.k8s.io/" + base + ":v1.31.2",
			containers: []string{base},
		}
		if m.rng.IntN(3) == 0 {
			p.containers = append(p.containers, base+"-sidecar")
		}
		for range p.containers {
			p.ids = append(p.ids, m.hex64())
			p.attempt = append(p.attempt, 0)
		}
		m.pods = append(m.pods, p)
	}
	return m
}

func (m *Mix) hex64() string {
	var b [32]byte
	for i := range b {
		b[i] = byte(m.rng.Uint32())
	}
	return hex.EncodeToString(b[:])
}

func (m *Mix) uuid() string {
	h := m.hex64()
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// Next returns the next event of the mix.
func (m *Mix) Next() eventlog.Event {
	m.seq++
	p := m.pods[m.rng.IntN(len(m.pods))]
	c := m.rng.IntN(len(p.containers))
	now := int64(1_760_000_000_000_000_000) + int64(m.seq)*1_000_000
	r := m.rng.IntN(1000)
	switch {
	case r < 400:
		states := []string{"created", "running", "exited"}
		st := states[m.rng.IntN(len(states))]
		ev := &eventpb.ContainerObserved{
			Uid: p.uid, SandboxId: p.sandbox, Container: p.containers[c], ContainerId: p.ids[c],
			Attempt: p.attempt[c], State: st, StartedUnixNano: now - 5_000_000_000,
		}
		if st == "exited" {
			ev.ExitCode = int32(m.rng.IntN(3))
			ev.Reason = "Completed"
			if ev.ExitCode != 0 {
				ev.Reason = "Error"
			}
			ev.FinishedUnixNano = now
			p.ids[c] = m.hex64()
			p.attempt[c]++
		}
		return eventlog.Event{Pod: p.key, Data: ev}
	case r < 600:
		actions := []string{"start-container", "stop-container", "run-sandbox", "remove-container"}
		a := actions[m.rng.IntN(len(actions))]
		ev := &eventpb.Intent{Action: a, Uid: p.uid, Attempt: p.attempt[c], SandboxId: p.sandbox}
		switch a {
		case "start-container":
			ev.Container, ev.Image, ev.Reason = p.containers[c], p.image, "container not running; restart policy Always"
		case "stop-container", "remove-container":
			ev.Container, ev.ContainerId, ev.GracePeriodSeconds, ev.Reason = p.containers[c], p.ids[c], 30, "manifest changed"
		case "run-sandbox":
			ev.Reason = "no ready sandbox"
		}
		return eventlog.Event{Pod: p.key, Data: ev}
	case r < 800:
		ev := &eventpb.Outcome{IntentSeq: m.seq - uint64(1+m.rng.IntN(20)), Ok: true, ContainerId: p.ids[c]}
		if m.rng.IntN(20) == 0 {
			ev.Ok, ev.Error, ev.Reason = false, "rpc error: code = Unknown desc = failed to pull image", "ErrImagePull"
		}
		return eventlog.Event{Pod: p.key, Data: ev}
	case r < 920:
		if m.rng.IntN(4) == 0 {
			p.sandbox = m.hex64()
		}
		return eventlog.Event{Pod: p.key, Data: &eventpb.SandboxObserved{
			Uid: p.uid, SandboxId: p.sandbox, State: "ready", Ip: "10.0.0.11", CreatedUnixNano: now - 60_000_000_000,
		}}
	case r < 960:
		return eventlog.Event{Pod: p.key, Data: &eventpb.ContainerGone{Uid: p.uid, ContainerId: p.ids[c], Container: p.containers[c]}}
	case r < 985:
		return eventlog.Event{Pod: p.key, Data: &eventpb.MirrorObserved{MirrorUid: p.uid, ConfigMirror: p.uid[:32], Phase: "Running"}}
	case r < 995:
		return eventlog.Event{Data: &eventpb.SourceSynced{Source: "file", Location: "/etc/kubernetes/manifests", Manifests: uint32(len(m.pods))}}
	default:
		raw := m.manifest(p)
		podJSON := []byte(fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":%q,"uid":%q,"annotations":{"kubernetes.io/config.hash":%q}},"spec":%s}`,
			p.key, p.uid, p.uid[:32], raw[strings.IndexByte(raw, '{'):]))
		return eventlog.Event{Pod: p.key, Blobs: [][]byte{[]byte(raw)}, Data: &eventpb.ManifestAdded{
			Source: "file", Path: "/etc/kubernetes/manifests/" + p.containers[0] + ".yaml",
			ContentHash: m.hex64(), Uid: p.uid, ConfigHash: p.uid[:32], PodJson: podJSON, UidAlgorithm: "v1",
		}}
	}
}

// manifest returns ~1.8 KB of plausible pod spec text with a random part,
// so that changed manifests are distinct blobs.
func (m *Mix) manifest(p *mixPod) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"containers":[{"name":%q,"image":%q,"command":[`, p.containers[0], p.image)
	for i := 0; i < 30; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"--flag-%d=%s"`, i, m.hex64()[:m.rng.IntN(40)+4])
	}
	b.WriteString(`],"resources":{"requests":{"cpu":"250m","memory":"256Mi"}},"livenessProbe":{"httpGet":{"path":"/livez","port":6443,"scheme":"HTTPS"},"initialDelaySeconds":10,"timeoutSeconds":15,"failureThreshold":8}}],"hostNetwork":true,"priorityClassName":"system-node-critical"}`)
	return b.String()
}
