package replay_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector/projectortest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != string(got) {
		t.Errorf("%s differs from the golden file (run with -update to accept):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// node is a recorded node history: the agent, its runtime and pods, written
// with the vocabulary the agent uses.
type node struct {
	*projectortest.Scenario
}

func newNode(t *testing.T, apiserver bool) *node {
	t.Helper()
	n := &node{Scenario: projectortest.NewScenario(t, filepath.Join(t.TempDir(), "ledger.db"))}
	n.agentStart(apiserver)
	return n
}

func (n *node) agentStart(apiserver bool) {
	n.Add("", &pb.AgentStarted{Version: "v1.0.0", NodeName: "node1", Pid: 4242, NodeIp: "192.168.1.10",
		Sources: []string{"file /etc/kubernetes/manifests"}, Apiserver: apiserver})
	n.After(50 * time.Millisecond)
	n.Add("", &pb.RuntimeConnected{Endpoint: "unix:///run/containerd/containerd.sock", RuntimeName: "containerd", RuntimeVersion: "1.7.22"})
	n.After(20 * time.Millisecond)
	n.Add("", &pb.SourceSynced{Source: "file", Location: "/etc/kubernetes/manifests", Manifests: 3})
	if apiserver {
		n.After(30 * time.Millisecond)
		n.Add("", &pb.ApiserverConnected{Host: "https://10.0.0.1:6443", NodeUid: "node-uid-1", ServerVersion: "v1.31.0"})
		n.Add("", &pb.MirrorsSynced{})
	}
}

func path(key string) string {
	_, name, _ := cut(key)
	return "/etc/kubernetes/manifests/" + name + ".yaml"
}

func cut(key string) (string, string, bool) {
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			return key[:i], key[i+1:], true
		}
	}
	return "", key, false
}

func cid(uid, name string, attempt uint32) string { return fmt.Sprintf("%s-%s-%d", uid, name, attempt) }

// manifest records the pod's manifest (added, or changed from prevUID).
func (n *node) manifest(spec projectortest.PodSpec, prevUID string) {
	body := projectortest.PodJSON(spec)
	if prevUID == "" {
		n.Add(spec.Key, &pb.ManifestAdded{Source: "file", Path: path(spec.Key), ContentHash: "h-" + spec.UID, Uid: spec.UID, ConfigHash: spec.UID, PodJson: body, UidAlgorithm: "v1"})
		return
	}
	n.Add(spec.Key, &pb.ManifestChanged{Source: "file", Path: path(spec.Key), ContentHash: "h-" + spec.UID, Uid: spec.UID, ConfigHash: spec.UID, PodJson: body,
		UidAlgorithm: "v1", PreviousUid: prevUID, PreviousContentHash: "h-" + prevUID})
}

// intent records an intent and its outcome d later (nil outcome: none yet).
func (n *node) act(pod string, in *pb.Intent, d time.Duration, out *pb.Outcome) uint64 {
	seq := n.Add(pod, in)
	if out != nil {
		n.After(d)
		out.IntentSeq = seq
		n.Add(pod, out)
	}
	return seq
}

// sandbox runs the pod's sandbox.
func (n *node) sandbox(key, uid string) string {
	sb := "sb-" + uid
	n.act(key, &pb.Intent{Action: string(pb.ActionRunSandbox), Uid: uid, Reason: "no ready sandbox"}, 180*time.Millisecond,
		&pb.Outcome{Ok: true, SandboxId: sb, Ip: "10.88.77.5"})
	n.Add(key, &pb.SandboxObserved{Uid: uid, SandboxId: sb, State: pb.StateReady, Ip: "10.88.77.5", CreatedUnixNano: n.Now.UnixNano()})
	return sb
}

// start starts one container (attempt) and sees it running.
func (n *node) start(key, uid, name, image string, attempt uint32) string {
	id := cid(uid, name, attempt)
	n.After(10 * time.Millisecond)
	n.act(key, &pb.Intent{Action: string(pb.ActionStartContainer), Uid: uid, Container: name, Attempt: attempt, Image: image, SandboxId: "sb-" + uid,
		GracePeriodSeconds: 30, Reason: "container not running"}, 160*time.Millisecond, &pb.Outcome{Ok: true, ContainerId: id, ImageRef: "sha256:0123"})
	n.Add(key, &pb.ContainerObserved{Uid: uid, SandboxId: "sb-" + uid, Container: name, ContainerId: id, Attempt: attempt, State: pb.StateRunning,
		StartedUnixNano: n.Now.UnixNano()})
	return id
}

// up brings a pod up: manifest, sandbox, every container running.
func (n *node) up(spec projectortest.PodSpec) {
	n.manifest(spec, "")
	n.After(5 * time.Millisecond)
	n.sandbox(spec.Key, spec.UID)
	for _, c := range spec.Containers {
		n.start(spec.Key, spec.UID, c.Name, c.Image, 0)
	}
}

// exit records a container's exit after it ran since started.
func (n *node) exit(key, uid, name string, attempt uint32, code int32, reason string, started time.Time) {
	n.Add(key, &pb.ContainerObserved{Uid: uid, SandboxId: "sb-" + uid, Container: name, ContainerId: cid(uid, name, attempt), Attempt: attempt,
		State: pb.StateExited, ExitCode: code, Reason: reason, StartedUnixNano: started.UnixNano(), FinishedUnixNano: n.Now.UnixNano()})
}

// teardown stops and removes every container and the sandbox of uid.
func (n *node) teardown(key, uid string, grace int64, containers []string, attempts []uint32, why string) {
	for i, name := range containers {
		id := cid(uid, name, attempts[i])
		n.After(10 * time.Millisecond)
		started := n.Now
		n.act(key, &pb.Intent{Action: string(pb.ActionStopContainer), Uid: uid, Container: name, ContainerId: id, SandboxId: "sb-" + uid,
			GracePeriodSeconds: grace, Reason: why}, 800*time.Millisecond, &pb.Outcome{Ok: true})
		n.Add(key, &pb.ContainerObserved{Uid: uid, SandboxId: "sb-" + uid, Container: name, ContainerId: id, Attempt: attempts[i], State: pb.StateExited,
			ExitCode: 137, Reason: "Killed", StartedUnixNano: started.UnixNano(), FinishedUnixNano: n.Now.UnixNano()})
		n.act(key, &pb.Intent{Action: string(pb.ActionRemoveContainer), Uid: uid, Container: name, ContainerId: id, Reason: why}, 40*time.Millisecond,
			&pb.Outcome{Ok: true})
		n.Add(key, &pb.ContainerGone{Uid: uid, ContainerId: id, Container: name})
	}
	sb := "sb-" + uid
	n.act(key, &pb.Intent{Action: string(pb.ActionStopSandbox), Uid: uid, SandboxId: sb, Reason: why}, 90*time.Millisecond, &pb.Outcome{Ok: true})
	n.act(key, &pb.Intent{Action: string(pb.ActionRemoveSandbox), Uid: uid, SandboxId: sb, Reason: why, RemovePodData: true}, 60*time.Millisecond, &pb.Outcome{Ok: true})
	n.Add(key, &pb.SandboxGone{Uid: uid, SandboxId: sb})
}

// --- the recorded cases --------------------------------------------------------

var (
	apiserverV1 = projectortest.PodSpec{Key: "kube-system/kube-apiserver-node1", UID: "a1b2c3d4e5f60001", HostNetwork: true,
		Containers: []projectortest.ContainerSpec{{Name: "kube-apiserver", Image: "registry.k8s.io/kube-apiserver:v1.31.0",
			Command: []string{"kube-apiserver", "--etcd-servers=https://127.0.0.1:2379"}}}}
	apiserverV2 = projectortest.PodSpec{Key: "kube-system/kube-apiserver-node1", UID: "5e7a9b0c1d2e0002", HostNetwork: true,
		Containers: []projectortest.ContainerSpec{{Name: "kube-apiserver", Image: "registry.k8s.io/kube-apiserver:v1.31.1",
			Command: []string{"kube-apiserver", "--etcd-servers=https://127.0.0.1:2379", "--enable-admission-plugins=NodeRestrictionn"}}}}
	apiserverV3 = projectortest.PodSpec{Key: "kube-system/kube-apiserver-node1", UID: "9f1e2d3c4b5a0003", HostNetwork: true,
		Containers: []projectortest.ContainerSpec{{Name: "kube-apiserver", Image: "registry.k8s.io/kube-apiserver:v1.31.1",
			Command: []string{"kube-apiserver", "--etcd-servers=https://127.0.0.1:2379", "--enable-admission-plugins=NodeRestriction"}}}}
	etcd = projectortest.PodSpec{Key: "kube-system/etcd-node1", UID: "e7c0e7c0e7c00001", HostNetwork: true,
		Containers: []projectortest.ContainerSpec{{Name: "etcd", Image: "registry.k8s.io/etcd:3.5.15-0"}}}
	web = projectortest.PodSpec{Key: "default/web-node1", UID: "3eb03eb03eb00001",
		Containers: []projectortest.ContainerSpec{{Name: "web", Image: "registry.example.com/team/web:2.0"}}}
	cache = projectortest.PodSpec{Key: "default/cache-node1", UID: "cac4ecac4eca0001", Grace: 60,
		Containers: []projectortest.ContainerSpec{{Name: "redis", Image: "docker.io/library/redis:7"}, {Name: "exporter", Image: "docker.io/oliver006/redis_exporter:v1.62"}}}
)

// crashLoop: the apiserver ran two days, an edit with a typo in a flag
// makes the new version exit 1 three times in a minute.
func crashLoop(n *node) (at time.Time) {
	n.up(apiserverV1)
	n.After(49 * time.Hour)
	n.manifest(apiserverV2, apiserverV1.UID)
	n.teardown(apiserverV2.Key, apiserverV1.UID, 30, []string{"kube-apiserver"}, []uint32{0}, "replaced by a new version of the pod")
	n.After(20 * time.Millisecond)
	n.sandbox(apiserverV2.Key, apiserverV2.UID)
	name, image := "kube-apiserver", apiserverV2.Containers[0].Image
	for attempt, delay := range []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second} {
		n.start(apiserverV2.Key, apiserverV2.UID, name, image, uint32(attempt))
		started := n.Now
		n.After(4 * time.Second)
		n.exit(apiserverV2.Key, apiserverV2.UID, name, uint32(attempt), 1, "Error", started)
		if attempt < 2 {
			n.After(delay)
		}
	}
	return n.Now.Add(10 * time.Second)
}

// rejectedEdit: etcd runs; an edit that drops the image is rejected.
func rejectedEdit(n *node) time.Time {
	n.up(etcd)
	n.After(3 * time.Hour)
	n.Add(etcd.Key, &pb.ManifestRejected{Source: "file", Path: path(etcd.Key), ContentHash: "h-bad",
		Reason: "spec.containers[0].image: Required value"})
	return n.Now.Add(5 * time.Minute)
}

// imagePull: the web image does not exist in the registry.
func imagePull(n *node) time.Time {
	n.manifest(web, "")
	n.sandbox(web.Key, web.UID)
	for i := 0; i < 3; i++ {
		n.After(10 * time.Millisecond)
		n.act(web.Key, &pb.Intent{Action: string(pb.ActionStartContainer), Uid: web.UID, Container: "web", Image: web.Containers[0].Image,
			SandboxId: "sb-" + web.UID, GracePeriodSeconds: 30, Reason: "container not running"}, 1200*time.Millisecond,
			&pb.Outcome{Ok: false, Reason: "ErrImagePull", Error: `rpc error: code = NotFound desc = failed to pull and unpack image "registry.example.com/team/web:2.0": not found`})
		n.After(time.Duration(10<<i) * time.Second)
	}
	return n.Now.Add(-5 * time.Second)
}

// pendingRemoval: the cache's manifest is removed; its first container is
// stopping within its 60 s grace period.
func pendingRemoval(n *node) time.Time {
	n.up(cache)
	n.After(6 * time.Hour)
	n.Add(cache.Key, &pb.ManifestRemoved{Source: "file", Path: path(cache.Key), Uid: cache.UID})
	n.After(15 * time.Millisecond)
	n.Add(cache.Key, &pb.Intent{Action: string(pb.ActionStopContainer), Uid: cache.UID, Container: "redis", ContainerId: cid(cache.UID, "redis", 0),
		SandboxId: "sb-" + cache.UID, GracePeriodSeconds: 60, Reason: "pod no longer desired"})
	return n.Now.Add(20 * time.Second)
}

// runtimeLost: etcd runs; containerd stops answering.
func runtimeLost(n *node) time.Time {
	n.up(etcd)
	n.After(90 * time.Minute)
	n.Add("", &pb.RuntimeDisconnected{Endpoint: "unix:///run/containerd/containerd.sock",
		Reason: "rpc error: code = Unavailable desc = connection error: dial unix /run/containerd/containerd.sock: connect: connection refused"})
	return n.Now.Add(2 * time.Minute)
}

// mirrorApiserverDown: etcd and its mirror are in sync; the apiserver goes away.
func mirrorApiserverDown(n *node) time.Time {
	n.up(etcd)
	n.After(300 * time.Millisecond)
	n.act(etcd.Key, &pb.Intent{Action: string(pb.ActionMirrorCreate), Uid: etcd.UID, ConfigHash: etcd.UID, Reason: "no mirror pod"}, 25*time.Millisecond,
		&pb.Outcome{Ok: true, MirrorUid: "m-etcd-1"})
	n.Add(etcd.Key, &pb.MirrorObserved{MirrorUid: "m-etcd-1", ConfigMirror: etcd.UID, Phase: "Pending"})
	n.After(45 * time.Minute)
	n.Add("", &pb.ApiserverDisconnected{Host: "https://10.0.0.1:6443", Reason: "dial tcp 10.0.0.1:6443: connect: connection refused"})
	n.After(time.Second)
	// The container restarted meanwhile: the mirror's status is behind.
	started := n.Now.Add(-45 * time.Minute)
	n.exit(etcd.Key, etcd.UID, "etcd", 0, 2, "Error", started)
	n.After(10 * time.Second)
	n.start(etcd.Key, etcd.UID, "etcd", etcd.Containers[0].Image, 1)
	return n.Now.Add(30 * time.Second)
}

// livenessKill: etcd runs for an hour, hangs; its liveness probe fails, the
// planner stops it and it is restarted. Then its readiness probe fails.
func livenessKill(n *node) time.Time {
	n.up(etcd)
	started := n.Now
	n.After(time.Hour)
	name := etcd.Containers[0].Name
	id := cid(etcd.UID, name, 0)
	n.Add(etcd.Key, &pb.ContainerProbed{Uid: etcd.UID, Container: name, ContainerId: id, Probe: string(pb.ProbeLiveness),
		Result: string(pb.ProbeFailure), Output: "HTTP probe failed with statuscode: 503", Consecutive: 8})
	n.act(etcd.Key, &pb.Intent{Action: string(pb.ActionStopContainer), Uid: etcd.UID, Container: name, ContainerId: id, SandboxId: "sb-" + etcd.UID,
		GracePeriodSeconds: 30, Reason: "liveness probe failed"}, 500*time.Millisecond, &pb.Outcome{Ok: true})
	n.exit(etcd.Key, etcd.UID, name, 0, 137, "Killed", started)
	n.After(10 * time.Second)
	id2 := n.start(etcd.Key, etcd.UID, name, etcd.Containers[0].Image, 1)
	n.After(30 * time.Second)
	n.Add(etcd.Key, &pb.ContainerProbed{Uid: etcd.UID, Container: name, ContainerId: id2, Probe: string(pb.ProbeReadiness),
		Result: string(pb.ProbeFailure), Output: "HTTP probe failed with statuscode: 500", Consecutive: 3})
	return n.Now.Add(5 * time.Second)
}
