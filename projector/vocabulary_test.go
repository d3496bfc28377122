package projector_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector"
	"github.com/ledgerlet/ledgerlet/replay"
)

// TestEveryEventTypeHasAFoldArmAndASummary: the vocabulary is one list
// (events.proto); a type added there without a fold arm or a one-line
// summary would be silently ignored by the state or shown by its bare name.
func TestEveryEventTypeHasAFoldArmAndASummary(t *testing.T) {
	types := eventlog.Types()
	if len(types) < 20 {
		t.Fatalf("only %d event types", len(types))
	}
	for _, name := range types {
		mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName("ledgerlet.events.v1." + name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		e := eventlog.Event{Seq: 1, Time: time.Unix(1_800_000_000, 0), Pod: "default/p-node1", Data: mt.New().Interface()}
		if !projector.ApplyKnown(projector.New(), e) {
			t.Errorf("%s has no fold arm in projector.Apply", name)
		}
		if s := replay.Summary(e); s == name || strings.TrimSpace(s) == "" {
			t.Errorf("%s has no one-line summary in replay.Summary (got %q)", name, s)
		}
	}
}

// TestEveryActionHasALane: actions are planned per lane.
func TestEveryActionHasALane(t *testing.T) {
	for _, a := range pb.Actions() {
		if l := a.Lane(); l != pb.LaneRuntime && l != pb.LaneMirror {
			t.Errorf("%s: lane %q", a, l)
		}
	}
}
