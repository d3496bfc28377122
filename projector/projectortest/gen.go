// Package projectortest generates realistic event streams for property tests
// and benchmarks of the projector, replay and eventlog packages.
package projectortest

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

// Generator produces a plausible node history: a few dozen static pods whose
// containers start, crash and restart, with the intents, outcomes and
// observations the agent would record, and the occasional manifest edit,
// agent restart or runtime hiccup.
type Generator struct {
	rng     *rand.Rand
	seq     uint64
	now     time.Time
	pods    []*genPod
	pending []pendingIntent  // intents awaiting their outcome, oldest first
	gone    []eventlog.Event // removals the agent would observe next
	maxGap  int              // milliseconds; gaps between events are uniform in [1, maxGap]
}

type pendingIntent struct {
	seq uint64
	pod *genPod
	c   int
}

type genPod struct {
	key, uid, path string
	gen            int
	sandbox        string
	containers     []string
	attempt        []uint32
	ids            []string // the current instance of each container, "" if none
	dead           []string // the last exited instance of each container, "" if none
}

// New returns a generator with npods pods, deterministic for seed.
func New(seed uint64, npods int) *Generator {
	g := &Generator{
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), maxGap: 2000,
	}
	for i := 0; i < npods; i++ {
		ns := "default"
		if i%3 == 0 {
			ns = "kube-system"
		}
		p := &genPod{
			key:  fmt.Sprintf("%s/pod%02d-node1", ns, i),
			path: fmt.Sprintf("/etc/kubernetes/manifests/pod%02d.yaml", i),
		}
		n := 1 + i%3
		for c := 0; c < n; c++ {
			p.containers = append(p.containers, fmt.Sprintf("c%d", c))
		}
		p.attempt = make([]uint32, n)
		p.ids = make([]string, n)
		p.dead = make([]string, n)
		g.pods = append(g.pods, p)
	}
	return g
}

func (g *Generator) hex(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.rng.Uint32())
	}
	return hex.EncodeToString(b)
}

func (g *Generator) podJSON(p *genPod) []byte {
	ns, name, _ := strings.Cut(p.key, "/")
	var cs []string
	for _, c := range p.containers {
		cs = append(cs, fmt.Sprintf(`{"name":%q,"image":"localhost/busybox:1.36","command":["sh","-c","while true; do echo %s; sleep 5; done"],"resources":{},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}`, c, strings.Repeat("x", 40)))
	}
	return []byte(fmt.Sprintf(`{"metadata":{"name":%q,"namespace":%q,"uid":%q,"annotations":{"kubernetes.io/config.hash":%q,"kubernetes.io/config.source":"file"}},"spec":{"containers":[%s],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","nodeName":"node1","hostNetwork":true},"status":{"phase":"Pending"}}`,
		name, ns, p.uid, p.uid, strings.Join(cs, ",")))
}

// Pace sets the mean time between events. The default, about a second,
// is a busy node (30 pods all crash-looping write about 70k events a day);
// a node where a few pods misbehave writes one every several seconds.
func (g *Generator) Pace(mean time.Duration) *Generator {
	g.maxGap = max(int(2*mean/time.Millisecond), 2)
	return g
}

// Next returns the next event, with Seq and Time set.
func (g *Generator) Next() eventlog.Event {
	g.seq++
	g.now = g.now.Add(time.Duration(1+g.rng.IntN(g.maxGap)) * time.Millisecond)
	e := g.next()
	e.Seq, e.Time = g.seq, g.now
	return e
}

// Events returns the next n events.
func (g *Generator) Events(n int) []eventlog.Event {
	out := make([]eventlog.Event, n)
	for i := range out {
		out[i] = g.Next()
	}
	return out
}

func (g *Generator) next() eventlog.Event {
	if len(g.gone) > 0 {
		e := g.gone[0]
		g.gone = g.gone[1:]
		return e
	}
	p := g.pods[g.rng.IntN(len(g.pods))]
	if p.uid == "" || g.rng.IntN(2000) == 0 {
		return g.manifest(p)
	}
	r := g.rng.IntN(1000)
	switch {
	case r < 2:
		return eventlog.Event{Data: &pb.AgentStarted{Version: "v0.1.0", NodeName: "node1", Flags: []string{"--pod-manifest-path=/etc/kubernetes/manifests"}, Pid: int64(g.rng.IntN(1 << 20))}}
	case r < 3:
		return eventlog.Event{Data: &pb.AgentStopped{Reason: "signal: terminated"}}
	case r < 5:
		return eventlog.Event{Data: &pb.RuntimeConnected{Endpoint: "unix:///run/containerd/containerd.sock", RuntimeName: "containerd", RuntimeVersion: "1.6.20"}}
	case r < 6:
		return eventlog.Event{Data: &pb.RuntimeDisconnected{Endpoint: "unix:///run/containerd/containerd.sock", Reason: "connection refused"}}
	case r < 8:
		return eventlog.Event{Pod: p.key, Data: &pb.ManifestRejected{Source: "file", Path: p.path, ContentHash: g.hex(32), Reason: "spec.containers[0].image: Required value"}}
	case r < 10:
		return eventlog.Event{Pod: p.key, Data: &pb.MirrorObserved{MirrorUid: g.hex(16), ConfigMirror: p.uid, Phase: "Running"}}
	case r < 12:
		if p.sandbox != "" {
			g.gone = append(g.gone, eventlog.Event{Pod: p.key, Data: &pb.SandboxGone{Uid: p.uid, SandboxId: p.sandbox}})
		}
		p.sandbox = g.hex(32)
		return eventlog.Event{Pod: p.key, Data: &pb.SandboxObserved{Uid: p.uid, SandboxId: p.sandbox, State: "ready", Ip: fmt.Sprintf("10.88.77.%d", 2+g.rng.IntN(250)), CreatedUnixNano: g.now.UnixNano()}}
	case r < 640 && (len(g.pending) == 0 || (r < 360 && len(g.pending) < 3)):
		c := g.rng.IntN(len(p.containers))
		g.pending = append(g.pending, pendingIntent{g.seq, p, c})
		ev := &pb.Intent{Action: "StartContainer", Uid: p.uid, Container: p.containers[c], Attempt: p.attempt[c], Image: "localhost/busybox:1.36", SandboxId: p.sandbox, Reason: "container not running"}
		return eventlog.Event{Pod: p.key, Data: ev}
	case r < 640:
		// Outcomes answer the intents in order, as the agent's do.
		in := g.pending[0]
		g.pending = g.pending[1:]
		iseq, p, c := in.seq, in.pod, in.c
		if p.uid == "" { // the pod went away meanwhile
			return eventlog.Event{Pod: p.key, Data: &pb.Outcome{IntentSeq: iseq, Ok: false, Error: "pod removed"}}
		}
		g.retire(p, c)
		p.ids[c] = g.hex(32)
		return eventlog.Event{Pod: p.key, Data: &pb.Outcome{IntentSeq: iseq, Ok: g.rng.IntN(20) != 0, ContainerId: p.ids[c]}}
	default:
		c := g.rng.IntN(len(p.containers))
		if p.ids[c] == "" {
			p.ids[c] = g.hex(32) // found by a relist
		}
		ev := &pb.ContainerObserved{Uid: p.uid, SandboxId: p.sandbox, Container: p.containers[c], ContainerId: p.ids[c], Attempt: p.attempt[c], StartedUnixNano: g.now.UnixNano()}
		if g.rng.IntN(2) == 0 {
			ev.State = "running"
		} else {
			ev.State, ev.ExitCode, ev.Reason, ev.FinishedUnixNano = "exited", 1, "Error", g.now.UnixNano()
			p.attempt[c]++
			g.retire(p, c)
		}
		return eventlog.Event{Pod: p.key, Data: ev}
	}
}

// retire makes container c's current instance its dead one; the previous
// dead one is removed, as the agent keeps one dead instance per container.
func (g *Generator) retire(p *genPod, c int) {
	if p.ids[c] == "" {
		return
	}
	if p.dead[c] != "" {
		g.gone = append(g.gone, eventlog.Event{Pod: p.key, Data: &pb.ContainerGone{Uid: p.uid, ContainerId: p.dead[c], Container: p.containers[c]}})
	}
	p.dead[c], p.ids[c] = p.ids[c], ""
}

func (g *Generator) manifest(p *genPod) eventlog.Event {
	prevUID := p.uid
	// The old version's containers and sandbox go (the agent tears them down).
	for i, id := range append(append([]string(nil), p.ids...), p.dead...) {
		if id != "" {
			g.gone = append(g.gone, eventlog.Event{Pod: p.key, Data: &pb.ContainerGone{Uid: prevUID, ContainerId: id, Container: p.containers[i%len(p.containers)]}})
		}
	}
	if p.sandbox != "" {
		g.gone = append(g.gone, eventlog.Event{Pod: p.key, Data: &pb.SandboxGone{Uid: prevUID, SandboxId: p.sandbox}})
	}
	p.ids, p.dead, p.sandbox = make([]string, len(p.containers)), make([]string, len(p.containers)), ""
	p.gen++
	p.uid = g.hex(16)
	hash := g.hex(32)
	body := g.podJSON(p)
	if prevUID == "" {
		return eventlog.Event{Pod: p.key, Blobs: [][]byte{body}, Data: &pb.ManifestAdded{Source: "file", Path: p.path, ContentHash: hash, Uid: p.uid, ConfigHash: p.uid, PodJson: body, UidAlgorithm: "v1"}}
	}
	if g.rng.IntN(4) == 0 {
		p.uid = ""
		return eventlog.Event{Pod: p.key, Data: &pb.ManifestRemoved{Source: "file", Path: p.path, Uid: prevUID}}
	}
	return eventlog.Event{Pod: p.key, Blobs: [][]byte{body}, Data: &pb.ManifestChanged{Source: "file", Path: p.path, ContentHash: hash, Uid: p.uid, ConfigHash: p.uid, PodJson: body, UidAlgorithm: "v1", PreviousUid: prevUID}}
}

// Clone deep-copies an event's payload, so tests can compare independently.
func Clone(e eventlog.Event) eventlog.Event {
	e.Data = proto.Clone(e.Data)
	return e
}
