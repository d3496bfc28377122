package eventlog_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/ledgerlet/ledgerlet/eventlog"
	"github.com/ledgerlet/ledgerlet/eventlog/eventlogtest"
	"github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

// The writer stores events through a direct encoding of the payload field;
// it must produce exactly Encode's bytes for the event without pod and time.
func TestEncodePayloadMatchesEncodeWithoutPodAndTime(t *testing.T) {
	mix := eventlogtest.NewMix(3)
	evs := []eventlog.Event{
		{Data: &eventpb.Outcome{}},
		{Pod: "a/b", Time: time.Unix(7, 8), Data: &eventpb.AgentStarted{Version: "v", Flags: []string{"x", "y"}}},
	}
	for range 2000 {
		evs = append(evs, mix.Next())
	}
	for _, ev := range evs {
		got, err := eventlog.EncodePayload(ev)
		if err != nil {
			t.Fatal(err)
		}
		plain := ev
		plain.Pod, plain.Time = "", time.Time{}
		want, err := eventlog.Encode(plain)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: EncodePayload = %x, want %x", ev.Type(), got, want)
		}
	}
	for _, ev := range []eventlog.Event{{}, {Data: &eventpb.Record{}}} {
		if _, err := eventlog.EncodePayload(ev); err == nil {
			t.Errorf("EncodePayload(%v) accepted", ev)
		}
	}
}
