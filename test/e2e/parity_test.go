package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func versionedPod(name, extra string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  securityContext:
    seccompProfile: {type: RuntimeDefault}
  containers:
  - name: main
    image: localhost/busybox:1.36
    imagePullPolicy: Never
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
%s`, name, extra)
}

// An edit that adds a field ledgerlet cannot run is rejected, naming the
// field, and the running version is left alone.
func TestUnsupportedFieldEditIsRejectedAndTheOldVersionKeepsRunning(t *testing.T) {
	a := newAgent(t)
	a.start()
	a.writeManifest("keep.yaml", versionedPod("keep", ""))
	before := a.waitRunning("keep", 60*time.Second)
	a.writeManifest("keep.yaml", versionedPod("keep", `  volumes:
  - name: tools
    image: {reference: "localhost/busybox:1.36"}
`))
	var reason string
	a.waitFor("the rejection", 30*time.Second, func() bool {
		for _, e := range a.events("keep", "ManifestRejected") {
			reason, _ = e["data"].(map[string]any)["reason"].(string)
			return true
		}
		return false
	})
	if !strings.Contains(reason, "spec.volumes[0].image: Forbidden: image volumes are not supported") {
		t.Fatalf("rejected with %q; want the field named", reason)
	}
	time.Sleep(2 * time.Second)
	after := a.pod("keep")
	if after == nil || after.Phase != "Running" || after.UID != before.UID || after.Containers[0].ContainerID != before.Containers[0].ContainerID ||
		after.Restarts != 0 || !strings.Contains(after.Rejection, "image volumes") {
		t.Fatalf("after the rejected edit: %+v; want the same container running, the rejection shown", after)
	}
	if n := len(a.events("keep", "Intent")); n != 2 {
		t.Fatalf("%d intents: the rejected edit must not touch the pod", n)
	}
}

// downwardAPI and projected volumes hold the pod's metadata, read-only; a
// Memory emptyDir is a tmpfs of its sizeLimit, gone with the pod.
func TestDownwardAPIAndMemoryEmptyDirRun(t *testing.T) {
	a := newAgent(t)
	a.start()
	a.writeManifest("info.yaml", `apiVersion: v1
kind: Pod
metadata:
  name: info
  labels: {tier: web}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  restartPolicy: Never
  volumes:
  - name: podinfo
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: name, fieldRef: {fieldPath: metadata.name}}
      - {path: mem, resourceFieldRef: {containerName: main, resource: limits.memory, divisor: 1Mi}}
  - name: ids
    projected:
      sources:
      - downwardAPI: {items: [{path: uid, fieldRef: {fieldPath: metadata.uid}}]}
  - name: cache
    emptyDir: {medium: Memory, sizeLimit: 1Mi}
  containers:
  - name: main
    image: localhost/busybox:1.36
    imagePullPolicy: Never
    resources: {limits: {memory: 64Mi}}
    command: ["sh", "-c", "echo labels=$(cat /info/labels) name=$(cat /info/name) mem=$(cat /info/mem) uid=$(cat /ids/uid); touch /info/x 2>/dev/null && echo WRITABLE || echo READONLY; grep ' /cache ' /proc/mounts | cut -d' ' -f3; dd if=/dev/zero of=/cache/big bs=1024 count=2048 2>/dev/null && echo FITS || echo FULL; echo DONE; exec sleep 3600"]
    volumeMounts:
    - {name: podinfo, mountPath: /info}
    - {name: ids, mountPath: /ids}
    - {name: cache, mountPath: /cache}
`)
	p := a.waitRunning("info", 60*time.Second)
	log := filepath.Join(a.logs, fmt.Sprintf("default_info-%s_%s", a.node, p.UID), "main", "0.log")
	var out string
	a.waitFor("the container's report", 20*time.Second, func() bool {
		b, _ := os.ReadFile(log)
		out = string(b)
		return strings.Contains(out, "DONE")
	})
	for _, want := range []string{
		`labels=tier="web"`, "name=info-" + a.node, "mem=64", "uid=" + p.UID, "READONLY", "tmpfs", "FULL",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the container's report lacks %q:\n%s", want, out)
		}
	}
	mounts := func() string { b, _ := os.ReadFile("/proc/self/mountinfo"); return string(b) }
	if !strings.Contains(mounts(), p.UID+"/volumes/empty-dir/cache") {
		t.Fatal("no tmpfs on the host behind the Memory emptyDir")
	}
	a.removeManifest("info.yaml")
	a.waitFor("the pod to go", 60*time.Second, func() bool { return a.pod("info") == nil })
	if strings.Contains(mounts(), p.UID) {
		t.Fatal("the tmpfs outlived the pod")
	}
}

// A native sidecar (an init container with restartPolicy Always) starts
// before the next init container — which reaches it — and keeps running
// beside the app; when it exits it is restarted; on removal the app stops
// before it.
func TestNativeSidecarRunsBesideTheAppAndStopsAfterIt(t *testing.T) {
	a := newAgent(t)
	a.start()
	a.writeManifest("side.yaml", `apiVersion: v1
kind: Pod
metadata:
  name: side
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: proxy
    image: localhost/busybox:1.36
    imagePullPolicy: Never
    restartPolicy: Always
    command: ["sh", "-c", "mkdir -p /www && echo up > /www/index.html && httpd -p 18460 -h /www && sleep 8 && exit 3"]
    startupProbe:
      tcpSocket: {port: 18460}
      periodSeconds: 1
  - name: check
    image: localhost/busybox:1.36
    imagePullPolicy: Never
    command: ["sh", "-c", "wget -q -O- http://127.0.0.1:18460/ | grep -q up"]
  containers:
  - name: main
    image: localhost/busybox:1.36
    imagePullPolicy: Never
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
`)
	a.waitFor("READY 2/2", 60*time.Second, func() bool {
		p := a.pod("side")
		return p != nil && p.Phase == "Running" && p.Ready == "2/2"
	})
	a.waitFor("the sidecar restarted", 60*time.Second, func() bool {
		p := a.pod("side")
		return p != nil && p.Containers[0].RestartCount >= 1 && p.Containers[0].State == "running"
	})
	if p := a.pod("side"); p.Containers[2].RestartCount != 0 || p.Containers[1].ExitCode != 0 {
		t.Fatalf("the app restarted or the init check failed: %+v", p.Containers)
	}
	a.removeManifest("side.yaml")
	a.waitFor("the pod to go", 60*time.Second, func() bool { return a.pod("side") == nil })
	var stops []string
	for _, e := range a.events("side", "Intent") {
		if d := e["data"].(map[string]any); d["action"] == "StopContainer" && d["reason"] == "pod no longer desired" {
			stops = append(stops, d["container"].(string))
		}
	}
	if len(stops) == 0 || stops[0] != "main" {
		t.Fatalf("stops on removal %v: the app must stop before its sidecar", stops)
	}
}

// Requests and limits reach the container's cgroup as the kubelet sets
// them, the OOM score follows the QoS class, and `pods` shows the class.
func TestResourcesReachTheCgroupAndTheOOMScoreFollowsQoS(t *testing.T) {
	a := newAgent(t)
	a.start()
	report := `["sh", "-c", "echo oom=$(cat /proc/self/oom_score_adj) mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes) quota=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) shares=$(cat /sys/fs/cgroup/cpu/cpu.shares); exec sleep 3600"]`
	pod := func(name, resources string) string {
		return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: localhost/busybox:1.36
    imagePullPolicy: Never
    command: %s
%s`, name, report, resources)
	}
	a.writeManifest("g.yaml", pod("g", "    resources: {limits: {cpu: 500m, memory: 64Mi}}\n"))
	a.writeManifest("b.yaml", pod("b", "    resources: {requests: {memory: 1Mi}}\n"))
	a.writeManifest("be.yaml", pod("be", ""))
	// The private containerd has restrict_oom_score_adj: it raises a score
	// below its own to its own (as containerd in a container must).
	guaranteed := []string{"oom=-997 "}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", containerdPID())); err == nil {
		if own, _ := strconv.Atoi(strings.TrimSpace(string(b))); own > -997 {
			guaranteed = append(guaranteed, fmt.Sprintf("oom=%d ", own))
		}
	}
	for _, tc := range []struct {
		name, qos string
		want      []string // any of
	}{
		{"g", "Guaranteed", guaranteed},
		{"b", "Burstable", []string{"oom=999 "}},
		{"be", "BestEffort", []string{"oom=1000 "}},
	} {
		p := a.waitRunning(tc.name, 60*time.Second)
		if p.QOSClass != tc.qos {
			t.Errorf("%s: QoS %q, want %s", tc.name, p.QOSClass, tc.qos)
		}
		log := filepath.Join(a.logs, fmt.Sprintf("default_%s-%s_%s", tc.name, a.node, p.UID), "main", "0.log")
		var out string
		a.waitFor(tc.name+"'s report", 20*time.Second, func() bool {
			b, _ := os.ReadFile(log)
			out = string(b)
			return strings.Contains(out, "oom=")
		})
		found := false
		for _, w := range tc.want {
			found = found || strings.Contains(out, w)
		}
		if !found {
			t.Errorf("%s reports %q, want one of %q", tc.name, strings.TrimSpace(out), tc.want)
		}
		if tc.name == "g" && !strings.Contains(out, "mem=67108864 quota=50000 shares=512") {
			t.Errorf("g reports %q: want the memory limit, CFS quota and shares of its limits", strings.TrimSpace(out))
		}
	}
}

// runAsNonRoot refuses to run an image as root (CreateContainerConfigError)
// and lets a non-root user run; fsGroup owns the emptyDir it writes to.
func TestRunAsNonRootAndFSGroup(t *testing.T) {
	a := newAgent(t)
	a.start()
	pod := func(name, sc string) string {
		return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  securityContext: %s
  volumes:
  - {name: data, emptyDir: {}}
  containers:
  - name: main
    image: localhost/busybox:1.36
    imagePullPolicy: Never
    command: ["sh", "-c", "touch /data/f && echo uid=$(id -u) gid=$(stat -c %%g /data/f) || echo CANNOT; exec sleep 3600"]
    volumeMounts: [{name: data, mountPath: /data}]
`, name, sc)
	}
	a.writeManifest("root.yaml", pod("root", "{runAsNonRoot: true}"))
	a.writeManifest("user.yaml", pod("user", "{runAsNonRoot: true, runAsUser: 1000, fsGroup: 2000}"))
	a.waitFor("the root image refused", 60*time.Second, func() bool {
		p := a.pod("root")
		return p != nil && p.Containers[0].Reason == "CreateContainerConfigError"
	})
	p := a.waitRunning("user", 60*time.Second)
	log := filepath.Join(a.logs, fmt.Sprintf("default_user-%s_%s", a.node, p.UID), "main", "0.log")
	var out string
	a.waitFor("the report", 20*time.Second, func() bool {
		b, _ := os.ReadFile(log)
		out = string(b)
		return strings.Contains(out, "uid=") || strings.Contains(out, "CANNOT")
	})
	if !strings.Contains(out, "uid=1000 gid=2000") {
		t.Fatalf("report %q, want uid 1000 writing files of group 2000", strings.TrimSpace(out))
	}
}

// Lifecycle hooks run as planned actions: postStart before the container
// counts as started (a failing one gets it killed and restarted), preStop
// before the stop, its time taken out of the grace period.
func TestLifecycleHooksRunAsPlannedActions(t *testing.T) {
	a := newAgent(t)
	out := t.TempDir()
	a.start()
	a.writeManifest("hooks.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: hooks
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 10
  volumes:
  - {name: out, hostPath: {path: %s, type: Directory}}
  containers:
  - name: main
    image: localhost/busybox:1.36
    imagePullPolicy: Never
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    volumeMounts: [{name: out, mountPath: /out}]
    lifecycle:
      postStart: {exec: {command: ["sh", "-c", "echo started > /out/poststart"]}}
      preStop: {exec: {command: ["sh", "-c", "echo stopping > /out/prestop; sleep 2"]}}
  - name: broken
    image: localhost/busybox:1.36
    imagePullPolicy: Never
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    lifecycle:
      postStart: {exec: {command: ["false"]}}
`, out))
	a.waitFor("the failed postStart to get broken killed and restarted", 90*time.Second, func() bool {
		p := a.pod("hooks")
		return p != nil && p.Containers[1].RestartCount >= 1
	})
	p := a.pod("hooks")
	if b, err := os.ReadFile(filepath.Join(out, "poststart")); err != nil || strings.TrimSpace(string(b)) != "started" {
		t.Fatalf("postStart did not run: %q %v", b, err)
	}
	if ls := p.Containers[1].LastState; ls == nil || ls.Reason != "FailedPostStartHook" {
		t.Fatalf("broken's last state %+v, want FailedPostStartHook", ls)
	}
	a.removeManifest("hooks.yaml")
	a.waitFor("the pod to go", 60*time.Second, func() bool { return a.pod("hooks") == nil })
	if b, err := os.ReadFile(filepath.Join(out, "prestop")); err != nil || strings.TrimSpace(string(b)) != "stopping" {
		t.Fatalf("preStop did not run: %q %v", b, err)
	}
	var hookSeq float64
	var stopGrace float64 = -1
	for _, e := range a.events("hooks", "Intent") {
		d := e["data"].(map[string]any)
		if d["container"] != "main" {
			continue
		}
		switch d["action"] {
		case "RunPreStop":
			hookSeq = e["seq"].(float64)
		case "StopContainer":
			if hookSeq > 0 && e["seq"].(float64) > hookSeq {
				stopGrace = mustFloat(d["gracePeriodSeconds"])
			}
		}
	}
	if hookSeq == 0 || stopGrace < 2 || stopGrace > 8 {
		t.Fatalf("RunPreStop at #%v, then a stop with grace %v: want the hook first and its ~2 s out of the 10 s grace", hookSeq, stopGrace)
	}
	a.verifyLog()
}
