// Package e2e runs the ledgerlet binary against a real containerd (the
// project's private one: hack/dev-containerd) and checks what an operator
// would: pods run, are reachable, restart, are replaced and removed cleanly,
// and survive kill -9 of the agent and restarts of containerd.
//
// The tests run when LEDGERLET_CRI_ENDPOINT is set (make test-e2e sets it).
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ledgerlet/ledgerlet/projector"
	"github.com/ledgerlet/ledgerlet/runtime"
)

var (
	binary   string
	endpoint string
)

func TestMain(m *testing.M) {
	endpoint = os.Getenv("LEDGERLET_CRI_ENDPOINT")
	if endpoint == "" {
		fmt.Println("e2e: LEDGERLET_CRI_ENDPOINT not set (run `make test-e2e`); skipping")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "ledgerlet-e2e-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "ledgerlet")
	build := exec.Command("go", "build", "-tags", "grpcnotrace", "-o", binary, "github.com/ledgerlet/ledgerlet/cmd/ledgerlet")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // as `make build` builds it
	out, err := build.CombinedOutput()
	if err != nil {
		fmt.Printf("build ledgerlet: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// agent is one ledgerlet process on its own data dir and node name.
type agent struct {
	t         testing.TB
	node      string
	dataDir   string
	manifests string
	logs      string
	cmd       *exec.Cmd
	stderr    string
	extra     []string
	// runArgs, when set, replace the flags start gives (all but --data-dir):
	// for agents configured as an operator would (--config).
	runArgs []string
	env     []string // added to the agent's environment
}

func newAgent(t testing.TB, extra ...string) *agent {
	t.Helper()
	dir := t.TempDir()
	a := &agent{
		t:         t,
		node:      strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())),
		dataDir:   filepath.Join(dir, "data"),
		manifests: filepath.Join(dir, "manifests"),
		logs:      filepath.Join(dir, "logs"),
		extra:     extra,
	}
	if len(a.node) > 40 {
		a.node = a.node[:40]
	}
	if err := os.MkdirAll(a.manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.cleanup() })
	return a
}

func (a *agent) start() {
	a.t.Helper()
	args := append([]string{"run", "--data-dir", a.dataDir, "--pod-manifest-path", a.manifests,
		"--hostname-override", a.node, "--container-runtime-endpoint", endpoint, "--pod-logs-dir", a.logs,
		"--healthz-bind-address", "", "--relist-period", "250ms", "--file-check-frequency", "2s", "--v", "debug"}, a.extra...)
	if a.runArgs != nil {
		args = append([]string{"run", "--data-dir", a.dataDir}, a.runArgs...)
	}
	a.cmd = exec.Command(binary, args...)
	if len(a.env) > 0 {
		a.cmd.Env = append(os.Environ(), a.env...)
	}
	a.stderr = filepath.Join(filepath.Dir(a.dataDir), fmt.Sprintf("agent-%d.log", time.Now().UnixNano()))
	f, err := os.Create(a.stderr)
	if err != nil {
		a.t.Fatal(err)
	}
	a.cmd.Stdout, a.cmd.Stderr = f, f
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.cmd.Start(); err != nil {
		a.t.Fatal(err)
	}
	f.Close()
	// A killed agent leaves its socket file: wait until one answers.
	a.waitFor("the agent's socket", 15*time.Second, func() bool {
		c, err := net.Dial("unix", filepath.Join(a.dataDir, "ledgerlet.sock"))
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// kill9 kills the agent without warning.
func (a *agent) kill9() {
	a.t.Helper()
	if a.cmd == nil {
		return
	}
	_ = a.cmd.Process.Signal(syscall.SIGKILL)
	_ = a.cmd.Wait()
	a.cmd = nil
}

// stop sends SIGTERM and waits.
func (a *agent) stop() {
	a.t.Helper()
	if a.cmd == nil {
		return
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = a.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = a.cmd.Process.Kill()
		<-done
		a.t.Errorf("agent did not stop within 60s")
	}
	a.cmd = nil
}

// cleanup removes every manifest and lets the agent tear everything down, so
// the next test starts on an empty runtime.
func (a *agent) cleanup() {
	if a.t.Failed() {
		if b, err := os.ReadFile(a.stderr); err == nil {
			lines := strings.Split(string(b), "\n")
			if len(lines) > 60 {
				lines = lines[len(lines)-60:]
			}
			a.t.Logf("agent log tail:\n%s", strings.Join(lines, "\n"))
		}
	}
	entries, _ := os.ReadDir(a.manifests)
	for _, e := range entries {
		os.Remove(filepath.Join(a.manifests, e.Name()))
	}
	if a.cmd == nil {
		a.start()
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && len(a.runtimePods()) > 0 {
		time.Sleep(200 * time.Millisecond)
	}
	a.stop()
}

// writeManifest writes a manifest atomically (temp file + rename), as operators should.
func (a *agent) writeManifest(name, body string) {
	a.t.Helper()
	tmp := filepath.Join(filepath.Dir(a.manifests), "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		a.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(a.manifests, name)); err != nil {
		a.t.Fatal(err)
	}
}

func (a *agent) removeManifest(name string) {
	a.t.Helper()
	if err := os.Remove(filepath.Join(a.manifests, name)); err != nil {
		a.t.Fatal(err)
	}
}

// cli runs a ledgerlet command against this agent's data dir.
func (a *agent) cli(args ...string) (string, error) {
	if args[0] != "replay" && args[0] != "check" {
		args = append(args, "--data-dir", a.dataDir)
	}
	cmd := exec.Command(binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("ledgerlet %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

func (a *agent) pods() []projector.PodView {
	a.t.Helper()
	out, err := a.cli("pods", "-o", "json")
	if err != nil {
		a.t.Fatal(err)
	}
	var v struct{ Pods []projector.PodView }
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		a.t.Fatalf("pods -o json: %v: %s", err, out)
	}
	return v.Pods
}

func (a *agent) pod(name string) *projector.PodView {
	for _, p := range a.pods() {
		if p.Name == name+"-"+a.node {
			return &p
		}
	}
	return nil
}

func (a *agent) waitFor(what string, timeout time.Duration, cond func() bool) {
	a.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			a.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (a *agent) waitRunning(name string, timeout time.Duration) projector.PodView {
	a.t.Helper()
	var got projector.PodView
	a.waitFor(name+" to run", timeout, func() bool {
		p := a.pod(name)
		if p != nil && p.Phase == "Running" {
			got = *p
			return true
		}
		return false
	})
	return got
}

// events returns the agent's events of type typ (all if empty) for pod name.
func (a *agent) events(name, typ string) []map[string]any {
	a.t.Helper()
	args := []string{"events", "-o", "json"}
	if name != "" {
		args = append(args, "--pod", "default/"+name+"-"+a.node)
	}
	out, err := a.cli(args...)
	if err != nil {
		a.t.Fatal(err)
	}
	var evs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			a.t.Fatal(err)
		}
		if typ == "" || m["type"] == typ {
			evs = append(evs, m)
		}
	}
	return evs
}

// runtimePods lists what the runtime holds for this agent's node.
func (a *agent) runtimePods() []runtime.ObservedPod {
	r, err := runtime.New(runtime.Config{Endpoint: endpoint, ManagedBy: a.node})
	if err != nil {
		a.t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	all, err := r.Observe(ctx)
	if err != nil {
		a.t.Logf("observe runtime: %v", err)
		return nil
	}
	var out []runtime.ObservedPod
	for _, p := range all {
		if strings.HasSuffix(p.Name, "-"+a.node) {
			out = append(out, p)
		}
	}
	return out
}

func httpGet(url string) (string, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return b.String(), nil
}
