package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// The mirror tests run against the project's private kube-apiserver
// (hack/dev-apiserver), started with Node,RBAC authorization and
// NodeRestriction admission, as a real cluster would be.
const annotationMirror = "kubernetes.io/config.mirror"

type apiserver struct {
	t      testing.TB
	script string
	admin  *kubernetes.Clientset
}

func needApiserver(t testing.TB) *apiserver {
	t.Helper()
	kc, script := os.Getenv("LEDGERLET_APISERVER_KUBECONFIG_ADMIN"), os.Getenv("LEDGERLET_DEV_APISERVER")
	if kc == "" || script == "" {
		t.Skip("LEDGERLET_APISERVER_KUBECONFIG_ADMIN / LEDGERLET_DEV_APISERVER not set (run `make test-e2e`)")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &apiserver{t: t, script: script, admin: cs}
}

// nodeKubeconfig is a kubeconfig for system:node:<node>.
func (s *apiserver) nodeKubeconfig(node string) string {
	s.t.Helper()
	out, err := exec.Command(s.script, "node-kubeconfig", node).Output()
	if err != nil {
		s.t.Fatalf("node-kubeconfig %s: %v", node, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func (s *apiserver) run(args ...string) {
	s.t.Helper()
	if out, err := exec.Command(s.script, args...).CombinedOutput(); err != nil {
		s.t.Fatalf("%s %v: %v\n%s", s.script, args, err, out)
	}
}

// mirrorAgent is an agent registered with the apiserver as its node.
func mirrorAgent(t *testing.T, s *apiserver) *agent {
	t.Helper()
	a := newAgent(t)
	a.extra = append(a.extra, "--kubeconfig", s.nodeKubeconfig(a.node))
	t.Cleanup(func() {
		// After the agent's own cleanup (registered earlier, run later):
		// the node object goes too.
		_ = s.admin.CoreV1().Nodes().Delete(context.Background(), a.node, metav1.DeleteOptions{})
	})
	return a
}

func (s *apiserver) mirror(a *agent, name string) *corev1.Pod {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := s.admin.CoreV1().Pods("default").Get(ctx, name+"-"+a.node, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return p
}

// waitMirror waits for a mirror of name that satisfies cond.
func (s *apiserver) waitMirror(a *agent, name string, timeout time.Duration, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	a.t.Helper()
	var got *corev1.Pod
	a.waitFor("mirror "+name+": "+what, timeout, func() bool {
		got = s.mirror(a, name)
		return got != nil && cond(got)
	})
	return got
}

func (s *apiserver) noMirror(a *agent, name string, timeout time.Duration) {
	a.t.Helper()
	a.waitFor("mirror "+name+" gone", timeout, func() bool { return s.mirror(a, name) == nil })
}

func running(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) == 0 {
		return false
	}
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Running == nil || !strings.HasPrefix(c.ContainerID, "containerd://") {
			return false
		}
	}
	return true
}

// assertNo403 checks the agent's log: NodeRestriction and the Node
// authorizer must accept everything the agent sends.
func assertNo403(t *testing.T, a *agent) {
	t.Helper()
	b, err := os.ReadFile(a.stderr)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "forbidden") || strings.Contains(line, " 403") {
			t.Errorf("refused by the apiserver: %s", line)
		}
	}
}

func TestMirrorPodsFollowStaticPods(t *testing.T) {
	s := needApiserver(t)
	a := mirrorAgent(t, s)
	a.start()
	ctx := context.Background()

	// The node registers and is Ready while the runtime answers.
	a.waitFor("node Ready", 30*time.Second, func() bool {
		n, err := s.admin.CoreV1().Nodes().Get(ctx, a.node, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return true
			}
		}
		return false
	})

	a.writeManifest("web.yaml", shPod("web", "Always", "sleep 3600"))
	view := a.waitRunning("web", 60*time.Second)
	m := s.waitMirror(a, "web", 10*time.Second, "running", running)
	if m.Annotations[annotationMirror] != view.Hash || m.Annotations["kubernetes.io/config.hash"] != view.Hash {
		t.Fatalf("mirror annotations %v, want config.mirror = config.hash = %s", m.Annotations, view.Hash)
	}
	if len(m.OwnerReferences) != 1 || m.OwnerReferences[0].Kind != "Node" || m.OwnerReferences[0].Name != a.node ||
		m.OwnerReferences[0].Controller == nil || !*m.OwnerReferences[0].Controller {
		t.Fatalf("mirror owner %+v, want its Node as controller", m.OwnerReferences)
	}
	if got, want := m.Status.ContainerStatuses[0].ContainerID, "containerd://"+view.Containers[0].ContainerID; got != want {
		t.Fatalf("mirror container ID %s, want %s", got, want)
	}
	if v := a.pod("web"); v.Mirror == nil || v.Mirror.UID != string(m.UID) || !v.Mirror.Current {
		t.Fatalf("pods shows mirror %+v, want %s current", v.Mirror, m.UID)
	}

	// Deleted by a user, gracefully: recreated (a new UID).
	old := m.UID
	if err := s.admin.CoreV1().Pods("default").Delete(ctx, m.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	m = s.waitMirror(a, "web", 10*time.Second, "recreated after a graceful delete", func(p *corev1.Pod) bool {
		return p.UID != old && p.DeletionTimestamp == nil && running(p)
	})
	// Deleted with --force --grace-period=0: recreated.
	old = m.UID
	zero := int64(0)
	if err := s.admin.CoreV1().Pods("default").Delete(ctx, m.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	m = s.waitMirror(a, "web", 10*time.Second, "recreated after a forced delete", func(p *corev1.Pod) bool { return p.UID != old })

	// A user's edit of the mirror's spec is not the node's truth: ignored.
	// An edit of the manifest replaces the mirror with one of the new hash.
	old = m.UID
	a.writeManifest("web.yaml", shPod("web", "Always", "sleep 3601"))
	a.waitFor("the new version to run", 60*time.Second, func() bool {
		v := a.pod("web")
		return v != nil && v.Hash != view.Hash && v.Phase == "Running"
	})
	view = *a.pod("web")
	s.waitMirror(a, "web", 10*time.Second, "replaced with the new hash", func(p *corev1.Pod) bool {
		return p.UID != old && p.Annotations[annotationMirror] == view.Hash && running(p)
	})

	// A crash shows in the mirror's restart count.
	a.writeManifest("crash.yaml", shPod("crash", "Always", "sleep 1; exit 3"))
	s.waitMirror(a, "crash", 40*time.Second, "restartCount after a crash", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1 &&
			p.Status.ContainerStatuses[0].LastTerminationState.Terminated != nil &&
			p.Status.ContainerStatuses[0].LastTerminationState.Terminated.ExitCode == 3
	})

	// Manifest removed: the mirror goes.
	a.removeManifest("web.yaml")
	a.removeManifest("crash.yaml")
	s.noMirror(a, "web", 30*time.Second)
	s.noMirror(a, "crash", 30*time.Second)

	a.stop()
	if out, err := a.cli("replay", "verify", "--db", filepath.Join(a.dataDir, "ledger.db")); err != nil {
		t.Fatalf("replay verify: %v %s", err, out)
	}
	hist, err := a.cli("history", "default/web-"+a.node, "--db", filepath.Join(a.dataDir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"MirrorCreate", "MirrorDelete", "MirrorStatus"} {
		if !strings.Contains(hist, want) {
			t.Errorf("history lacks %s:\n%s", want, hist)
		}
	}
	assertNo403(t, a)
}

// TestStaleMirrorFromAnEarlierRunIsDeletedAtStart: a mirror of this node that
// no manifest provides any more (left while the agent was down) goes once
// the sources have listed.
func TestStaleMirrorFromAnEarlierRunIsDeletedAtStart(t *testing.T) {
	s := needApiserver(t)
	a := mirrorAgent(t, s)
	ctx := context.Background()
	// The node object must exist for the stale mirror's owner.
	a.start()
	a.waitFor("node registered", 30*time.Second, func() bool {
		_, err := s.admin.CoreV1().Nodes().Get(ctx, a.node, metav1.GetOptions{})
		return err == nil
	})
	a.stop()
	ghost := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "ghost-" + a.node, Namespace: "default",
			Annotations: map[string]string{annotationMirror: "0123456789abcdef", "kubernetes.io/config.source": "file"}},
		Spec: corev1.PodSpec{NodeName: a.node, Containers: []corev1.Container{{Name: "c", Image: "localhost/busybox:1.36"}}},
	}
	if _, err := s.admin.CoreV1().Pods("default").Create(ctx, ghost, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	a.start()
	a.waitFor("the stale mirror deleted", 30*time.Second, func() bool {
		_, err := s.admin.CoreV1().Pods("default").Get(ctx, ghost.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	assertNo403(t, a)
}

// TestApiserverOutageNeverDelaysLocalLife: with the apiserver stopped, a
// manifest added runs and one removed is torn down at once; the mirrors
// catch up as soon as the apiserver answers again.
func TestApiserverOutageNeverDelaysLocalLife(t *testing.T) {
	s := needApiserver(t)
	a := mirrorAgent(t, s)
	a.start()
	a.writeManifest("stay.yaml", shPod("stay", "Always", "sleep 3600"))
	a.writeManifest("leave.yaml", shPod("leave", "Always", "sleep 3600"))
	a.waitRunning("stay", 60*time.Second)
	a.waitRunning("leave", 60*time.Second)
	s.waitMirror(a, "stay", 10*time.Second, "running", running)
	s.waitMirror(a, "leave", 10*time.Second, "running", running)

	s.run("stop-apiserver")
	restarted := false
	defer func() {
		if !restarted {
			s.run("start-apiserver")
		}
	}()
	outage := time.Now()
	a.writeManifest("come.yaml", shPod("come", "Always", "sleep 3600"))
	a.removeManifest("leave.yaml")
	a.waitRunning("come", 30*time.Second)
	a.waitFor("leave torn down in the runtime", 30*time.Second, func() bool {
		for _, p := range a.runtimePods() {
			if p.Name == "leave-"+a.node {
				return false
			}
		}
		return true
	})
	if d := time.Since(outage); d > 20*time.Second {
		t.Errorf("local changes took %s with the apiserver down", d)
	}
	if wait := 60*time.Second - time.Since(outage); wait > 0 {
		time.Sleep(wait)
	}
	s.run("start-apiserver")
	restarted = true
	back := time.Now()
	s.waitMirror(a, "come", 15*time.Second, "created after the outage", running)
	s.noMirror(a, "leave", 15*time.Second)
	took := time.Since(back)
	t.Logf("mirrors correct %s after the apiserver answered again", took.Round(time.Millisecond))
	// The target is 1 s; the bound leaves room for a loaded test machine.
	if took > 3*time.Second {
		t.Errorf("mirrors took %s to catch up after the outage", took)
	}
	assertNo403(t, a)
}
