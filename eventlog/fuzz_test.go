package eventlog

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

var fuzzPods = []string{"kube-system/etcd-node1", "ns/a", "ns/b"}

func fuzzPodName(id uint32) (string, bool) {
	if id == 0 || int(id) > len(fuzzPods) {
		return "", false
	}
	return fuzzPods[id-1], true
}

func fuzzPodID(pod string) (uint32, bool) {
	for i, p := range fuzzPods {
		if p == pod {
			return uint32(i + 1), true
		}
	}
	return 0, pod == ""
}

func sameEvent(a, b Event) bool {
	return a.Seq == b.Seq && a.Time.Equal(b.Time) && a.Boottime == b.Boottime && a.Pod == b.Pod && proto.Equal(a.Data, b.Data)
}

// FuzzDecode feeds arbitrary stored values to the decoder (both the compact
// form and the legacy plain Encode form): it must return an event or an
// error, never panic; valueHeader (used by tail scans) must agree with it;
// and whatever decodes must survive a re-encode in both forms unchanged.
func FuzzDecode(f *testing.F) {
	tm := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	for i, ev := range []Event{
		{Pod: fuzzPods[0], Data: &eventpb.ContainerObserved{Uid: "0b5e1c2a-3d4f-4a6b-8c7d-9e0f1a2b3c4d",
			ContainerId: strings.Repeat("ab12", 16), SandboxId: strings.Repeat("9f", 32), State: "running", Attempt: 3}},
		{Data: &eventpb.AgentStarted{Version: "v1", Flags: []string{"--a=b"}}},
		{Pod: fuzzPods[1], Data: &eventpb.ManifestAdded{PodJson: []byte{0xff, 0, 0xff, 0xff, 'a'}}},
		{Pod: "other/pod", Data: &eventpb.Outcome{IntentSeq: 3, Ok: true}},
	} {
		ev.Time = tm.Add(time.Duration(i))
		if id, ok := fuzzPodID(ev.Pod); ok {
			p, err := prepare(ev)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(encodeValue(nil, id, ev.Time.UnixNano(), ev.Boottime, p.packed))
		}
		plain, err := Encode(ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(plain)
	}
	f.Add([]byte{})
	f.Add([]byte{formatCompact})
	f.Add([]byte{formatCompact, 9, 1, hexEsc})
	f.Add([]byte{formatCompact, 0, 0, hexEsc, 3, 1, 2})
	f.Add([]byte{formatCompactBoottime, 0, 0, 7, hexEsc, 3, 1, 2})

	f.Fuzz(func(t *testing.T, v []byte) {
		const seq = 42
		var scratch []byte
		e, err := decodeValue(seq, v, fuzzPodName, &scratch)
		id, hpod, ht, herr := valueHeader(seq, v)
		if err != nil {
			return
		}
		if e.Seq != seq || e.Data == nil {
			t.Fatalf("decoded %+v without seq or payload", e)
		}
		if herr != nil {
			t.Fatalf("decodeValue accepted what valueHeader refused: %v", herr)
		}
		if ht != e.Time.UnixNano() {
			t.Fatalf("valueHeader time %d, decodeValue time %d", ht, e.Time.UnixNano())
		}
		hp := hpod
		if id != 0 {
			hp, _ = fuzzPodName(id)
		}
		if hp != e.Pod {
			t.Fatalf("valueHeader pod %q (id %d), decodeValue pod %q", hp, id, e.Pod)
		}

		// Plain form.
		plain, err := Encode(e)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", e, err)
		}
		got, err := decodeValue(seq, plain, fuzzPodName, &scratch)
		if err != nil || !sameEvent(got, e) {
			t.Fatalf("plain round trip: got %+v, %v; want %+v", got, err, e)
		}
		// Compact form, when the pod has an id.
		pid, ok := fuzzPodID(e.Pod)
		if !ok {
			return
		}
		p, err := prepare(e)
		if err != nil {
			t.Fatalf("prepare %+v: %v", e, err)
		}
		cv := encodeValue(nil, pid, e.Time.UnixNano(), e.Boottime, p.packed)
		got, err = decodeValue(seq, cv, fuzzPodName, &scratch)
		if err != nil || !sameEvent(got, e) {
			t.Fatalf("compact round trip: got %+v, %v; want %+v", got, err, e)
		}
	})
}
