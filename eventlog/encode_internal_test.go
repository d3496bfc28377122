package eventlog

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

// The writer stores tag+time followed by the record encoded without time;
// that must be byte-identical to Encode of the timed event, so stored values
// are exactly Encode(event).
func TestStoredValueIsEncodeOfTimedEvent(t *testing.T) {
	tm := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	for _, ev := range []Event{
		{Pod: "kube-system/etcd-node1", Data: &eventpb.ContainerObserved{Uid: "u", ContainerId: "c", State: "running", Attempt: 3}},
		{Data: &eventpb.AgentStarted{Version: "v1", Flags: []string{"--a=b"}}},
		{Pod: "a/b", Data: &eventpb.Outcome{IntentSeq: 7, Ok: true}},
		{Data: &eventpb.MirrorGone{}},
	} {
		p, err := prepare(ev)
		if err != nil {
			t.Fatal(err)
		}
		got := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), uint64(tm.UnixNano()))
		got = append(got, p.rec...)
		ev.Time = tm
		want, err := Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: stored %x, Encode gives %x", ev.Type(), got, want)
		}
	}
}
