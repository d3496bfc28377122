package projector_test

import (
	"testing"
	"time"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector"
	"github.com/ledgerlet/ledgerlet/projector/projectortest"
)

// TestHostNetworkPodShowsTheNodeIP: as the kubelet does, a pod on the
// host network shows the node's address; a pod on the pod network shows
// its sandbox's, and none before it has one.
func TestHostNetworkPodShowsTheNodeIP(t *testing.T) {
	host := projectortest.PodSpec{Key: "kube-system/etcd-node1", UID: "h1", HostNetwork: true,
		Containers: []projectortest.ContainerSpec{{Name: "etcd", Image: "etcd"}}}
	podnet := projectortest.PodSpec{Key: "default/web-node1", UID: "p1",
		Containers: []projectortest.ContainerSpec{{Name: "web", Image: "web"}}}
	s := projector.New()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, e := range []eventlog.Event{
		{Data: &pb.AgentStarted{NodeName: "node1", NodeIp: "192.168.1.10"}},
		{Pod: host.Key, Data: &pb.ManifestAdded{Source: "file", Path: "/m/etcd.yaml", Uid: "h1", ConfigHash: "h1", PodJson: projectortest.PodJSON(host)}},
		{Pod: podnet.Key, Data: &pb.ManifestAdded{Source: "file", Path: "/m/web.yaml", Uid: "p1", ConfigHash: "p1", PodJson: projectortest.PodJSON(podnet)}},
		{Pod: host.Key, Data: &pb.SandboxObserved{Uid: "h1", SandboxId: "s1", State: pb.StateReady}},
	} {
		e.Seq, e.Time = uint64(i+1), at
		s.Apply(e)
	}
	ips := map[string]string{}
	for _, v := range s.Views() {
		ips[v.Namespace+"/"+v.Name] = v.IP
	}
	if ips[host.Key] != "192.168.1.10" || ips[podnet.Key] != "" {
		t.Fatalf("IPs %v: want the node's for the host-network pod, none for the other", ips)
	}
	s.Apply(eventlog.Event{Seq: 5, Time: at, Pod: podnet.Key, Data: &pb.SandboxObserved{Uid: "p1", SandboxId: "s2", State: pb.StateReady, Ip: "10.88.77.5"}})
	for _, v := range s.Views() {
		if v.Name == "web-node1" && v.IP != "10.88.77.5" {
			t.Fatalf("pod-network pod shows %q, want its sandbox's 10.88.77.5", v.IP)
		}
	}
}
