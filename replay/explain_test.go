package replay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ledgerlet/ledgerlet/replay"
)

// explainCases are the recorded situations `explain` must answer
// specifically; each golden file holds the text and the JSON.
var explainCases = []struct {
	name      string
	apiserver bool
	pod       string
	record    func(*node) time.Time
	want      []string // phrases the summary must hold
}{
	{"crash-loop", false, apiserverV2.Key, crashLoop, []string{
		"not running: container `kube-apiserver` exited 1 at", "(3rd time in 5m0s)", "in back-off until", "(40s after the exit",
		"the manifest was last changed at", "the previous version (a1b2c3d4) ran 2d1h without a restart"}},
	{"rejected-edit", false, etcd.Key, rejectedEdit, []string{
		"running: container `etcd` runs", "was rejected: spec.containers[0].image: Required value", "version e7c0e7c0 (accepted at"}},
	{"image-pull", false, web.Key, imagePull, []string{
		"the image `registry.example.com/team/web:2.0` of container `web` cannot be pulled (ImagePullBackOff)", "not found", "3 attempts since"}},
	{"pending-removal", false, cache.Key, pendingRemoval, []string{
		"being removed: its manifest /etc/kubernetes/manifests/cache-node1.yaml was removed", "stopping container `redis`", "grace period 60s, SIGKILL at"}},
	{"runtime-unreachable", false, etcd.Key, runtimeLost, []string{
		"the container runtime at unix:///run/containerd/containerd.sock is unreachable since", "connection refused", "what it last said stands"}},
	{"liveness-kill", false, etcd.Key, livenessKill, []string{
		"container `etcd` was killed by its liveness probe at", "HTTP probe failed with statuscode: 503",
		"not ready: the readiness probe of container `etcd` fails since", "statuscode: 500"}},
	{"mirror-apiserver-down", true, etcd.Key, mirrorApiserverDown, []string{
		"mirror pod not in sync: the apiserver https://10.0.0.1:6443 is unreachable since", "the pod runs on regardless"}},
}

func TestExplainSaysWhyFromTheLedgerAlone(t *testing.T) {
	for _, tc := range explainCases {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, tc.apiserver)
			at := tc.record(n)
			x, err := replay.Explain(context.Background(), n.Log, replay.ExplainOptions{Pod: tc.pod, At: at})
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(x.Summary, w) {
					t.Errorf("summary lacks %q:\n%s", w, x.Summary)
				}
			}
			var b bytes.Buffer
			if err := x.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			// The JSON without its view: the view is `pods -o json`'s shape,
			// pinned by its own tests; here the explanation is.
			raw, err := json.Marshal(x)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			if v, ok := m["view"].(map[string]any); !ok || v["name"] == nil {
				t.Errorf("explanation JSON lacks the pod's view: %s", raw)
			}
			delete(m, "view")
			b.WriteString("\n--- json (view left out)\n")
			enc := json.NewEncoder(&b)
			enc.SetIndent("", "  ")
			if err := enc.Encode(m); err != nil {
				t.Fatal(err)
			}
			golden(t, "explain/"+tc.name+".golden", b.Bytes())
		})
	}
}

func TestExplainOfAPodTheLogNeverNamedIsAnError(t *testing.T) {
	n := newNode(t, false)
	_, err := replay.Explain(context.Background(), n.Log, replay.ExplainOptions{Pod: "default/nope-node1"})
	if !errors.Is(err, replay.ErrUnknownPod) {
		t.Fatalf("err = %v, want ErrUnknownPod", err)
	}
}
