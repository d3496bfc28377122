package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// probedPod is a host-network pod with one container probed every second:
// kind "exec" (liveness: a command in the container), "http" (readiness:
// httpGet on its httpd) or "tcp" (liveness: tcpSocket on its httpd).
func probedPod(name, kind string, port int) string {
	cmd, probe := `["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]`, ""
	switch kind {
	case "exec":
		probe = "    livenessProbe:\n      exec: {command: [\"true\"]}\n      periodSeconds: 1\n"
	case "http":
		cmd = fmt.Sprintf(`["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p %d -h /www"]`, port)
		probe = fmt.Sprintf("    readinessProbe:\n      httpGet: {path: /, port: %d}\n      periodSeconds: 1\n", port)
	case "tcp":
		cmd = fmt.Sprintf(`["sh", "-c", "mkdir -p /www && exec httpd -f -p %d -h /www"]`, port)
		probe = fmt.Sprintf("    livenessProbe:\n      tcpSocket: {port: %d}\n      periodSeconds: 1\n", port)
	}
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
%s`, name, cmd, probe)
}

// BenchmarkProbing30Containers: 30 containers, each probed every second —
// 10 exec liveness probes (CRI ExecSync), 10 httpGet readiness probes and
// 10 tcpSocket liveness probes — at the default relist period. Once all are
// ready, the agent's CPU (% of one core) over 30 s, and the events appended
// per minute in that steady state (the target is 0: probes record
// transitions only). containerd's CPU beside it is what exec probes cost
// the runtime (runc's own processes are not counted).
func BenchmarkProbing30Containers(b *testing.B) {
	for i := 0; i < b.N; i++ {
		a := newAgent(b, "--relist-period", "1s")
		a.start()
		for n := 0; n < 10; n++ {
			a.writeManifest(fmt.Sprintf("exec%d.yaml", n), probedPod(fmt.Sprintf("exec%d", n), "exec", 0))
			a.writeManifest(fmt.Sprintf("http%d.yaml", n), probedPod(fmt.Sprintf("http%d", n), "http", 18420+n))
			a.writeManifest(fmt.Sprintf("tcp%d.yaml", n), probedPod(fmt.Sprintf("tcp%d", n), "tcp", 18440+n))
		}
		a.waitFor("30 running, ready pods", 300*time.Second, func() bool {
			ready := 0
			for _, p := range a.pods() {
				if p.Phase == "Running" && p.Ready == "1/1" {
					ready++
				}
			}
			return ready == 30
		})
		time.Sleep(5 * time.Second) // let the last starts settle
		lastSeq := func() float64 {
			evs := a.events("", "")
			return evs[len(evs)-1]["seq"].(float64)
		}
		ctrd := containerdPID()
		seq0, cpu0, ccpu0, at0 := lastSeq(), procCPU(a.cmd.Process.Pid), procCPU(ctrd), time.Now()
		time.Sleep(30 * time.Second)
		seq1, cpu1, ccpu1, at1 := lastSeq(), procCPU(a.cmd.Process.Pid), procCPU(ctrd), time.Now()
		secs := at1.Sub(at0).Seconds()
		b.ReportMetric(100*(cpu1-cpu0)/secs, "agent-cpu-%")
		b.ReportMetric((seq1-seq0)*60/secs, "events/min")
		if ctrd > 0 {
			b.ReportMetric(100*(ccpu1-ccpu0)/secs, "containerd-cpu-%")
		}
		b.ReportMetric(float64(procRSS(a.cmd.Process.Pid))/(1<<20), "agent-rss-MB")
		restarts := 0
		for _, p := range a.pods() {
			restarts += int(p.Restarts)
		}
		if restarts > 0 {
			b.Errorf("%d restarts: a healthy container was killed", restarts)
		}
	}
}

// containerdPID is the private containerd's pid (hack/dev-containerd), or 0.
func containerdPID() int {
	dir := os.Getenv("LEDGERLET_DEV_DIR")
	if dir == "" {
		dir = "/var/lib/ledgerlet-dev"
	}
	b, err := os.ReadFile(dir + "/containerd.pid")
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}
