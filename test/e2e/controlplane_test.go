package e2e

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// The control-plane test runs ledgerlet as a kubeadm node's kubelet would be
// run: on kubeadm's own output (hack/dev-controlplane runs kubeadm's phases
// with a configuration file; nothing it writes is edited), with the
// KubeletConfiguration kubeadm wrote as --config and kubeadm's kubelet.conf
// as --kubeconfig. The apiserver it mirrors into is the one it started.

// controlPlaneComponents are kubeadm's four static pods.
var controlPlaneComponents = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}

type controlPlane struct {
	t      *testing.T
	script string
	env    map[string]string
	admin  *kubernetes.Clientset
}

// needControlPlane runs `hack/dev-controlplane down` then `up`: kubeadm's
// output made afresh, an empty etcd. `down` runs again when the test ends,
// after the agent's own cleanup has stopped every pod.
func needControlPlane(t *testing.T) *controlPlane {
	t.Helper()
	script := os.Getenv("LEDGERLET_DEV_CONTROLPLANE")
	if script == "" {
		t.Skip("LEDGERLET_DEV_CONTROLPLANE not set (run `make test-e2e`)")
	}
	cp := &controlPlane{t: t, script: script, env: map[string]string{}}
	cp.run("down")
	out := cp.run("up")
	t.Cleanup(func() { cp.run("down") })
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			cp.env[k] = v
		}
	}
	for _, k := range []string{"NODE", "NODE_IP", "MANIFESTS", "KUBEADM", "KUBEADM_CONFIG", "ADMIN_KUBECONFIG", "KUBELET_KUBECONFIG", "KUBELET_CONFIG"} {
		if cp.env[k] == "" {
			t.Fatalf("hack/dev-controlplane up did not print %s:\n%s", k, out)
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", cp.env["ADMIN_KUBECONFIG"])
	if err != nil {
		t.Fatal(err)
	}
	cfg.Timeout = 5 * time.Second
	if cp.admin, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	return cp
}

func (cp *controlPlane) run(args ...string) string {
	cp.t.Helper()
	cmd := exec.Command(cp.script, args...)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		cp.t.Fatalf("%s %v: %v\n%s%s", cp.script, args, err, out, stderr)
	}
	return string(out)
}

func (cp *controlPlane) readyz() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := cp.admin.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	return err == nil && string(b) == "ok"
}

// mirrors are the kube-system mirror pods of the node, by component.
func (cp *controlPlane) mirrors() map[string]*corev1.Pod {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list, err := cp.admin.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil
	}
	out := map[string]*corev1.Pod{}
	for i := range list.Items {
		p := &list.Items[i]
		for _, c := range controlPlaneComponents {
			if p.Name == c+"-"+cp.env["NODE"] && p.Annotations[annotationMirror] != "" {
				out[c] = p
			}
		}
	}
	return out
}

// ready: Running, every container ready (1/1), the Ready condition true.
func ready(p *corev1.Pod) bool {
	if p == nil || !running(p) {
		return false
	}
	for _, c := range p.Status.ContainerStatuses {
		if !c.Ready {
			return false
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (cp *controlPlane) allReady() (map[string]*corev1.Pod, bool) {
	m := cp.mirrors()
	if len(m) != len(controlPlaneComponents) {
		return m, false
	}
	for _, p := range m {
		if !ready(p) {
			return m, false
		}
	}
	return m, true
}

func (cp *controlPlane) nodeReady() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := cp.admin.CoreV1().Nodes().Get(ctx, cp.env["NODE"], metav1.GetOptions{})
	if err != nil {
		return false
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// containers is each component's container ID and restart count, as the mirrors say.
func containers(m map[string]*corev1.Pod) map[string]string {
	out := map[string]string{}
	for c, p := range m {
		for _, s := range p.Status.ContainerStatuses {
			out[c] = fmt.Sprintf("%s restarts=%d", s.ContainerID, s.RestartCount)
		}
	}
	return out
}

func (cp *controlPlane) waitAllReady(a *agent, timeout time.Duration, what string) map[string]*corev1.Pod {
	cp.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m, ok := cp.allReady()
		readyz, nodeReady := cp.readyz(), cp.nodeReady()
		if ok && readyz && nodeReady {
			return m
		}
		if time.Now().After(deadline) {
			var st []string
			for _, c := range controlPlaneComponents {
				p := m[c]
				if p == nil {
					st = append(st, c+": no mirror")
					continue
				}
				st = append(st, fmt.Sprintf("%s: phase %s ready %v %v", c, p.Status.Phase, ready(p), containers(map[string]*corev1.Pod{c: p})[c]))
			}
			pods, _ := a.cli("pods")
			cp.t.Fatalf("timed out after %s waiting for %s: /readyz %v, node Ready %v\n%s\n%s", timeout, what, readyz, nodeReady, strings.Join(st, "\n"), pods)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestKubeadmControlPlaneBootstrapsAndMirrorsItself is the flagship: from
// `ledgerlet run --config <kubeadm's> --kubeconfig <kubeadm's kubelet.conf>`
// to the four control-plane pods Running and Ready, mirrored into the
// apiserver they include, the node Ready; then what operators do to such a
// node: kill -9 the agent, upgrade the apiserver's manifest, move etcd's
// manifest out and back. Nothing restarts that was not asked to.
func TestKubeadmControlPlaneBootstrapsAndMirrorsItself(t *testing.T) {
	cp := needControlPlane(t)
	node := cp.env["NODE"]
	a := newAgent(t)
	a.node, a.manifests = node, cp.env["MANIFESTS"]
	t.Cleanup(func() {
		// Runs before the agent's cleanup: keep the ledger of a failed run.
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(a.dataDir, "ledger.db")); err == nil {
				keep := filepath.Join(os.TempDir(), "ledgerlet-controlplane-failed.db")
				if os.WriteFile(keep, b, 0o600) == nil {
					t.Logf("the ledger of this run: %s", keep)
				}
			}
		}
	})
	a.runArgs = []string{"--config", cp.env["KUBELET_CONFIG"], "--kubeconfig", cp.env["KUBELET_KUBECONFIG"],
		"--hostname-override", node, "--node-ip", cp.env["NODE_IP"], "--pod-logs-dir", a.logs, "--v", "debug"}

	// 1. Bootstrap.
	t0 := time.Now()
	a.start()
	m := cp.waitAllReady(a, 5*time.Minute, "the four control-plane mirrors Running and Ready, /readyz ok, the node Ready")
	bootstrap := time.Since(t0)
	t.Logf("FIGURE control-plane bootstrap: ledgerlet run -> all four Ready, node Ready: %.1f s", bootstrap.Seconds())
	// The health server listens where kubeadm's KubeletConfiguration says.
	if body, err := httpGet("http://127.0.0.1:10248/healthz"); err != nil || !strings.HasPrefix(body, "ok") {
		t.Errorf("healthz from kubeadm's config (127.0.0.1:10248): %q %v", body, err)
	}
	for c, p := range m {
		if p.Spec.PriorityClassName != "system-node-critical" || !p.Spec.HostNetwork {
			t.Errorf("%s mirror: priorityClassName %q hostNetwork %v", c, p.Spec.PriorityClassName, p.Spec.HostNetwork)
		}
		if len(p.OwnerReferences) != 1 || p.OwnerReferences[0].Kind != "Node" || p.OwnerReferences[0].Name != node {
			t.Errorf("%s mirror not owned by node %s: %v", c, node, p.OwnerReferences)
		}
	}
	before := containers(m)
	uids := map[string]string{}
	for c, p := range m {
		uids[c] = string(p.UID)
		if !strings.HasSuffix(before[c], " restarts=0") {
			t.Errorf("%s restarted while bootstrapping: %s", c, before[c])
		}
	}

	// 2. kill -9 and a restart: no container restarts, mirrors unchanged.
	a.kill9()
	a.start()
	time.Sleep(10 * time.Second) // a relist, a mirror sync and a probe round in the new run
	m = cp.waitAllReady(a, time.Minute, "the control plane after kill -9")
	if after := containers(m); !maps.Equal(before, after) {
		t.Errorf("containers changed across kill -9 of the agent:\nbefore %v\nafter  %v", before, after)
	}
	for c, p := range m {
		if string(p.UID) != uids[c] {
			t.Errorf("%s mirror recreated across kill -9 (uid %s -> %s)", c, uids[c], p.UID)
		}
	}

	// 3. kubeadm rewrites the apiserver's manifest (an upgrade-style change:
	// one more flag, from kubeadm's own configuration).
	oldHash := m["kube-apiserver"].Annotations["kubernetes.io/config.hash"]
	cfg, err := os.ReadFile(cp.env["KUBEADM_CONFIG"])
	if err != nil {
		t.Fatal(err)
	}
	upgraded := strings.Replace(string(cfg), "  extraArgs:\n", "  extraArgs:\n  - name: event-ttl\n    value: 2h0m0s\n", 1)
	cfg2 := filepath.Join(t.TempDir(), "kubeadm-upgrade.yaml")
	if err := os.WriteFile(cfg2, []byte(upgraded), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cp.env["KUBEADM"], "init", "phase", "control-plane", "apiserver", "--config", cfg2).CombinedOutput(); err != nil {
		t.Fatalf("kubeadm init phase control-plane apiserver: %v\n%s", err, out)
	}
	tEdit := time.Now()
	a.waitFor("the upgraded apiserver Ready and mirrored", 4*time.Minute, func() bool {
		var ok bool
		m, ok = cp.allReady()
		if !ok || !cp.readyz() {
			return false
		}
		p := m["kube-apiserver"]
		return p.Annotations["kubernetes.io/config.hash"] != oldHash &&
			slices.Contains(p.Spec.Containers[0].Command, "--event-ttl=2h0m0s")
	})
	t.Logf("FIGURE apiserver manifest upgrade -> new apiserver Ready and mirrored: %.1f s", time.Since(tEdit).Seconds())
	after := containers(m)
	if after["etcd"] != before["etcd"] {
		t.Errorf("etcd changed while the apiserver was upgraded: %s -> %s", before["etcd"], after["etcd"])
	}
	if after["kube-apiserver"] == before["kube-apiserver"] {
		t.Errorf("kube-apiserver container unchanged after its manifest changed")
	}
	// The controller-manager and the scheduler exit by themselves when they
	// cannot renew their leases for 10 s (the old apiserver drains, the new
	// one starts): on a one-node control plane they restart under any node
	// agent. The agent itself must not have stopped them.
	for _, c := range []string{"kube-controller-manager", "kube-scheduler"} {
		agentNeverStopped(t, a, c+"-"+node)
		if after[c] != before[c] {
			t.Logf("%s exited by itself during the apiserver's restart and was restarted: %s -> %s", c, before[c], after[c])
		}
	}
	before = after

	// 4. etcd's manifest moved out (a snapshot restore) and back.
	out := filepath.Join(filepath.Dir(cp.env["MANIFESTS"]), "etcd.yaml.moved")
	if err := os.Rename(filepath.Join(cp.env["MANIFESTS"], "etcd.yaml"), out); err != nil {
		t.Fatal(err)
	}
	a.waitFor("etcd stopped", time.Minute, func() bool {
		for _, p := range a.runtimePods() {
			if strings.HasPrefix(p.Name, "etcd-") {
				return false
			}
		}
		return true
	})
	if err := os.Rename(out, filepath.Join(cp.env["MANIFESTS"], "etcd.yaml")); err != nil {
		t.Fatal(err)
	}
	tBack := time.Now()
	a.waitFor("etcd back and the apiserver ready again", 3*time.Minute, func() bool {
		var ok bool
		m, ok = cp.allReady()
		return ok && cp.readyz() && containers(m)["etcd"] != before["etcd"]
	})
	t.Logf("FIGURE etcd manifest back -> etcd Ready, apiserver /readyz ok: %.1f s", time.Since(tBack).Seconds())
	after = containers(m)
	if after["kube-apiserver"] != before["kube-apiserver"] {
		t.Errorf("kube-apiserver restarted when etcd was moved out and back: %s -> %s", before["kube-apiserver"], after["kube-apiserver"])
	}
	for _, c := range []string{"kube-controller-manager", "kube-scheduler"} {
		agentNeverStopped(t, a, c+"-"+node)
		if after[c] != before[c] {
			t.Logf("%s exited by itself while etcd was away (lease not renewed) and was restarted: %s -> %s", c, before[c], after[c])
		}
	}

	// 5. The ledger: the apiserver's history in order, every decision reproduced.
	a.stop()
	db := filepath.Join(a.dataDir, "ledger.db")
	hist, err := a.cli("history", "kube-system/kube-apiserver-"+node, "--db", db)
	if err != nil {
		t.Fatal(err)
	}
	// The change with its diff, then the old apiserver stopped with its own
	// grace (kubeadm sets none: 30 s) before the new one started; the old
	// version's mirror deleted before the new one's was created (through
	// whichever apiserver answered: the old one while it drained, or the new).
	checkOrder(t, hist, []string{`ManifestChanged`, `\+ +- --event-ttl=2h0m0s`,
		`intent StopContainer kube-apiserver \(grace 30s\): replaced by a new version`, `intent StartContainer kube-apiserver`})
	checkOrder(t, hist, []string{`ManifestChanged`, `intent MirrorDelete mirror .*: mirror pod of another version`, `intent MirrorCreate`})
	if out, err := a.cli("replay", "verify", "--db", db); err != nil {
		t.Fatalf("replay verify: %v %s", err, out)
	}
	assertNo403(t, a)
	a.start() // the agent's cleanup removes the manifests and waits for every pod to go
}

// agentNeverStopped: the ledger holds no stop of pod's containers by the
// agent (a container may still have exited by itself).
func agentNeverStopped(t *testing.T, a *agent, pod string) {
	t.Helper()
	hist, err := a.cli("history", "kube-system/"+pod)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(hist, "\n") {
		if strings.Contains(l, "intent StopContainer") || strings.Contains(l, "intent RemoveSandbox") {
			t.Errorf("the agent stopped %s: %s", pod, l)
		}
	}
}

// checkOrder: each pattern matches a line after the line the previous one matched.
func checkOrder(t *testing.T, text string, patterns []string) {
	t.Helper()
	lines := strings.Split(text, "\n")
	at := 0
	for _, p := range patterns {
		re := regexp.MustCompile(p)
		found := false
		for ; at < len(lines); at++ {
			if re.MatchString(lines[at]) {
				found, at = true, at+1
				break
			}
		}
		if !found {
			t.Errorf("history: no line matching %q after the previous step:\n%s", p, text)
			return
		}
	}
}
