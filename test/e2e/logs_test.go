package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chattyPod writes 50 numbered lines of ~100 bytes every 0.1s (~50 KB/s),
// each tagged with an id of its instance; it says bye and exits 1 when the
// test drops a file into its ctl hostPath.
func chattyPod(name, ctl string) string {
	script := `id=$(cut -c1-8 /proc/sys/kernel/random/uuid); i=0
while true; do
  if [ -f /ctl/stop ]; then rm -f /ctl/stop; echo "bye $id"; exit 1; fi
  j=0
  while [ $j -lt 50 ]; do i=$((i+1)); j=$((j+1)); echo "line $i $id $PAD"; done
  sleep 0.1
done`
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: ctl
    hostPath: {path: %s, type: DirectoryOrCreate}
  containers:
  - name: main
    image: localhost/busybox:1.36
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", %q]
    env:
    - name: PAD
      value: %s
    volumeMounts:
    - name: ctl
      mountPath: /ctl
`, name, ctl, script, strings.Repeat("x", 80))
}

// chattyLine is one line the chatty pod wrote: its number and instance.
type chattyLine struct {
	n  int
	id string
}

func parseChatty(t *testing.T, out string) []chattyLine {
	t.Helper()
	var lines []chattyLine
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || f[0] != "line" {
			continue
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		lines = append(lines, chattyLine{n, f[2]})
	}
	return lines
}

// consecutive fails unless lines are one instance's, numbered without a
// gap or a repeat: rotated files were read in order, each once.
func consecutive(t *testing.T, what string, lines []chattyLine) {
	t.Helper()
	if len(lines) == 0 {
		t.Fatalf("%s: no lines", what)
	}
	for i := 1; i < len(lines); i++ {
		if lines[i].id != lines[0].id || lines[i].n != lines[i-1].n+1 {
			t.Fatalf("%s: line %d is %+v after %+v; want one instance's lines in order, none missing", what, i, lines[i], lines[i-1])
		}
	}
}

func lastLineNumber(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ls := strings.Split(strings.TrimSpace(string(b)), "\n")
	f := strings.Fields(ls[len(ls)-1])
	if len(f) < 5 {
		t.Fatalf("last line of %s: %q", path, ls[len(ls)-1])
	}
	n, _ := strconv.Atoi(f[4])
	return n
}

func TestContainerLogsAreRotatedAndBounded(t *testing.T) {
	a := newAgent(t, "--container-log-max-size", "64Ki", "--container-log-max-files", "3")
	a.start()
	ctl := filepath.Join(t.TempDir(), "ctl")
	a.writeManifest("chatty.yaml", chattyPod("chatty", ctl))
	p := a.waitRunning("chatty", 60*time.Second)
	pod := "default/" + p.Name
	dir := filepath.Join(a.logs, "default_"+p.Name+"_"+p.UID, "main")
	files := func() []string {
		entries, _ := os.ReadDir(dir)
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		sort.Strings(out)
		return out
	}

	// Rotations every 10s (the kubelet's period) at ~500 KB each: watch
	// the file count until two have happened, and after.
	rotations, most := 0, 0
	var seen = map[string]bool{}
	deadline := time.Now().Add(60 * time.Second)
	for rotations < 3 && time.Now().Before(deadline) {
		fs := files()
		most = max(most, len(fs))
		for _, f := range fs {
			if name := strings.TrimSuffix(f, ".gz"); name != "0.log" && !seen[name] {
				seen[name] = true
				rotations++
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if rotations < 3 {
		t.Fatalf("%d rotations in 60s; files %v", rotations, files())
	}
	if most > 3 {
		t.Fatalf("saw %d log files at once; --container-log-max-files is 3", most)
	}
	fs := files()
	if len(fs) != 3 || fs[0] != "0.log" || !strings.HasSuffix(fs[1], ".gz") || strings.HasSuffix(fs[2], ".gz") {
		t.Fatalf("files %v: want 0.log, an older rotated file gzipped and the newest one plain", fs)
	}
	t.Logf("after %d rotations: %v", rotations, fs)

	// The runtime reopened the log: the live file holds the lines after the
	// newest rotated one, and keeps growing.
	newestRotated := filepath.Join(dir, fs[2])
	live := filepath.Join(dir, "0.log")
	before, _ := os.Stat(live)
	time.Sleep(time.Second)
	after, _ := os.Stat(live)
	if after.Size() <= before.Size() {
		t.Fatalf("the live log stopped growing after a rotation (%d -> %d bytes)", before.Size(), after.Size())
	}

	// logs: every retained line, rotated files first, in order; the newest
	// lines are the live file's.
	out, err := a.cli("logs", pod, "--pod-logs-dir", a.logs)
	if err != nil {
		t.Fatal(err)
	}
	all := parseChatty(t, out)
	consecutive(t, "logs", all)
	if last := lastLineNumber(t, newestRotated); all[len(all)-1].n <= last {
		t.Fatalf("logs ends at line %d, no newer than the newest rotated file's last (%d)", all[len(all)-1].n, last)
	}
	t.Logf("logs printed lines %d..%d (%d bytes)", all[0].n, all[len(all)-1].n, len(out))
	out, err = a.cli("logs", pod, "--pod-logs-dir", a.logs, "--tail", "5", "--timestamps")
	if err != nil {
		t.Fatal(err)
	}
	if tail := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); len(tail) != 5 || !strings.HasPrefix(tail[0], time.Now().UTC().Format("2006-01-02T")) {
		t.Fatalf("--tail 5 --timestamps printed %q", out)
	}

	// -f across a rotation: every line once, in order.
	ctx, cancel := context.WithTimeout(context.Background(), 14*time.Second)
	defer cancel()
	follow := exec.CommandContext(ctx, binary, "logs", pod, "-f", "--tail", "1", "--pod-logs-dir", a.logs, "--data-dir", a.dataDir)
	followed, _ := follow.Output()
	fl := parseChatty(t, string(followed))
	consecutive(t, "logs -f", fl)
	if span := fl[len(fl)-1].n - fl[0].n; span < 1000 {
		t.Fatalf("logs -f followed only %d lines in 14s (the pod writes ~500 a second)", span)
	}

	// A restart: --previous shows the instance that said bye.
	if err := os.WriteFile(filepath.Join(ctl, "stop"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	a.waitFor("the restarted instance", 60*time.Second, func() bool {
		p := a.pod("chatty")
		return p != nil && p.Containers[0].RestartCount == 1 && p.Containers[0].State == "running"
	})
	prev, err := a.cli("logs", pod, "--pod-logs-dir", a.logs, "--previous", "--tail", "2")
	if err != nil {
		t.Fatal(err)
	}
	pl := strings.Split(strings.TrimSuffix(prev, "\n"), "\n")
	if len(pl) != 2 || pl[1] != "bye "+all[0].id || !strings.HasPrefix(pl[0], "line ") {
		t.Fatalf("--previous --tail 2 printed %q; want the first instance's (%s) last line and bye", prev, all[0].id)
	}
	cur, err := a.cli("logs", pod, "--pod-logs-dir", a.logs, "--tail", "3")
	if err != nil {
		t.Fatal(err)
	}
	if cl := parseChatty(t, cur); len(cl) != 3 || cl[0].id == all[0].id {
		t.Fatalf("logs after the restart printed %q; want the new instance's lines", cur)
	}

	// The pod's log directory goes with the pod.
	a.removeManifest("chatty.yaml")
	a.waitFor("the pod to leave the runtime", 60*time.Second, func() bool { return len(a.runtimePods()) == 0 })
	a.waitFor("the pod's log directory to go", 20*time.Second, func() bool {
		_, err := os.Stat(filepath.Dir(dir))
		return os.IsNotExist(err)
	})
}
