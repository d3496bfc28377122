package e2e

import (
	"fmt"
	"os"
	"testing"
	"time"
)

func imagePod(name, image, policy string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: %s
    imagePullPolicy: %s
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
`, name, image, policy)
}

func TestImagePullFailuresBackOff(t *testing.T) {
	a := newAgent(t)
	a.start()
	a.writeManifest("missing.yaml", imagePod("missing", "127.0.0.1:5999/nope:1", "IfNotPresent"))
	a.writeManifest("never.yaml", imagePod("never", "localhost/absent:1", "Never"))
	a.waitFor("ErrImageNeverPull", 60*time.Second, func() bool {
		p := a.pod("never")
		return p != nil && p.Status == "ErrImageNeverPull"
	})
	a.waitFor("ErrImagePull", 60*time.Second, func() bool {
		p := a.pod("missing")
		return p != nil && (p.Status == "ErrImagePull" || p.Status == "ImagePullBackOff")
	})
	a.waitFor("ImagePullBackOff after the second failure", 60*time.Second, func() bool {
		p := a.pod("missing")
		return p != nil && p.Status == "ImagePullBackOff"
	})
	// Retries are spaced by the back-off, not hammered.
	starts := a.startTimes("missing")
	if len(starts) >= 2 && starts[1].Sub(starts[0]) < 9*time.Second {
		t.Fatalf("second pull %s after the first; want ≥ 10s back-off", starts[1].Sub(starts[0]))
	}
}

// TestPullFromRegistry exercises the real pull path: pull policy Always
// against the project's loopback registry (hack/dev-registry).
func TestPullFromRegistry(t *testing.T) {
	image := os.Getenv("LEDGERLET_TEST_REGISTRY_IMAGE")
	if image == "" {
		t.Skip("LEDGERLET_TEST_REGISTRY_IMAGE not set (make test-e2e starts hack/dev-registry)")
	}
	a := newAgent(t)
	a.start()
	a.writeManifest("pulled.yaml", imagePod("pulled", image, "Always"))
	a.waitRunning("pulled", 90*time.Second)
}
