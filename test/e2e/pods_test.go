package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func httpdPod(name string, port int, hostNetwork bool, grace int) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  hostNetwork: %t
  terminationGracePeriodSeconds: %d
  volumes:
  - name: www
    emptyDir: {}
  containers:
  - name: httpd
    image: localhost/busybox:1.36
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo hello-$POD_NAME > /www/index.html && exec httpd -f -p %d -h /www"]
    env:
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    volumeMounts:
    - name: www
      mountPath: /www
`, name, hostNetwork, grace, port)
}

func shPod(name, policy, script string, inits ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\nspec:\n  restartPolicy: %s\n  terminationGracePeriodSeconds: 2\n", name, policy)
	if len(inits) > 0 {
		b.WriteString("  initContainers:\n")
		for i, s := range inits {
			fmt.Fprintf(&b, "  - name: init%d\n    image: localhost/busybox:1.36\n    command: [\"sh\", \"-c\", %q]\n", i, s)
		}
	}
	fmt.Fprintf(&b, "  containers:\n  - name: main\n    image: localhost/busybox:1.36\n    command: [\"sh\", \"-c\", %q]\n", script)
	return b.String()
}

func TestHTTPDReachableOnPodIPAndHostNetwork(t *testing.T) {
	a := newAgent(t)
	a.start()
	a.writeManifest("web.yaml", httpdPod("web", 8080, false, 2))
	a.writeManifest("hostweb.yaml", httpdPod("hostweb", 18181, true, 2))
	web := a.waitRunning("web", 60*time.Second)
	if web.IP == "" {
		t.Fatalf("pod-network pod has no IP: %+v", web)
	}
	a.waitFor("httpd on the pod IP", 20*time.Second, func() bool {
		body, err := httpGet("http://" + web.IP + ":8080/")
		return err == nil && strings.Contains(body, "hello-web-"+a.node)
	})
	a.waitRunning("hostweb", 60*time.Second)
	a.waitFor("httpd on the host network", 20*time.Second, func() bool {
		body, err := httpGet("http://127.0.0.1:18181/")
		return err == nil && strings.Contains(body, "hello-hostweb-"+a.node)
	})
	// kubelet-compatible layout: logs under <root>/<ns>_<name>_<uid>/<container>/<n>.log
	log := filepath.Join(a.logs, fmt.Sprintf("default_web-%s_%s", a.node, web.UID), "httpd", "0.log")
	if _, err := os.Stat(log); err != nil {
		t.Errorf("container log not at the kubelet's path: %v", err)
	}
	if out, err := a.cli("replay", "verify", "--db", filepath.Join(a.dataDir, "ledger.db")); err == nil {
		t.Errorf("replay verify on a live log should be refused (locked), got %s", out)
	}
}

func TestEditReplacesPodWithGraceAndNoOverlap(t *testing.T) {
	a := newAgent(t)
	a.start()
	// The container ignores SIGTERM, so the old pod only goes at the end of its grace period.
	body := func(v string) string {
		return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: edit
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: main
    image: localhost/busybox:1.36
    command: ["sh", "-c", "trap '' TERM; echo %s; while true; do sleep 1; done"]
`, v)
	}
	a.writeManifest("edit.yaml", body("v1"))
	v1 := a.waitRunning("edit", 60*time.Second)
	a.writeManifest("edit.yaml", body("v2"))
	edited := time.Now()
	var v2 = v1
	a.waitFor("the new version to run", 60*time.Second, func() bool {
		p := a.pod("edit")
		if p != nil && p.UID != v1.UID && p.Phase == "Running" {
			v2 = *p
			return true
		}
		return false
	})
	if took := time.Since(edited); took < 3*time.Second {
		t.Errorf("new version ran %s after the edit: the old one's 3s grace period was not honoured", took)
	}
	// Never both at once: the new sandbox was created only after the old one was removed.
	evs := a.events("edit", "")
	var oldRemoved, newCreated float64
	for _, e := range evs {
		d, _ := e["data"].(map[string]any)
		if e["type"] == "Intent" && d["action"] == "RemoveSandbox" && d["uid"] == v1.UID {
			oldRemoved = e["seq"].(float64)
		}
		if e["type"] == "Intent" && d["action"] == "RunSandbox" && d["uid"] == v2.UID && newCreated == 0 {
			newCreated = e["seq"].(float64)
		}
	}
	if oldRemoved == 0 || newCreated == 0 || newCreated < oldRemoved {
		t.Fatalf("old sandbox removed at seq %v, new one created at seq %v: want removal first", oldRemoved, newCreated)
	}
}

func TestRemovalLeavesNothingBehind(t *testing.T) {
	a := newAgent(t)
	a.start()
	a.writeManifest("gone.yaml", httpdPod("gone", 8080, false, 1))
	p := a.waitRunning("gone", 60*time.Second)
	emptyDir := filepath.Join(a.dataDir, "pods", p.UID)
	if _, err := os.Stat(emptyDir); err != nil {
		t.Fatalf("emptyDir data not where expected: %v", err)
	}
	cgroups, _ := filepath.Glob("/sys/fs/cgroup/ledgerlet/pod" + p.UID + "*")
	cgroups2, _ := filepath.Glob("/sys/fs/cgroup/*/ledgerlet/pod" + p.UID + "*")
	cgroups = append(cgroups, cgroups2...)
	a.removeManifest("gone.yaml")
	a.waitFor("the pod to leave the runtime", 60*time.Second, func() bool { return len(a.runtimePods()) == 0 })
	a.waitFor("the pod to leave `pods`", 10*time.Second, func() bool { return a.pod("gone") == nil })
	if _, err := os.Stat(emptyDir); !os.IsNotExist(err) {
		t.Errorf("emptyDir left behind at %s", emptyDir)
	}
	if len(cgroups) == 0 {
		t.Logf("no pod cgroup directory found while running (cgroup layout differs); skipping the cgroup check")
	}
	for _, cg := range cgroups {
		if _, err := os.Stat(cg); !os.IsNotExist(err) {
			t.Errorf("cgroup left behind: %s", cg)
		}
	}
}

func TestCrashLoopBackOffTiming(t *testing.T) {
	a := newAgent(t)
	a.start()
	a.writeManifest("crash.yaml", shPod("crash", "Always", "exit 3"))
	// Wait for three exits: starts at ~0, ~10s, ~30s.
	a.waitFor("three starts", 90*time.Second, func() bool {
		return len(a.startTimes("crash")) >= 3
	})
	starts := a.startTimes("crash")
	gap1, gap2 := starts[1].Sub(starts[0]), starts[2].Sub(starts[1])
	// Each gap is the back-off plus containerd's start and the relist's
	// latency, so the lower bounds prove the back-off and the upper bounds
	// leave room for a loaded machine.
	if gap1 < 10*time.Second || gap1 > 16*time.Second || gap2 < 20*time.Second || gap2 > 26*time.Second {
		t.Fatalf("restart gaps %s, %s; want ~10s then ~20s", gap1, gap2)
	}
	a.waitFor("CrashLoopBackOff", 20*time.Second, func() bool {
		p := a.pod("crash")
		return p.Status == "CrashLoopBackOff"
	})
	p := a.pod("crash")
	if p.Restarts < 2 || p.Containers[0].ExitCode != 3 || p.Containers[0].State != "waiting" {
		t.Fatalf("pod %+v", p)
	}
}

// startTimes are the times of the pod's StartContainer intents.
func (a *agent) startTimes(name string) []time.Time {
	var out []time.Time
	for _, e := range a.events(name, "Intent") {
		if d := e["data"].(map[string]any); d["action"] == "StartContainer" {
			ts, _ := time.Parse(time.RFC3339Nano, e["time"].(string))
			out = append(out, ts)
		}
	}
	return out
}

func TestRestartPoliciesOnFailureAndNever(t *testing.T) {
	a := newAgent(t)
	a.start()
	a.writeManifest("ok.yaml", shPod("onfailure-ok", "OnFailure", "exit 0"))
	a.writeManifest("fail.yaml", shPod("never-fail", "Never", "exit 4"))
	a.writeManifest("retry.yaml", shPod("onfailure-retry", "OnFailure", "exit 5"))
	a.waitFor("OnFailure exit 0 to succeed", 60*time.Second, func() bool {
		p := a.pod("onfailure-ok")
		return p != nil && p.Phase == "Succeeded"
	})
	a.waitFor("Never exit 4 to fail", 60*time.Second, func() bool {
		p := a.pod("never-fail")
		return p != nil && p.Phase == "Failed" && p.Containers[0].ExitCode == 4
	})
	a.waitFor("OnFailure exit 5 to restart", 60*time.Second, func() bool {
		p := a.pod("onfailure-retry")
		return p != nil && p.Restarts >= 1
	})
	time.Sleep(3 * time.Second)
	for _, n := range []string{"onfailure-ok", "never-fail"} {
		if p := a.pod(n); p.Restarts != 0 {
			t.Errorf("%s restarted %d times", n, p.Restarts)
		}
	}
}

func TestInitContainersRunInOrderFirst(t *testing.T) {
	a := newAgent(t)
	a.start()
	a.writeManifest("init.yaml", `apiVersion: v1
kind: Pod
metadata:
  name: init
spec:
  volumes:
  - name: work
    emptyDir: {}
  terminationGracePeriodSeconds: 2
  initContainers:
  - name: first
    image: localhost/busybox:1.36
    command: ["sh", "-c", "sleep 1; echo first >> /work/order"]
    volumeMounts: [{name: work, mountPath: /work}]
  - name: second
    image: localhost/busybox:1.36
    command: ["sh", "-c", "echo second >> /work/order"]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: main
    image: localhost/busybox:1.36
    command: ["sh", "-c", "echo main >> /work/order; while true; do sleep 1; done"]
    volumeMounts: [{name: work, mountPath: /work}]
`)
	p := a.waitRunning("init", 60*time.Second)
	order := filepath.Join(a.dataDir, "pods", p.UID, "volumes", "empty-dir", "work", "order")
	var got string
	a.waitFor("the order file", 10*time.Second, func() bool {
		b, err := os.ReadFile(order)
		got = string(b)
		return err == nil && strings.Contains(got, "main")
	})
	if got != "first\nsecond\nmain\n" {
		t.Fatalf("containers ran in order %q", got)
	}
}
