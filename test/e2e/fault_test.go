package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ledgerlet/ledgerlet/runtime"
)

// torturePod is a pod with a 1 s grace period whose version is in its command.
func torturePod(name string, version int) string {
	return shPod(name, "Always", fmt.Sprintf("trap 'exit 0' TERM; v=%d; while true; do sleep 1; done", version))
}

// TestKill9TortureConvergesFastWithNothingLeft: 20 rounds of random adds,
// edits and removals with the agent killed at a random moment in each; after
// a final start the node converges to the manifests within 5 s, with no
// sandbox, container, cgroup or pod directory left of what is not wanted, no
// container instance started twice, a sound log that verifies, and no step on
// one object retried faster than its back-off.
func TestKill9TortureConvergesFastWithNothingLeft(t *testing.T) {
	a := newAgent(t)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	rounds := 20
	if s := os.Getenv("LEDGERLET_E2E_TORTURE_ROUNDS"); s != "" {
		fmt.Sscan(s, &rounds)
	}
	a.start()
	want := map[string]int{} // name -> version
	version := 0
	for round := 0; round < rounds; round++ {
		for i := 0; i < 8; i++ {
			name := fmt.Sprintf("t%d", i)
			_, present := want[name]
			switch r := rng.IntN(4); {
			case r == 0 && present:
				a.removeManifest(name + ".yaml")
				delete(want, name)
			case r == 1:
				version++
				a.writeManifest(name+".yaml", torturePod(name, version))
				want[name] = version
			}
		}
		time.Sleep(time.Duration(rng.IntN(1200)) * time.Millisecond)
		a.kill9()
		a.start()
	}
	a.kill9()
	r, err := runtime.New(runtime.Config{Endpoint: endpoint, ManagedBy: a.node, DataDir: a.dataDir, CgroupRoot: "/ledgerlet"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	begin := time.Now()
	a.start()
	var last string
	// leftovers lists what remains on the node of UIDs no longer wanted.
	leftovers := func(desired map[string]bool, uids map[string]bool) []string {
		var out []string
		for uid := range uids {
			if desired[uid] {
				continue
			}
			if _, err := os.Stat(filepath.Join(a.dataDir, "pods", uid)); err == nil {
				out = append(out, "pod directory of removed uid "+uid)
			}
			paths, _ := r.PodCgroupPaths(uid)
			for _, p := range paths {
				if _, err := os.Stat(p); err == nil {
					out = append(out, "cgroup of removed uid "+uid+": "+p)
				}
			}
		}
		sort.Strings(out)
		return out
	}
	converged := func() bool {
		rp := a.runtimePods()
		last = ""
		if len(rp) != len(want) {
			last = fmt.Sprintf("%d pods in the runtime, want %d", len(rp), len(want))
			return false
		}
		for _, p := range rp {
			name := strings.TrimSuffix(p.Name, "-"+a.node)
			// One running instance; the previous dead one may be kept for
			// its last state and logs, as the kubelet keeps it.
			running, other := 0, 0
			for _, c := range p.Containers {
				switch c.State {
				case "running":
					running++
				case "exited":
				default:
					other++
				}
			}
			if _, ok := want[name]; !ok || len(p.Sandboxes) != 1 || running != 1 || other != 0 || len(p.Containers) > 2 ||
				p.Sandboxes[0].State != "ready" {
				last = fmt.Sprintf("%s: %d sandboxes, %d containers (%d running)", p.Name, len(p.Sandboxes), len(p.Containers), running)
				return false
			}
		}
		views := a.pods()
		for _, v := range views {
			if v.Phase != "Running" {
				last = v.Name + ": " + v.Phase
				return false
			}
		}
		// The versions and what removed versions left, last: this reads the whole log.
		specs := a.specsByUID()
		desired := map[string]bool{}
		for _, v := range views {
			name := strings.TrimSuffix(v.Name, "-"+a.node)
			if want[name] == 0 || !strings.Contains(specs[v.UID], fmt.Sprintf("v=%d;", want[name])) {
				last = fmt.Sprintf("%s runs another version than %d", v.Name, want[name])
				return false
			}
			desired[v.UID] = true
		}
		uids := map[string]bool{}
		for uid := range specs {
			uids[uid] = true
		}
		if l := leftovers(desired, uids); len(l) > 0 {
			last = strings.Join(l, "\n")
			return false
		}
		return true
	}
	deadline := time.Now().Add(60 * time.Second)
	for !converged() {
		if time.Now().After(deadline) {
			if strings.HasPrefix(last, "cgroup of removed uid ") {
				uid := strings.Fields(last)[4]
				uid = strings.TrimSuffix(uid, ":")
				for _, e := range a.events("", "") {
					if b, _ := json.Marshal(e); strings.Contains(string(b), uid) {
						t.Logf("%v %v %v %s", e["seq"], e["time"], e["type"], b)
					}
				}
			}
			t.Fatalf("not converged after 60 s: %s", last)
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(begin)
	t.Logf("converged %s after the final start (%d rounds, %d pods wanted)", took.Round(time.Millisecond), rounds, len(want))
	// The target is 5 s (the kubelet: 3.3 s here); the bound leaves room for
	// a loaded test machine. BENCHMARKS.md has the measured figures.
	if took > 8*time.Second {
		t.Errorf("converged in %s, want ≤ 5 s (bound 8 s)", took)
		out, _ := a.cli("events", "--since", time.Since(begin).Round(time.Second).String())
		t.Logf("events since the final start:\n%s", out)
		all, _ := a.cli("events")
		var failed []string
		for _, line := range strings.Split(all, "\n") {
			if strings.Contains(line, "failed") || strings.Contains(line, "AgentStarted") || strings.Contains(line, "Reconciled") {
				failed = append(failed, line)
			}
		}
		t.Logf("failures and starts:\n%s", strings.Join(failed, "\n"))
	}
	a.stop()
	db := filepath.Join(a.dataDir, "ledger.db")
	if out, err := a.cli("check", "--db", db); err != nil {
		t.Errorf("check: %v\n%s", err, out)
	}
	if out, err := a.cli("replay", "verify", "--db", db); err != nil {
		t.Errorf("replay verify: %v\n%s", err, out)
	}

	evs := a.offlineEvents(db)
	// No container instance started twice; no step retried in a loop.
	started := map[string]int{}
	perObjectMinute := map[string]int{}
	intents := map[float64]map[string]any{}
	for _, e := range evs {
		d := e["data"].(map[string]any)
		switch e["type"] {
		case "Intent":
			intents[e["seq"].(float64)] = d
		case "Outcome":
			in := intents[mustFloat(d["intentSeq"])]
			if in != nil && in["action"] == "StartContainer" && d["ok"] == true {
				started[fmt.Sprint(in["uid"], "/", in["container"], "/", in["attempt"])]++
			}
			// Retries after a recorded failure are what back-off bounds; a
			// step cut short by a kill (Reconciled) is planned again at
			// once, as it should be, and the torture kills often.
			if in != nil && d["ok"] != true && d["reason"] != "Reconciled" {
				obj := fmt.Sprint(in["action"], in["containerId"], in["sandboxId"], in["uid"], in["container"], in["attempt"])
				perObjectMinute[obj+"@"+eventTime(e).Truncate(time.Minute).String()]++
			}
		}
	}
	for k, n := range started {
		if n > 1 {
			t.Errorf("container instance %s started %d times", k, n)
		}
	}
	var busiest []string
	for k, n := range perObjectMinute {
		// A back-off from 1 s doubling allows at most ~7 failed tries of
		// one step in a minute.
		if n > 8 {
			busiest = append(busiest, fmt.Sprintf("%s: %d", k, n))
		}
	}
	sort.Strings(busiest)
	if len(busiest) > 0 {
		t.Errorf("steps retried faster than their back-off:\n%s", strings.Join(busiest, "\n"))
	}
}

// specsByUID maps each UID to the pod spec JSON recorded for it.
func (a *agent) specsByUID() map[string]string {
	out := map[string]string{}
	for _, e := range a.events("", "") {
		d, _ := e["data"].(map[string]any)
		if d == nil || (e["type"] != "ManifestAdded" && e["type"] != "ManifestChanged") {
			continue
		}
		if uid, _ := d["uid"].(string); uid != "" {
			b, _ := json.Marshal(d["pod"])
			out[uid] = string(b)
		}
	}
	return out
}

func mustJSON(t testing.TB, line string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("%v: %s", err, line)
	}
	return m
}

func (a *agent) offlineEvents(db string) []map[string]any {
	a.t.Helper()
	out, err := a.cli("events", "-o", "json", "--db", db)
	if err != nil {
		a.t.Fatal(err)
	}
	var evs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line != "" {
			evs = append(evs, mustJSON(a.t, line))
		}
	}
	return evs
}
