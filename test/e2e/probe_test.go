package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// verifyLog stops the agent and checks that every decision in its log —
// the stops for failed probes included — is what the planner re-derives.
func (a *agent) verifyLog() {
	a.t.Helper()
	a.stop()
	if out, err := a.cli("replay", "verify", "--db", filepath.Join(a.dataDir, "ledger.db")); err != nil {
		a.t.Fatalf("replay verify: %v\n%s", err, out)
	}
}

func (a *agent) history(name string) string {
	a.t.Helper()
	out, err := a.cli("history", "default/"+name+"-"+a.node)
	if err != nil {
		a.t.Fatal(err)
	}
	return out
}

// A container healthy for its first 4 s, then not: the exec liveness probe
// fails 3 times in a row, the planner stops it with the probe's grace (1 s,
// not the pod's 30), and it is restarted after the back-off.
func TestExecLivenessFailureRestartsTheContainer(t *testing.T) {
	a := newAgent(t)
	a.start()
	a.writeManifest("sick.yaml", `apiVersion: v1
kind: Pod
metadata:
  name: sick
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 30
  containers:
  - name: main
    image: localhost/busybox:1.36
    imagePullPolicy: Never
    command: ["sh", "-c", "touch /tmp/alive; sleep 4; rm /tmp/alive; exec sleep 3600"]
    livenessProbe:
      exec: {command: ["cat", "/tmp/alive"]}
      periodSeconds: 1
      failureThreshold: 3
      terminationGracePeriodSeconds: 1
`)
	a.waitRunning("sick", 60*time.Second)
	a.waitFor("the liveness kill and the restart", 90*time.Second, func() bool {
		p := a.pod("sick")
		return p != nil && p.Containers[0].RestartCount >= 1 && p.Containers[0].State == "running"
	})
	c := a.pod("sick").Containers[0]
	if c.LastState == nil || c.LastState.Reason != "LivenessProbe" || !strings.Contains(c.LastState.Message, "liveness probe failed") {
		t.Fatalf("last state %+v: want it to say the container was killed for its liveness probe", c.LastState)
	}
	var stop map[string]any
	for _, e := range a.events("sick", "Intent") {
		if d := e["data"].(map[string]any); d["action"] == "StopContainer" {
			stop = d
			break
		}
	}
	if stop == nil || stop["reason"] != "liveness probe failed" || mustFloat(stop["gracePeriodSeconds"]) != 1 {
		t.Fatalf("stop intent %v: want reason %q with the probe's grace of 1 s", stop, "liveness probe failed")
	}
	probed := a.events("sick", "ContainerProbed")
	if len(probed) == 0 {
		t.Fatal("no ContainerProbed event")
	}
	if d := probed[0]["data"].(map[string]any); d["probe"] != "liveness" || d["result"] != "failure" || mustFloat(d["consecutive"]) != 3 {
		t.Fatalf("first probe event %v: want a liveness failure after 3 in a row", d)
	}
	h := a.history("sick")
	for _, want := range []string{"liveness probe of main", "intent StopContainer main (grace 1s): liveness probe failed"} {
		if !strings.Contains(h, want) {
			t.Errorf("history does not show %q:\n%s", want, h)
		}
	}
	a.verifyLog()
}

// A pod-network httpd whose readiness endpoint the test switches through a
// hostPath: READY follows it both ways; the probe reaches the pod IP.
func TestHTTPGetReadinessFlipsReadyBothWays(t *testing.T) {
	a := newAgent(t)
	www := t.TempDir()
	if err := os.Chmod(www, 0o755); err != nil {
		t.Fatal(err)
	}
	a.start()
	a.writeManifest("web.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: www
    hostPath: {path: %s, type: Directory}
  containers:
  - name: httpd
    image: localhost/busybox:1.36
    imagePullPolicy: Never
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports:
    - {name: http, containerPort: 8080}
    volumeMounts:
    - {name: www, mountPath: /www}
    readinessProbe:
      httpGet: {path: /ready, port: http, httpHeaders: [{name: X-Probe, value: "1"}]}
      periodSeconds: 1
      failureThreshold: 2
`, www))
	ready := func(want string) {
		t.Helper()
		a.waitFor("READY "+want, 30*time.Second, func() bool {
			p := a.pod("web")
			return p != nil && p.Phase == "Running" && p.Ready == want && p.Containers[0].Ready == (want == "1/1")
		})
	}
	ready("0/1")
	p := a.pod("web")
	a.waitFor("the reason it is not ready", 20*time.Second, func() bool {
		p = a.pod("web")
		return strings.Contains(p.Containers[0].Message, "readiness probe failed: HTTP probe failed with statuscode: 404")
	})
	if err := os.WriteFile(filepath.Join(www, "ready"), []byte("ok\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ready("1/1")
	if err := os.Remove(filepath.Join(www, "ready")); err != nil {
		t.Fatal(err)
	}
	ready("0/1")
	if err := os.WriteFile(filepath.Join(www, "ready"), []byte("ok\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ready("1/1")
	time.Sleep(3 * time.Second) // steady: nothing more to say
	var results []string
	for _, e := range a.events("web", "ContainerProbed") {
		results = append(results, e["data"].(map[string]any)["result"].(string))
	}
	if got := strings.Join(results, " "); got != "failure success failure success" {
		t.Fatalf("readiness events %q: want one per change", got)
	}
	if r := a.pod("web").Restarts; r != 0 {
		t.Fatalf("readiness restarted the container (%d restarts)", r)
	}
	a.verifyLog()
}

// The startup probe succeeds only after 5 s; the liveness probe always
// fails. Liveness must not run (nor kill) before startup succeeded.
func TestStartupProbeHoldsLivenessBack(t *testing.T) {
	a := newAgent(t)
	a.start()
	a.writeManifest("slow.yaml", `apiVersion: v1
kind: Pod
metadata:
  name: slow
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: localhost/busybox:1.36
    imagePullPolicy: Never
    command: ["sh", "-c", "sleep 5; touch /tmp/started; exec sleep 3600"]
    startupProbe:
      exec: {command: ["cat", "/tmp/started"]}
      periodSeconds: 1
      failureThreshold: 30
    livenessProbe:
      exec: {command: ["cat", "/tmp/never"]}
      periodSeconds: 1
      failureThreshold: 2
`)
	a.waitRunning("slow", 60*time.Second)
	a.waitFor("the liveness failure", 60*time.Second, func() bool {
		for _, e := range a.events("slow", "ContainerProbed") {
			if e["data"].(map[string]any)["probe"] == "liveness" {
				return true
			}
		}
		return false
	})
	var startup, liveness time.Time
	for _, e := range a.events("slow", "ContainerProbed") {
		d := e["data"].(map[string]any)
		switch {
		case d["probe"] == "startup" && d["result"] == "success" && startup.IsZero():
			startup = eventTime(e)
		case d["probe"] == "liveness" && liveness.IsZero():
			liveness = eventTime(e)
		}
	}
	if startup.IsZero() || !liveness.After(startup) {
		t.Fatalf("startup success at %v, liveness failure at %v: liveness must wait for startup", startup, liveness)
	}
	if d := liveness.Sub(startup); d < time.Second {
		t.Fatalf("liveness failed %v after startup; with failureThreshold 2 and period 1 s it needs two probes after it", d)
	}
	a.waitFor("the liveness kill", 30*time.Second, func() bool {
		p := a.pod("slow")
		return p != nil && (p.Containers[0].RestartCount >= 1 || p.Containers[0].Reason == "LivenessProbe" || p.Containers[0].Reason == "CrashLoopBackOff")
	})
	a.verifyLog()
}
