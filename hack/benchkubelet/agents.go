package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"
)

// agent is a node agent under test: a process reading static pod manifests from a directory.
type agent struct {
	name      string // "kubelet" or "ledgerlet"; also the suffix of its node name
	node      string // node name: pod names end in "-"+node
	dir       string // its working directory under the bench dir
	manifests string
	// command builds the process; ready says when it has started (it is polled).
	command func() *exec.Cmd
	ready   func(ctx context.Context) bool
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has ended
	log     *slog.Logger
}

// Add writes the pods' manifests, each atomically (written beside the directory, renamed
// in), as operators should and as both agents expect.
func (a *agent) Add(_ context.Context, names []string) error {
	for _, n := range names {
		tmp := filepath.Join(a.dir, "."+n+".yaml.tmp")
		if err := os.WriteFile(tmp, []byte(sleeper(n)), 0o600); err != nil {
			return fmt.Errorf("write manifest of %s: %w", n, err)
		}
		if err := os.Rename(tmp, filepath.Join(a.manifests, n+".yaml")); err != nil {
			return fmt.Errorf("rename manifest of %s into place: %w", n, err)
		}
	}
	return nil
}

// Remove deletes the pods' manifests; the agent then stops and removes the pods.
func (a *agent) Remove(_ context.Context, names []string) error {
	for _, n := range names {
		if err := os.Remove(filepath.Join(a.manifests, n+".yaml")); err != nil {
			return fmt.Errorf("remove manifest of %s: %w", n, err)
		}
	}
	return nil
}

func (a *agent) PodName(n string) string { return n + "-" + a.node }

// start runs the agent and waits until it says it is ready.
func (a *agent) start(ctx context.Context) error {
	a.cmd = a.command()
	f, err := os.OpenFile(filepath.Join(a.dir, a.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open the %s log: %w", a.name, err)
	}
	defer f.Close()
	a.cmd.Stdout, a.cmd.Stderr = f, f
	// Its own process group: a terminal's ^C reaches the benchmark, which stops the agent itself.
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.cmd.Start(); err != nil {
		a.cmd = nil
		return fmt.Errorf("start %s: %w", a.name, err)
	}
	a.log.Info("started", "agent", a.name, "pid", a.cmd.Process.Pid)
	// The one Wait of this process; kill9 waits on exited.
	exited := make(chan struct{})
	a.exited = exited
	go func(cmd *exec.Cmd) { _ = cmd.Wait(); close(exited) }(a.cmd)
	deadline := time.Now().Add(60 * time.Second)
	for !a.ready(ctx) {
		select {
		case <-exited:
			return fmt.Errorf("%s exited during start-up, see %s", a.name, filepath.Join(a.dir, a.name+".log"))
		case <-ctx.Done():
			return fmt.Errorf("start %s: %w", a.name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within 60 s, see %s", a.name, filepath.Join(a.dir, a.name+".log"))
		}
	}
	return nil
}

func (a *agent) pid() int { return a.cmd.Process.Pid }

// kill9 kills the agent without warning; its pods keep running in the runtime.
func (a *agent) kill9() {
	if a.cmd == nil {
		return
	}
	_ = a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.exited
	a.cmd = nil
}

// sleeper is the one manifest every measurement uses: busybox from the dev harness, host
// network (CNI stays out of the figures), a container that ends at once on SIGTERM, grace 1 s.
func sleeper(name string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  restartPolicy: Always
  containers:
  - name: main
    image: localhost/busybox:1.36
    imagePullPolicy: Never
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
`, name, benchNamespace)
}

// benchSetup is what both agents are given: the same runtime, cgroup driver and layout.
type benchSetup struct {
	endpoint     string
	cgroupDriver string // "cgroupfs" or "systemd", as the runtime's
	dir          string // the bench's working directory
	kubelet      string // binary
	ledgerlet    string // binary
	log          *slog.Logger
}

func newAgentDirs(dir, name string) (workdir, manifests string, err error) {
	workdir = filepath.Join(dir, name)
	// A fresh directory each run: the kubelet's checkpoints and ledgerlet's log would
	// otherwise carry the previous run's pods into this one.
	if err := unmountUnder(workdir); err != nil {
		return "", "", err
	}
	if err := os.RemoveAll(workdir); err != nil {
		return "", "", fmt.Errorf("clear %s: %w", workdir, err)
	}
	manifests = filepath.Join(workdir, "manifests")
	if err := os.MkdirAll(manifests, 0o755); err != nil {
		return "", "", fmt.Errorf("create %s: %w", manifests, err)
	}
	return workdir, manifests, nil
}

// The kubelet's own ports, away from a real kubelet's (10248, 10250) on the same machine.
const (
	kubeletHealthzPort = 10348
	kubeletPort        = 10350
)

var kubeletConfig = template.Must(template.New("kubelet").Parse(`# Written by hack/benchkubelet: a standalone kubelet (static pods only, no apiserver).
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: {{.Manifests}}
containerRuntimeEndpoint: {{.Endpoint}}
cgroupDriver: {{.CgroupDriver}}
{{- if .CgroupRoot}}
cgroupRoot: {{.CgroupRoot}}
{{- end}}
cgroupsPerQOS: true
# No systemd as PID 1 and no reservations here: nothing to enforce.
enforceNodeAllocatable: []
failSwapOn: false
# These VMs may still run cgroup v1 (hybrid); the kubelet refuses it unless told.
failCgroupV1: false
address: 127.0.0.1
port: {{.Port}}
healthzBindAddress: 127.0.0.1
healthzPort: {{.HealthzPort}}
readOnlyPort: 0
enableServer: false
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
podLogsDir: {{.Dir}}/logs
volumePluginDir: {{.Dir}}/volume-plugins
makeIPTablesUtilChains: false
localStorageCapacityIsolation: false
# A busy shared disk must not make it evict the benchmark's pods.
evictionHard: {}
imageGCHighThresholdPercent: 100
`))

// kubeletCgroupRoot is the kubelet's cgroup root with the cgroupfs driver: its own, so its
// kubepods tree is apart from anybody else's on the machine.
const kubeletCgroupRoot = "/llbench-kubelet"

// ledgerletCgroupRoot is ledgerlet's, for the same reason.
const ledgerletCgroupRoot = "/llbench-ledgerlet"

func newKubelet(s benchSetup) (*agent, error) {
	dir, manifests, err := newAgentDirs(s.dir, "kubelet")
	if err != nil {
		return nil, err
	}
	root := ""
	if s.cgroupDriver == "cgroupfs" {
		// The kubelet refuses a cgroup root that does not exist in every hierarchy.
		root = kubeletCgroupRoot
		if err := makeCgroup(root); err != nil {
			return nil, err
		}
	}
	var cfg bytes.Buffer
	if err := kubeletConfig.Execute(&cfg, map[string]any{
		"Manifests": manifests, "Endpoint": s.endpoint, "CgroupDriver": s.cgroupDriver, "CgroupRoot": root,
		"Port": kubeletPort, "HealthzPort": kubeletHealthzPort, "Dir": dir,
	}); err != nil {
		return nil, fmt.Errorf("render the kubelet configuration: %w", err)
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, cfg.Bytes(), 0o644); err != nil {
		return nil, fmt.Errorf("write the kubelet configuration: %w", err)
	}
	a := &agent{name: "kubelet", node: "llbench-kubelet", dir: dir, manifests: manifests, log: s.log}
	a.command = func() *exec.Cmd {
		return exec.Command(s.kubelet, "--config", cfgPath, "--root-dir", filepath.Join(dir, "root"),
			"--hostname-override", a.node, "--v", "2")
	}
	client := &http.Client{Timeout: time.Second}
	a.ready = func(ctx context.Context) bool {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/healthz", kubeletHealthzPort), nil)
		if err != nil {
			return false
		}
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	return a, nil
}

func newLedgerlet(s benchSetup) (*agent, error) {
	dir, manifests, err := newAgentDirs(s.dir, "ledgerlet")
	if err != nil {
		return nil, err
	}
	a := &agent{name: "ledgerlet", node: "llbench-ledgerlet", dir: dir, manifests: manifests, log: s.log}
	data := filepath.Join(dir, "data")
	a.command = func() *exec.Cmd {
		args := []string{"run", "--data-dir", data, "--pod-manifest-path", manifests,
			"--hostname-override", a.node, "--container-runtime-endpoint", s.endpoint,
			"--pod-logs-dir", filepath.Join(dir, "logs"), "--cgroup-driver", s.cgroupDriver,
			"--healthz-bind-address", ""}
		if s.cgroupDriver == "cgroupfs" {
			args = append(args, "--cgroup-root", ledgerletCgroupRoot)
		}
		// Everything else at its default: the figures are the production ones (relist 1 s).
		return exec.Command(s.ledgerlet, args...)
	}
	a.ready = func(context.Context) bool {
		// A killed agent leaves its socket file: ready is a socket that answers.
		c, err := net.Dial("unix", filepath.Join(data, "ledgerlet.sock"))
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	return a, nil
}

// ledgerEvent is one line of `ledgerlet events -o json`.
type ledgerEvent struct {
	Seq  json.Number    `json:"seq"`
	Time time.Time      `json:"time"`
	Type string         `json:"type"`
	Pod  string         `json:"pod"`
	Data map[string]any `json:"data"`
}

// ledgerEvents reads the running ledgerlet's events of one type (all when typ is empty)
// through its CLI, as an operator would.
func ledgerEvents(ctx context.Context, binary string, a *agent, typ string) ([]ledgerEvent, error) {
	cmd := exec.CommandContext(ctx, binary, "events", "-o", "json", "--data-dir", filepath.Join(a.dir, "data"))
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("ledgerlet events: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	var evs []ledgerEvent
	sc := bufio.NewScanner(&out)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var e ledgerEvent
		d := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		d.UseNumber()
		if err := d.Decode(&e); err != nil {
			return nil, fmt.Errorf("ledgerlet events: decode %q: %w", sc.Text(), err)
		}
		if typ == "" || e.Type == typ {
			evs = append(evs, e)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("ledgerlet events: read: %w", err)
	}
	return evs, nil
}

// unmountUnder detaches every mount at or under dir, deepest first. The kubelet bind-mounts
// its root directory onto itself (to make it a shared mount) and leaves that mount when it ends.
func unmountUnder(dir string) error {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return fmt.Errorf("read mounts: %w", err)
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[1] == dir || strings.HasPrefix(f[1], dir+"/")) {
			points = append(points, f[1])
		}
	}
	var errs []error
	for i := len(points) - 1; i >= 0; i-- {
		if err := syscall.Unmount(points[i], syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", points[i], err))
		}
	}
	return errors.Join(errs...)
}

// makeCgroup creates path in every mounted cgroup hierarchy.
func makeCgroup(path string) error {
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	for _, m := range mounts {
		if err := os.MkdirAll(filepath.Join(m, path), 0o755); err != nil {
			return fmt.Errorf("create cgroup %s: %w", filepath.Join(m, path), err)
		}
	}
	return nil
}

// removeCgroup deletes path and everything under it from every hierarchy, deepest first
// (cgroup directories go with rmdir alone). A cgroup still holding a process stays, reported.
func removeCgroup(path string) error {
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range mounts {
		root := filepath.Join(m, path)
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := syscall.Rmdir(dirs[i]); err != nil && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

// cgroupMounts lists the mounted cgroup hierarchies (v1, hybrid or unified alike).
func cgroupMounts() ([]string, error) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && (f[2] == "cgroup" || f[2] == "cgroup2") {
			out = append(out, f[1])
		}
	}
	return out, nil
}
