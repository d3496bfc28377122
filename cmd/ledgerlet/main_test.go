package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ledgerlet/ledgerlet/cmd/ledgerlet/internal/api"
	"github.com/ledgerlet/ledgerlet/eventlog"
	"github.com/ledgerlet/ledgerlet/projector"
	"github.com/ledgerlet/ledgerlet/projector/projectortest"
)

type podsJSON = api.PodsResponse

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// cli runs one ledgerlet command in-process.
func cli(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = execute(context.Background(), args, &o, &e)
	return o.String(), e.String(), code
}

// agent is a `ledgerlet run` running in-process on a temp data dir.
type agent struct {
	dataDir, manifests string
	cancel             context.CancelFunc
	done               chan int
	stderr             *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startAgent(t *testing.T, dataDir string, extra ...string) *agent {
	t.Helper()
	a := &agent{dataDir: dataDir, manifests: filepath.Join(dataDir, "manifests"), done: make(chan int, 1), stderr: &syncBuffer{}}
	if err := os.MkdirAll(a.manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	args := append([]string{"run", "--data-dir", dataDir, "--pod-manifest-path", a.manifests,
		"--hostname-override", "node1", "--healthz-bind-address", "127.0.0.1:0",
		"--container-runtime-endpoint", "unix://" + filepath.Join(dataDir, "no-runtime.sock")}, extra...)
	go func() {
		a.done <- execute(ctx, args, &bytes.Buffer{}, a.stderr)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dataDir, "ledgerlet.sock")); err == nil {
			break
		}
		select {
		case code := <-a.done:
			t.Fatalf("agent exited with %d: %s", code, a.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent did not open its socket: %s", a.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Cleanup(func() { a.stop(t) })
	return a
}

func (a *agent) stop(t *testing.T) int {
	t.Helper()
	if a.cancel == nil {
		return 0
	}
	a.cancel()
	a.cancel = nil
	select {
	case code := <-a.done:
		return code
	case <-time.After(15 * time.Second):
		t.Fatal("agent did not stop within 15s")
		return -1
	}
}

func jsonEvents(t *testing.T, out string) []map[string]any {
	t.Helper()
	var evs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("events -o json line %q: %v", line, err)
		}
		evs = append(evs, m)
	}
	return evs
}

func types(evs []map[string]any) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e["type"].(string))
	}
	return out
}

func TestAgentRecordsStartAndCleanStop(t *testing.T) {
	dir := t.TempDir()
	a := startAgent(t, dir)

	out, errOut, code := cli(t, "events", "--data-dir", dir, "-o", "json")
	if code != 0 {
		t.Fatalf("events: exit %d: %s", code, errOut)
	}
	evs := jsonEvents(t, out)
	if len(evs) == 0 || evs[0]["type"] != "AgentStarted" || evs[0]["seq"].(float64) != 1 {
		t.Fatalf("first event should be AgentStarted with seq 1, got %v", evs)
	}
	for _, k := range []string{"seq", "time", "type", "pod", "data"} {
		if _, ok := evs[0][k]; !ok {
			t.Errorf("events -o json lacks %q: %v", k, evs[0])
		}
	}
	if data := evs[0]["data"].(map[string]any); data["nodeName"] != "node1" {
		t.Errorf("AgentStarted data %v, want nodeName node1", data)
	}

	if code := a.stop(t); code != 0 {
		t.Fatalf("agent exit %d: %s", code, a.stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "ledgerlet.sock")); !os.IsNotExist(err) {
		t.Errorf("socket left behind after a clean stop")
	}
	out, errOut, code = cli(t, "events", "--db", filepath.Join(dir, "ledger.db"), "-o", "json")
	if code != 0 {
		t.Fatalf("events --db: exit %d: %s", code, errOut)
	}
	got := types(jsonEvents(t, out))
	if got[len(got)-1] != "AgentStopped" {
		t.Fatalf("last event %v, want AgentStopped", got)
	}

	// A second run continues the same log.
	a2 := startAgent(t, dir)
	a2.stop(t)
	out, _, _ = cli(t, "events", "--db", filepath.Join(dir, "ledger.db"), "-o", "json")
	// Only the lifecycle: a run stopped at once may stop before its source lists.
	got = nil
	for _, ty := range types(jsonEvents(t, out)) {
		if strings.HasPrefix(ty, "Agent") {
			got = append(got, ty)
		}
	}
	want := []string{"AgentStarted", "AgentStopped", "AgentStarted", "AgentStopped"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("events %v, want %v", got, want)
	}
}

func TestSocketIsPrivate(t *testing.T) {
	dir := t.TempDir()
	startAgent(t, dir)
	fi, err := os.Stat(filepath.Join(dir, "ledgerlet.sock"))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("socket mode %o, want 600", perm)
	}
}

func TestSecondAgentOnSameDataDirIsRefused(t *testing.T) {
	dir := t.TempDir()
	startAgent(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var e bytes.Buffer
	code := execute(ctx, []string{"run", "--data-dir", dir, "--pod-manifest-path", dir, "--healthz-bind-address", ""}, &bytes.Buffer{}, &e)
	if code == 0 {
		t.Fatal("second agent on the same data dir started")
	}
	if strings.Count(strings.TrimSpace(e.String()), "\n") != 0 && !strings.Contains(e.String(), "ledgerlet:") {
		t.Fatalf("want a one-line error, got %q", e.String())
	}
}

func TestOfflineReadCommands(t *testing.T) {
	db := filepath.Join(t.TempDir(), "ledger.db")
	projectortest.SeedLog(t, db)
	before, _ := os.ReadFile(db)

	out, errOut, code := cli(t, "pods", "--db", db, "-o", "json")
	if code != 0 {
		t.Fatalf("pods --db: %d %s", code, errOut)
	}
	var pods podsJSON
	if err := json.Unmarshal([]byte(out), &pods); err != nil {
		t.Fatal(err)
	}
	if len(pods.Pods) != 1 || pods.Pods[0].UID != "u2" || pods.Pods[0].Name != "web-node1" {
		t.Fatalf("pods %+v", pods)
	}

	out, _, code = cli(t, "replay", "--db", db, "--seq", "4", "-o", "json")
	if code != 0 {
		t.Fatal("replay --seq failed")
	}
	pods = podsJSON{}
	_ = json.Unmarshal([]byte(out), &pods)
	if len(pods.Pods) != 1 || pods.Pods[0].UID != "u1" || pods.Pods[0].Containers[0].State != "running" || pods.Pods[0].Phase != "Running" {
		t.Fatalf("replay at seq 4: %+v", pods)
	}

	out, _, code = cli(t, "history", "default/web-node1", "--db", db)
	if code != 0 || !strings.Contains(out, "- image: localhost/busybox:1.36") || !strings.Contains(out, "+   - image: localhost/busybox:1.37") {
		t.Fatalf("history should show the manifest diff, got (exit %d):\n%s", code, out)
	}

	out, _, code = cli(t, "replay", "diff", "--db", db, "--from", "4", "--to", "5")
	if code != 0 || !strings.Contains(out, "uid") {
		t.Fatalf("replay diff (exit %d):\n%s", code, out)
	}

	out, _, code = cli(t, "replay", "verify", "--db", db)
	if code != 0 {
		t.Fatalf("replay verify of a good log: exit %d\n%s", code, out)
	}

	out, _, code = cli(t, "events", "--db", db, "--pod", "default/web-node1")
	if code != 0 || strings.Count(out, "\n") != 5 {
		t.Fatalf("events --pod: exit %d, want header + 4 lines:\n%s", code, out)
	}

	after, _ := os.ReadFile(db)
	if !bytes.Equal(before, after) {
		t.Fatal("read commands with --db modified the log file")
	}
}

func TestReplayVerifyFindsDivergentSnapshot(t *testing.T) {
	db := filepath.Join(t.TempDir(), "ledger.db")
	projectortest.SeedLog(t, db)
	l, err := eventlog.Open(db, eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bogus := projector.New()
	bogus.Seq = 3
	b, _ := bogus.Canonical()
	if err := l.SaveSnapshot(context.Background(), eventlog.Snapshot{Seq: 3, State: b}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	out, _, code := cli(t, "replay", "verify", "--db", db)
	if code != 1 || !strings.Contains(out, "DIVERGENCE") {
		t.Fatalf("verify of a log with a wrong snapshot: exit %d, want 1\n%s", code, out)
	}
}

func TestBadInputIsOneLineExit2(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not a log "), 2000), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing db", []string{"pods", "--db", filepath.Join(dir, "nope.db")}, "nope.db"},
		{"garbage db", []string{"events", "--db", garbage}, "garbage.db"},
		{"bad output", []string{"pods", "--db", garbage, "-o", "yaml"}, "--output"},
		{"no agent", []string{"pods", "--data-dir", dir}, "no running agent"},
		{"bad pod key", []string{"history", "web", "--data-dir", dir}, "NAMESPACE/NAME"},
		{"replay needs a point", []string{"replay", "--db", garbage}, "--at"},
		{"bad since", []string{"events", "--data-dir", dir, "--since", "yesterday"}, "--since"},
		{"unknown flag", []string{"pods", "--frobnicate"}, "frobnicate"},
		{"run without manifests", []string{"run", "--data-dir", dir}, "--pod-manifest-path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := cli(t, tt.args...)
			if code != 2 {
				t.Fatalf("exit %d, want 2 (stderr %q)", code, errOut)
			}
			if strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tt.want) {
				t.Fatalf("want one line naming %q, got %q", tt.want, errOut)
			}
		})
	}
}

func TestBackupIsAConsistentCopy(t *testing.T) {
	dir := t.TempDir()
	startAgent(t, dir)
	dst := filepath.Join(t.TempDir(), "copy.db")
	out, errOut, code := cli(t, "backup", dst, "--data-dir", dir)
	if code != 0 {
		t.Fatalf("backup: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "wrote") {
		t.Fatalf("backup output %q", out)
	}
	out, _, code = cli(t, "events", "--db", dst, "-o", "json")
	if code != 0 || types(jsonEvents(t, out))[0] != "AgentStarted" {
		t.Fatalf("backup copy unreadable or empty (exit %d): %s", code, out)
	}
	if _, _, code := cli(t, "replay", "verify", "--db", dst); code != 0 {
		t.Fatalf("verify of the backup: exit %d", code)
	}
}

const webManifest = `apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: httpd
    image: localhost/busybox:1.36
    command: ["httpd", "-f", "-p", "8080"]
`

func podsOf(t *testing.T, dir string) podsJSON {
	t.Helper()
	out, errOut, code := cli(t, "pods", "--data-dir", dir, "-o", "json")
	if code != 0 {
		t.Fatalf("pods: exit %d: %s", code, errOut)
	}
	var p podsJSON
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPodsShowDesiredWithoutRuntime: with no container runtime reachable,
// the agent still reads manifests and `pods` shows them as desired.
func TestPodsShowDesiredWithoutRuntime(t *testing.T) {
	dir := t.TempDir()
	a := startAgent(t, dir)
	if err := os.WriteFile(filepath.Join(a.manifests, "web.yaml"), []byte(webManifest), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pod to be desired", func() bool { return len(podsOf(t, dir).Pods) == 1 })
	p := podsOf(t, dir).Pods[0]
	if p.Name != "web-node1" || p.Namespace != "default" || p.Source != "file" || p.UID == "" || p.Phase != "Pending" {
		t.Fatalf("pod %+v", p)
	}
	if len(p.Containers) != 1 || p.Containers[0].State != "waiting" {
		t.Fatalf("containers %+v", p.Containers)
	}
}

// TestRestartOverUnchangedManifestsAppendsNoManifestEvents: the log already
// holds what the files say, so a restart records nothing new about them.
func TestRestartOverUnchangedManifestsAppendsNoManifestEvents(t *testing.T) {
	dir := t.TempDir()
	a := startAgent(t, dir)
	if err := os.WriteFile(filepath.Join(a.manifests, "web.yaml"), []byte(webManifest), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a.manifests, "bad.yaml"), []byte("spec: {containers: []}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both manifests to be recorded", func() bool {
		out, _, _ := cli(t, "events", "--data-dir", dir, "-o", "json")
		return strings.Contains(out, `"ManifestAdded"`) && strings.Contains(out, `"ManifestRejected"`)
	})
	a.stop(t)
	count := func() (manifest int) {
		out, _, _ := cli(t, "events", "--db", filepath.Join(dir, "ledger.db"), "-o", "json")
		for _, ty := range types(jsonEvents(t, out)) {
			if strings.HasPrefix(ty, "Manifest") {
				manifest++
			}
		}
		return manifest
	}
	before := count()
	if before != 2 {
		t.Fatalf("%d manifest events after the first run, want 2 (added + rejected)", before)
	}
	a2 := startAgent(t, dir)
	waitFor(t, "the source to list", func() bool {
		out, _, _ := cli(t, "events", "--data-dir", dir, "-o", "json")
		return strings.Count(out, `"SourceSynced"`) == 2
	})
	a2.stop(t)
	if after := count(); after != before {
		t.Fatalf("restart appended %d manifest events", after-before)
	}
}

// TestEventsFollowStreamsNewEvents: --follow prints what is already there,
// then each new event as it is appended, until interrupted.
func TestEventsFollowStreamsNewEvents(t *testing.T) {
	dir := t.TempDir()
	a := startAgent(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- execute(ctx, []string{"events", "--follow", "-o", "json", "--data-dir", dir}, out, &bytes.Buffer{})
	}()
	waitFor(t, "the existing events", func() bool { return strings.Contains(out.String(), `"AgentStarted"`) })
	if err := os.WriteFile(filepath.Join(a.manifests, "web.yaml"), []byte(webManifest), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new manifest event to stream", func() bool { return strings.Contains(out.String(), `"ManifestAdded"`) })
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("events --follow exited %d after an interrupt", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("events --follow did not stop when interrupted")
	}
}

func TestHealthzAndMetrics(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	startAgent(t, t.TempDir(), "--healthz-bind-address", addr)
	get := func(path string) string {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := get("/healthz"); strings.TrimSpace(got) != "ok" {
		t.Fatalf("/healthz: %q", got)
	}
	m := get("/metrics")
	for _, name := range []string{"ledgerlet_log_last_seq", "ledgerlet_append_duration_seconds", "ledgerlet_events_folded_total", "ledgerlet_pods"} {
		if !strings.Contains(m, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

// TestBusyHealthPortDoesNotStopTheAgent: pods come first. A taken
// --healthz-bind-address is logged and retried; the agent runs.
func TestBusyHealthPortDoesNotStopTheAgent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a := startAgent(t, t.TempDir(), "--healthz-bind-address", ln.Addr().String())
	time.Sleep(300 * time.Millisecond)
	select {
	case code := <-a.done:
		t.Fatalf("agent exited with %d: %s", code, a.stderr.String())
	default:
	}
	if out, _, code := cli(t, "pods", "--data-dir", a.dataDir); code != 0 {
		t.Fatalf("pods: %d %s", code, out)
	}
}

// TestDataDirIsTightened: an existing data dir left open to others is made
// private (the socket in it answers every read command).
func TestDataDirIsTightened(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	startAgent(t, dir)
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir mode %v, want 0700", fi.Mode().Perm())
	}
}

func TestCheckReportsASoundLogAndADamagedOne(t *testing.T) {
	db := filepath.Join(t.TempDir(), "ledger.db")
	projectortest.SeedLog(t, db)
	out, errOut, code := cli(t, "check", "--db", db)
	if code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("check of a sound log: %d %s %s", code, out, errOut)
	}
	b, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db, b[:3*4096], 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = cli(t, "check", "--db", db)
	if code == 0 || !strings.Contains(out+errOut, "readable") {
		t.Fatalf("check of a truncated log: %d %s %s", code, out, errOut)
	}
}

// mountTmpfs mounts a tmpfs with opts on a new directory for the test, or
// skips the test where that is not possible (not root).
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// TestReadOnlyDataDirIsAOneLineErrorAtStart.
func TestReadOnlyDataDirIsAOneLineErrorAtStart(t *testing.T) {
	dir := mountTmpfs(t, "ro,size=4m")
	_, errOut, code := cli(t, "run", "--data-dir", dir, "--pod-manifest-path", t.TempDir(), "--healthz-bind-address", "",
		"--container-runtime-endpoint", "unix://"+filepath.Join(t.TempDir(), "none.sock"))
	if code == 0 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "read-only") {
		t.Fatalf("exit %d, stderr %q: want a one-line read-only error", code, errOut)
	}
}

// TestDiskFullStopsTheAgentAndLosesNothing: when the data dir fills up, a
// commit fails; the agent exits with a clear error instead of appending to a
// log whose last commit may not be on disk, and everything it acknowledged
// is there when it starts again with space.
func TestDiskFullStopsTheAgentAndLosesNothing(t *testing.T) {
	dir := mountTmpfs(t, "size=6m")
	// The manifests live on another disk than the data dir.
	if err := os.Symlink(t.TempDir(), filepath.Join(dir, "manifests")); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, dir)
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()
	// Manifests to record until the log cannot commit.
	for i := 0; ; i++ {
		if i > 200 {
			t.Fatal("the agent kept running on a full disk")
		}
		name := fmt.Sprintf("p%d.yaml", i)
		body := fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p%d\nspec:\n  containers:\n  - name: c\n    image: localhost/busybox:1.36\n    command: [%q]\n", i, strings.Repeat("x", 60000))
		_ = os.WriteFile(filepath.Join(a.manifests, name), []byte(body), 0o644)
		select {
		case code := <-a.done:
			a.cancel = nil
			if code == 0 {
				t.Fatal("exit 0 on a full disk")
			}
			goto stopped
		case <-time.After(100 * time.Millisecond):
		}
	}
stopped:
	// The reason is one line, the last the agent wrote, and names the cause.
	lines := strings.Split(strings.TrimSpace(a.stderr.String()), "\n")
	if last := lines[len(lines)-1]; !strings.Contains(last, "no space left on device") {
		t.Errorf("last line on stderr %q: want the one-line reason naming the full disk", last)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// Every event the log acknowledged is there, and it accepts appends again.
	db := filepath.Join(dir, "ledger.db")
	if out, errOut, code := cli(t, "check", "--db", db); code != 0 {
		t.Fatalf("check after a full disk: %d %s %s", code, out, errOut)
	}
	b := startAgent(t, dir)
	out, _, code := cli(t, "events", "--data-dir", b.dataDir, "-o", "json")
	if code != 0 || !strings.Contains(out, "ManifestAdded") {
		t.Fatalf("events after restart: %d", code)
	}
}
