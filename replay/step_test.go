package replay_test

import (
	"context"
	"strings"
	"testing"

	"github.com/ledgerlet/ledgerlet/replay"
)

// TestStepShowsWhatEachEventChanged: each step names the fields of the
// canonical state its event changed, a new spec as its diff, and nothing
// for an event that changes nothing.
func TestStepShowsWhatEachEventChanged(t *testing.T) {
	n := newNode(t, false)
	crashLoop(n)
	var steps []replay.Step
	if err := replay.Steps(context.Background(), n.Log, 1, 0, func(s replay.Step) error {
		steps = append(steps, s)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if uint64(len(steps)) != n.Log.LastSeq() {
		t.Fatalf("%d steps for %d events", len(steps), n.Log.LastSeq())
	}
	find := func(typ string, pred func(replay.Change) bool) bool {
		for _, s := range steps {
			if s.Type != typ {
				continue
			}
			for _, c := range s.Changes {
				if pred(c) {
					return true
				}
			}
		}
		return false
	}
	if !find("ManifestChanged", func(c replay.Change) bool {
		return c.Field == "spec" && strings.Contains(c.To, "+     - --enable-admission-plugins=NodeRestrictionn")
	}) {
		t.Error("the edit's step lacks its manifest diff")
	}
	if !find("ManifestChanged", func(c replay.Change) bool {
		return c.Field == "uid" && c.From == apiserverV1.UID && c.To == apiserverV2.UID
	}) {
		t.Error("the edit's step lacks the uid change")
	}
	if !find("ContainerObserved", func(c replay.Change) bool {
		return strings.HasPrefix(c.Field, "backoff.kube-apiserver.delay") && c.To == "40000000000"
	}) {
		t.Error("no step shows the back-off growing to 40s (in ns, as the state holds it)")
	}
	if !find("AgentStarted", func(c replay.Change) bool { return c.Field == "agent.running" && c.From == "false" && c.To == "true" }) {
		t.Error("the agent start's step lacks agent.running")
	}
}
