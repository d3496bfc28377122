package eventlog

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	"github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

func TestHexpackRoundTripsAnyBytes(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		// Bias towards hex digits and the escape byte, where the format
		// has its cases.
		alphabet := append([]byte("0123456789abcdefABCDEFxyz-/"), 0, hexEsc, 0x01)
		src := rapid.SliceOf(rapid.OneOf(
			rapid.SampledFrom(alphabet),
			rapid.Byte(),
		)).Draw(t, "src")
		packed := hexpack(nil, src)
		got, err := hexunpack(nil, packed)
		if err != nil {
			t.Fatalf("unpack: %v", err)
		}
		if !bytes.Equal(got, src) {
			t.Fatalf("roundtrip: got %q, want %q (packed %x)", got, src, packed)
		}
	})
}

func TestHexpackShrinksLongLowercaseHexRuns(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want int
	}{
		{"64-hex id", strings.Repeat("0f", 32), 2 + 32},
		{"odd run keeps its last digit literal", strings.Repeat("a", 65), 2 + 32 + 1},
		{"short runs stay literal", "abc-123", 7},
		{"uppercase is not packed", strings.Repeat("AB", 10), 20},
		{"escape byte is doubled", "\xff", 2},
		{"runs longer than 510 are split", strings.Repeat("1", 600), 2 + 255 + 2 + 45},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := len(hexpack(nil, []byte(tc.src))); got != tc.want {
				t.Fatalf("packed size %d, want %d", got, tc.want)
			}
		})
	}
}

func TestHexunpackRejectsTruncatedEscapes(t *testing.T) {
	for _, src := range [][]byte{{hexEsc}, {'a', hexEsc, 3, 1, 2}} {
		if _, err := hexunpack(nil, src); err == nil {
			t.Errorf("hexunpack(%x) accepted", src)
		}
	}
}

func TestStoredValueDecodesToTheAppendedEvent(t *testing.T) {
	tm := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	names := func(id uint32) (string, bool) { return "kube-system/etcd-node1", id == 7 }
	for _, tc := range []struct {
		name  string
		ev    Event
		podID uint32
	}{
		{"container with hex ids and pod", Event{Pod: "kube-system/etcd-node1", Data: &eventpb.ContainerObserved{
			Uid: "0b5e1c2a-3d4f-4a6b-8c7d-9e0f1a2b3c4d", ContainerId: strings.Repeat("ab12", 16), SandboxId: strings.Repeat("9f", 32), State: "running", Attempt: 3}}, 7},
		{"no pod", Event{Data: &eventpb.AgentStarted{Version: "v1", Flags: []string{"--a=b"}}}, 0},
		{"bytes with escape bytes", Event{Pod: "kube-system/etcd-node1", Data: &eventpb.ManifestAdded{PodJson: []byte{0xff, 0, 0xff, 0xff, 'a'}}}, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := prepare(tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			v := encodeValue(nil, tc.podID, tm.UnixNano(), 42, p.packed)
			var scratch []byte
			got, err := decodeValue(9, v, names, &scratch)
			if err != nil {
				t.Fatal(err)
			}
			if got.Seq != 9 || !got.Time.Equal(tm) || got.Boottime != 42 || got.Pod != tc.ev.Pod || !proto.Equal(got.Data, tc.ev.Data) {
				t.Fatalf("got %+v, want %+v", got, tc.ev)
			}
		})
	}
}

func TestPlainEncodedValuesStillDecode(t *testing.T) {
	ev := Event{Time: time.Unix(5, 0).UTC(), Pod: "a/b", Data: &eventpb.Outcome{IntentSeq: 3, Ok: true}}
	b, err := Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	var scratch []byte
	got, err := decodeValue(1, b, nil, &scratch)
	if err != nil || got.Pod != "a/b" || !got.Time.Equal(ev.Time) || !proto.Equal(got.Data, ev.Data) {
		t.Fatalf("got %+v, %v", got, err)
	}
}

// A compact value whose header and payload disagree is corrupt: the tail
// index reads only the header (valueHeader), so a read that took the
// payload's word would file the event under another pod than the index
// does. Found by FuzzDecode (testdata/fuzz/FuzzDecode/3080f911777e6626).
func TestCompactValuesTheIndexWouldReadOtherwiseAreRefused(t *testing.T) {
	tm := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	names := func(id uint32) (string, bool) { return "ns/a", id == 1 }
	withPod, err := Encode(Event{Pod: "000000000", Data: &eventpb.AgentStarted{Version: "v1"}})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := encodePayload(Event{Data: &eventpb.AgentStarted{Version: "v1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		v    []byte
	}{
		{"pod name inside the payload", encodeValue(nil, 0, tm.UnixNano(), 0, hexpack(nil, withPod))},
		// 2^32+1 would truncate to id 1.
		{"pod id beyond 32 bits", append(append(binary.AppendUvarint([]byte{formatCompact}, 1<<32+1),
			binary.AppendUvarint(nil, uint64(tm.UnixNano()))...), hexpack(nil, payload)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var scratch []byte
			if e, err := decodeValue(9, tc.v, names, &scratch); err == nil {
				t.Fatalf("decodeValue accepted %x as %+v", tc.v, e)
			}
		})
	}
}
