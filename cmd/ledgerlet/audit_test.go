package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector/projectortest"
)

// crashLoopLog records a pod that ran, was edited, and crash-loops.
func crashLoopLog(t *testing.T) (db string, s *projectortest.Scenario) {
	t.Helper()
	db = filepath.Join(t.TempDir(), "ledger.db")
	s = projectortest.NewScenario(t, db)
	key := "kube-system/kube-apiserver-node1"
	v1 := projectortest.PodSpec{Key: key, UID: "uid-one-0001", HostNetwork: true,
		Containers: []projectortest.ContainerSpec{{Name: "kube-apiserver", Image: "registry.k8s.io/kube-apiserver:v1.31.0"}}}
	v2 := v1
	v2.UID = "uid-two-0002"
	v2.Containers = []projectortest.ContainerSpec{{Name: "kube-apiserver", Image: "registry.k8s.io/kube-apiserver:v1.31.1"}}
	s.Add("", &pb.AgentStarted{Version: "v1", NodeName: "node1", NodeIp: "192.168.1.10"})
	s.Add("", &pb.RuntimeConnected{Endpoint: "unix:///run/containerd/containerd.sock", RuntimeName: "containerd", RuntimeVersion: "1.7"})
	s.Add(key, &pb.ManifestAdded{Source: "file", Path: "/m/kube-apiserver.yaml", ContentHash: "h1", Uid: v1.UID, ConfigHash: v1.UID, PodJson: projectortest.PodJSON(v1)})
	s.Add(key, &pb.SandboxObserved{Uid: v1.UID, SandboxId: "sb1", State: pb.StateReady})
	s.Add(key, &pb.ContainerObserved{Uid: v1.UID, SandboxId: "sb1", Container: "kube-apiserver", ContainerId: "c1", State: pb.StateRunning, StartedUnixNano: s.Now.UnixNano()})
	s.After(26 * time.Hour)
	s.Add(key, &pb.ManifestChanged{Source: "file", Path: "/m/kube-apiserver.yaml", ContentHash: "h2", Uid: v2.UID, ConfigHash: v2.UID, PodJson: projectortest.PodJSON(v2), PreviousUid: v1.UID})
	s.Add(key, &pb.ContainerObserved{Uid: v1.UID, SandboxId: "sb1", Container: "kube-apiserver", ContainerId: "c1", State: pb.StateExited, ExitCode: 137, Reason: "Killed"})
	s.Add(key, &pb.ContainerGone{Uid: v1.UID, ContainerId: "c1", Container: "kube-apiserver"})
	s.Add(key, &pb.SandboxGone{Uid: v1.UID, SandboxId: "sb1"})
	s.Add(key, &pb.SandboxObserved{Uid: v2.UID, SandboxId: "sb2", State: pb.StateReady})
	for i, id := range []string{"d1", "d2", "d3"} {
		s.After(time.Second)
		started := s.Now
		s.Add(key, &pb.ContainerObserved{Uid: v2.UID, SandboxId: "sb2", Container: "kube-apiserver", ContainerId: id, Attempt: uint32(i), State: pb.StateRunning, StartedUnixNano: started.UnixNano()})
		s.After(3 * time.Second)
		s.Add(key, &pb.ContainerObserved{Uid: v2.UID, SandboxId: "sb2", Container: "kube-apiserver", ContainerId: id, Attempt: uint32(i), State: pb.StateExited,
			ExitCode: 1, Reason: "Error", StartedUnixNano: started.UnixNano(), FinishedUnixNano: s.Now.UnixNano()})
		s.After(time.Duration(10<<i) * time.Second)
	}
	s.Add("", &pb.SourceSynced{Source: "file", Location: "/m", Manifests: 1})
	s.Close()
	return db, s
}

func TestAuditCommandsReadALogOffline(t *testing.T) {
	db, _ := crashLoopLog(t)
	before, _ := os.ReadFile(db)
	pod := "kube-system/kube-apiserver-node1"

	out, errOut, code := cli(t, "timeline", "--db", db, "--text", "--width", "80")
	if code != 0 || !strings.Contains(out, "kube-system/kube-apiserver-node1") || !strings.Contains(out, "~") || !strings.Contains(out, "M") {
		t.Fatalf("timeline --text: exit %d %s\n%s", code, errOut, out)
	}
	page := filepath.Join(t.TempDir(), "t.html")
	out, errOut, code = cli(t, "timeline", "--db", db, "-o", page, "--pod", pod)
	if code != 0 || !strings.Contains(out, "wrote ") {
		t.Fatalf("timeline -o: exit %d %s\n%s", code, errOut, out)
	}
	if b, _ := os.ReadFile(page); !bytes.Contains(b, []byte(`data-lane="pod/kube-system/kube-apiserver-node1/kube-apiserver"`)) {
		t.Fatalf("page lacks the container lane")
	}

	out, errOut, code = cli(t, "explain", pod, "--db", db)
	if code != 0 || !strings.Contains(out, "exited 1") || !strings.Contains(out, "the previous version (uid-one-) ran 26h0m0s without a restart") {
		t.Fatalf("explain: exit %d %s\n%s", code, errOut, out)
	}
	out, _, code = cli(t, "explain", pod, "--db", db, "--at", projectortest.ScenarioStart.Add(time.Hour).Format(time.RFC3339), "-o", "json")
	var x struct{ Status, Summary string }
	if code != 0 || json.Unmarshal([]byte(out), &x) != nil || x.Status != "Running" {
		t.Fatalf("explain --at an hour in: exit %d\n%s", code, out)
	}

	out, _, code = cli(t, "export", "--db", db)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 17 || !strings.HasPrefix(lines[0], `{"seq":1,`) {
		t.Fatalf("export --db: exit %d, %d lines\n%s", code, len(lines), out)
	}

	out, _, code = cli(t, "replay", "step", "--db", db, "--from", "6", "--count", "2")
	if code != 0 || !strings.Contains(out, "#6 ") || !strings.Contains(out, "kube-system/kube-apiserver-node1 uid: uid-one-0001 -> uid-two-0002") ||
		!strings.Contains(out, "+   - image: registry.k8s.io/kube-apiserver:v1.31.1") || !strings.Contains(out, "#7 ") {
		t.Fatalf("replay step: exit %d\n%s", code, out)
	}

	out, _, code = cli(t, "events", "--db", db, "--type", "ManifestAdded,ManifestChanged", "-o", "json")
	if code != 0 || strings.Count(out, "\n") != 2 {
		t.Fatalf("events --type: exit %d\n%s", code, out)
	}
	out, _, code = cli(t, "history", pod, "--db", db, "--type", "ContainerObserved", "--type", "SandboxGone",
		"--since", projectortest.ScenarioStart.Add(time.Hour).Format(time.RFC3339))
	if code != 0 || strings.Count(out, "ContainerObserved") != 7 || strings.Count(out, "SandboxGone") != 1 || strings.Contains(out, "Manifest") {
		t.Fatalf("history --type --since: exit %d\n%s", code, out)
	}

	after, _ := os.ReadFile(db)
	if !bytes.Equal(before, after) {
		t.Fatal("audit commands with --db modified the log file")
	}
}

func TestAuditCommandsRefuseWhatTheyCannotDo(t *testing.T) {
	db, _ := crashLoopLog(t)
	for _, args := range [][]string{
		{"timeline", "--db", db},
		{"timeline", "--db", db, "--text", "-o", "x.html"},
		{"export", "--db", db, "--follow"},
		{"events", "--db", db, "--type", "Bogus"},
		{"explain", "default/nope-node1", "--db", db},
		{"explain", "nope", "--db", db},
		{"replay", "step", "--db", db},
		{"export", "--db", db, "--otlp-endpoint", "ftp://x"},
	} {
		_, errOut, code := cli(t, args...)
		if code != 2 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%v: exit %d, want 2 with one line; stderr %q", args, code, errOut)
		}
	}
}

func TestAuditCommandsAskTheRunningAgent(t *testing.T) {
	dir := t.TempDir()
	startAgent(t, dir)
	out, errOut, code := cli(t, "timeline", "--data-dir", dir, "--text", "--width", "60")
	if code != 0 || !strings.Contains(out, "[agent]") {
		t.Fatalf("timeline from the agent: exit %d %s\n%s", code, errOut, out)
	}
	_, errOut, code = cli(t, "explain", "default/nope-node1", "--data-dir", dir)
	if code != 2 || !strings.Contains(errOut, "unknown pod") {
		t.Fatalf("explain of an unknown pod: exit %d %s", code, errOut)
	}
	out, errOut, code = cli(t, "export", "--data-dir", dir)
	if code != 0 || !strings.HasPrefix(out, `{"seq":1,"time":`) || !strings.Contains(out, `"type":"AgentStarted"`) {
		t.Fatalf("export from the agent: exit %d %s\n%s", code, errOut, out)
	}
}
