package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

// seedLogs writes a log with pod default/web-node1 (uid u1): containers
// app (instances 0 and 1 exited, 2 running) and side (running), init
// container setup; and pod default/solo-node1 (uid u2) with one container
// that has not started. It returns the log file and a pod log root with
// the instances' CRI logs.
func seedLogs(t *testing.T) (db, root string) {
	t.Helper()
	dir := t.TempDir()
	db, root = filepath.Join(dir, "ledger.db"), filepath.Join(dir, "pods")
	l, err := eventlog.Open(db, eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	web := `{"metadata":{"name":"web-node1","namespace":"default","uid":"u1"},"spec":{"initContainers":[{"name":"setup","image":"busybox"}],"containers":[{"name":"app","image":"busybox"},{"name":"side","image":"busybox"}]}}`
	solo := `{"metadata":{"name":"solo-node1","namespace":"default","uid":"u2"},"spec":{"containers":[{"name":"only","image":"busybox"}]}}`
	const w = "default/web-node1"
	evs := []eventlog.Event{
		{Data: &pb.AgentStarted{Version: "test", NodeName: "node1", Flags: []string{"--pod-logs-dir=" + root}}},
		{Pod: w, Blobs: [][]byte{[]byte("raw")}, Data: &pb.ManifestAdded{Source: "file", Path: "/m/web.yaml", ContentHash: "h1", Uid: "u1", ConfigHash: "u1", PodJson: []byte(web)}},
		{Pod: "default/solo-node1", Blobs: [][]byte{[]byte("raw2")}, Data: &pb.ManifestAdded{Source: "file", Path: "/m/solo.yaml", ContentHash: "h2", Uid: "u2", ConfigHash: "u2", PodJson: []byte(solo)}},
		{Pod: w, Data: &pb.SandboxObserved{Uid: "u1", SandboxId: "sb1", State: "ready"}},
		{Pod: w, Data: &pb.ContainerObserved{Uid: "u1", SandboxId: "sb1", Container: "setup", ContainerId: "i0", State: "exited", Init: true}},
		{Pod: w, Data: &pb.ContainerObserved{Uid: "u1", SandboxId: "sb1", Container: "app", ContainerId: "a1", Attempt: 1, State: "exited", ExitCode: 1, StartedUnixNano: 1, FinishedUnixNano: 2}},
		{Pod: w, Data: &pb.ContainerObserved{Uid: "u1", SandboxId: "sb1", Container: "app", ContainerId: "a2", Attempt: 2, State: "running", StartedUnixNano: 3}},
		{Pod: w, Data: &pb.ContainerObserved{Uid: "u1", SandboxId: "sb1", Container: "side", ContainerId: "s0", State: "running", StartedUnixNano: 3}},
	}
	for _, e := range evs {
		if _, err := l.Append(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	podDir := filepath.Join(root, "default_web-node1_u1")
	for path, content := range map[string]string{
		"app/0.log":                 "2026-01-02T15:00:00Z stdout F zeroth\n", // an instance the runtime no longer has
		"app/1.log.20260102-150000": "2026-01-02T15:00:01Z stdout F previous one\n",
		"app/1.log":                 "2026-01-02T15:00:02Z stdout P previous \n2026-01-02T15:00:02Z stdout F two\n",
		"app/2.log.20260102-150100": "2026-01-02T15:01:00Z stdout F current one\n",
		"app/2.log":                 "2026-01-02T15:01:01Z stderr F current two\n2026-01-02T15:01:02Z stdout F current three\n",
		"side/0.log":                "2026-01-02T15:01:00Z stdout F side\n",
		"setup/0.log":               "2026-01-02T15:00:00Z stdout F setting up\n",
	} {
		p := filepath.Join(podDir, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return db, root
}

func TestLogsPrintsTheInstanceAskedFor(t *testing.T) {
	db, root := seedLogs(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"current, rotated files first", []string{"-c", "app"}, "current one\ncurrent two\ncurrent three\n"},
		{"previous", []string{"-c", "app", "--previous"}, "previous one\nprevious two\n"},
		{"tail", []string{"-c", "app", "--tail", "1"}, "current three\n"},
		{"timestamps", []string{"-c", "app", "--tail", "1", "--timestamps"}, "2026-01-02T15:01:02Z current three\n"},
		{"init container", []string{"-c", "setup"}, "setting up\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := cli(t, append([]string{"logs", "default/web-node1", "--db", db, "--pod-logs-dir", root}, tc.args...)...)
			if code != 0 || out != tc.want {
				t.Fatalf("exit %d, stdout %q (stderr %q), want %q", code, out, errOut, tc.want)
			}
		})
	}
}

func TestLogsErrorsNameWhatIsWrong(t *testing.T) {
	db, root := seedLogs(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown pod", []string{"default/nope"}, "pod default/nope is not known to the agent"},
		{"ambiguous container", []string{"default/web-node1"}, "pod default/web-node1 has 2 containers; name one with -c: app, side (init: setup)"},
		{"unknown container", []string{"default/web-node1", "-c", "db"}, `container "db" is not in pod default/web-node1; choose one of: app, side (init: setup)`},
		{"no previous", []string{"default/web-node1", "-c", "side", "-p"}, `previous terminated container "side" in pod default/web-node1 not found`},
		{"not started", []string{"default/solo-node1"}, `container "only" in pod default/solo-node1 is waiting to start: ContainerCreating`},
		{"not NS/NAME", []string{"web"}, `pod "web": want NAMESPACE/NAME`},
		{"follow offline", []string{"default/web-node1", "-c", "app", "-f"}, "--follow needs a running agent"},
		{"bad tail", []string{"default/web-node1", "--tail", "-2"}, "--tail -2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := cli(t, append([]string{"logs", "--db", db, "--pod-logs-dir", root}, tc.args...)...)
			if code != 2 || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
				t.Fatalf("exit %d, stderr %q; want exit 2 and one line saying %q", code, errOut, tc.want)
			}
		})
	}
	_, errOut, code := cli(t, "logs", "default/web-node1", "-c", "app", "--db", db, "--pod-logs-dir", filepath.Join(root, "elsewhere"))
	if code != 2 || !strings.Contains(errOut, "another --pod-logs-dir") {
		t.Fatalf("wrong --pod-logs-dir: exit %d, %q", code, errOut)
	}
}

// TestLogsFindsTheAgentsLogRoot: without --pod-logs-dir, logs reads where the
// agent's last start recorded it wrote them.
func TestLogsFindsTheAgentsLogRoot(t *testing.T) {
	db, _ := seedLogs(t)
	out, errOut, code := cli(t, "logs", "default/web-node1", "-c", "app", "--tail", "1", "--db", db)
	if code != 0 || out != "current three\n" {
		t.Fatalf("exit %d, out %q, err %q", code, out, errOut)
	}
}
