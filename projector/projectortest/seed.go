package projectortest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector"
)

// SeedLog writes a log with a pod, its containers and a snapshot, offline.
func SeedLog(t testing.TB, path string) {
	t.Helper()
	l, err := eventlog.Open(path, eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	spec := `{"metadata":{"name":"web-node1","namespace":"default","uid":"u1"},"spec":{"containers":[{"name":"httpd","image":"localhost/busybox:1.36"}]}}`
	spec2 := strings.Replace(spec, "busybox:1.36", "busybox:1.37", 1)
	evs := []eventlog.Event{
		{Data: &pb.AgentStarted{Version: "test", NodeName: "node1"}},
		{Pod: "default/web-node1", Blobs: [][]byte{[]byte("raw")}, Data: &pb.ManifestAdded{Source: "file", Path: "/m/web.yaml", ContentHash: "h1", Uid: "u1", ConfigHash: "u1", PodJson: []byte(spec)}},
		{Pod: "default/web-node1", Data: &pb.SandboxObserved{Uid: "u1", SandboxId: "sb1", State: "ready", Ip: "10.88.77.9"}},
		{Pod: "default/web-node1", Data: &pb.ContainerObserved{Uid: "u1", SandboxId: "sb1", Container: "httpd", ContainerId: "c1", State: "running"}},
	}
	for _, e := range evs {
		if _, err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(5 * time.Millisecond)
	if _, err := l.Append(ctx, eventlog.Event{Pod: "default/web-node1", Data: &pb.ManifestChanged{Source: "file", Path: "/m/web.yaml", ContentHash: "h2", Uid: "u2", ConfigHash: "u2", PodJson: []byte(spec2), PreviousUid: "u1"}}); err != nil {
		t.Fatal(err)
	}
	st := projector.New()
	if err := l.Read(ctx, 1, 0, func(e eventlog.Event) error { st.Apply(e); return nil }); err != nil {
		t.Fatal(err)
	}
	b, _ := st.Canonical()
	if err := l.SaveSnapshot(ctx, eventlog.Snapshot{Seq: st.Seq, State: b}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, eventlog.Event{Data: &pb.AgentStopped{Reason: "signal"}}); err != nil {
		t.Fatal(err)
	}
}
