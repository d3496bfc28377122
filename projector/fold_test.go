package projector_test

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector"
	"github.com/ledgerlet/ledgerlet/projector/projectortest"
)

func fold(t testing.TB, evs []eventlog.Event) *projector.State {
	t.Helper()
	s := projector.New()
	for _, e := range evs {
		s.Apply(e)
	}
	return s
}

func canonical(t testing.TB, s *projector.State) []byte {
	t.Helper()
	b, err := s.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSnapshotPlusTailEqualsFullFold is the property that makes snapshots
// safe: restoring a snapshot taken at any point and folding the rest gives
// byte-identical state to folding everything.
func TestSnapshotPlusTailEqualsFullFold(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		seed := rapid.Uint64().Draw(rt, "seed")
		n := rapid.IntRange(1, 3000).Draw(rt, "n")
		npods := rapid.IntRange(1, 40).Draw(rt, "npods")
		evs := projectortest.New(seed, npods).Events(n)
		cut := rapid.IntRange(0, n).Draw(rt, "cut")

		full := canonical(t, fold(t, evs))

		head := fold(t, evs[:cut])
		snap, err := projector.Restore(canonical(t, head))
		if err != nil {
			rt.Fatal(err)
		}
		for _, e := range evs[cut:] {
			snap.Apply(e)
		}
		if got := canonical(t, snap); !bytes.Equal(got, full) {
			rt.Fatalf("snapshot at %d + tail differs from full fold of %d events:\n%s\n---\n%s", cut, n, got, full)
		}
	})
}

// TestFoldIsDeterministic: folding the same events twice gives identical bytes.
func TestFoldIsDeterministic(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		seed := rapid.Uint64().Draw(rt, "seed")
		evs := projectortest.New(seed, 30).Events(rapid.IntRange(1, 2000).Draw(rt, "n"))
		a := canonical(t, fold(t, evs))
		b := canonical(t, fold(t, evs))
		if !bytes.Equal(a, b) {
			rt.Fatal("two folds of the same events differ")
		}
		// Views are deterministic too.
		va, vb := fold(t, evs).Views(), fold(t, evs).Views()
		if len(va) != len(vb) {
			rt.Fatal("views differ")
		}
	})
}

// TestArbitraryEventsNeverPanic folds random payloads in random order.
func TestArbitraryEventsNeverPanic(t *testing.T) {
	payloads := []func(*rapid.T) eventlog.Event{
		func(rt *rapid.T) eventlog.Event {
			return eventlog.Event{Pod: pick(rt), Data: &pb.ManifestRemoved{Path: pick(rt)}}
		},
		func(rt *rapid.T) eventlog.Event {
			return eventlog.Event{Pod: pick(rt), Data: &pb.ManifestAdded{Path: pick(rt), Uid: pick(rt), PodJson: []byte(`{}`)}}
		},
		func(rt *rapid.T) eventlog.Event {
			return eventlog.Event{Pod: pick(rt), Data: &pb.ManifestRejected{Path: pick(rt), Reason: "x"}}
		},
		func(rt *rapid.T) eventlog.Event {
			return eventlog.Event{Pod: pick(rt), Data: &pb.ContainerGone{ContainerId: pick(rt)}}
		},
		func(rt *rapid.T) eventlog.Event {
			return eventlog.Event{Pod: pick(rt), Data: &pb.SandboxGone{SandboxId: pick(rt)}}
		},
		func(rt *rapid.T) eventlog.Event {
			return eventlog.Event{Pod: pick(rt), Data: &pb.ContainerObserved{ContainerId: pick(rt), Container: pick(rt), State: "running"}}
		},
		func(rt *rapid.T) eventlog.Event {
			return eventlog.Event{Pod: pick(rt), Data: &pb.Outcome{IntentSeq: rapid.Uint64Range(0, 50).Draw(rt, "iseq")}}
		},
		func(rt *rapid.T) eventlog.Event {
			return eventlog.Event{Pod: pick(rt), Data: &pb.Intent{Action: "StartContainer"}}
		},
		func(rt *rapid.T) eventlog.Event {
			return eventlog.Event{Pod: pick(rt), Data: &pb.Intent{Action: "StopContainer", ContainerId: pick(rt), Reason: "liveness probe failed"}}
		},
		func(rt *rapid.T) eventlog.Event {
			kind := rapid.SampledFrom([]string{"liveness", "readiness", "startup", "other"}).Draw(rt, "probe")
			res := rapid.SampledFrom([]string{"success", "failure"}).Draw(rt, "result")
			return eventlog.Event{Pod: pick(rt), Data: &pb.ContainerProbed{ContainerId: pick(rt), Probe: kind, Result: res}}
		},
		func(rt *rapid.T) eventlog.Event {
			return eventlog.Event{Pod: pick(rt), Data: &pb.MirrorGone{MirrorUid: pick(rt)}}
		},
		func(rt *rapid.T) eventlog.Event { return eventlog.Event{Data: &pb.AgentStopped{}} },
	}
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.IntRange(1, 200).Draw(rt, "n")
		var evs []eventlog.Event
		for i := 0; i < n; i++ {
			e := payloads[rapid.IntRange(0, len(payloads)-1).Draw(rt, "kind")](rt)
			e.Seq, e.Time = uint64(i+1), time.Unix(int64(i), 0)
			evs = append(evs, e)
		}
		s := fold(t, evs)
		_ = s.Views()
		snap, err := projector.Restore(canonical(t, fold(t, evs[:n/2])))
		if err != nil {
			rt.Fatal(err)
		}
		for _, e := range evs[n/2:] {
			snap.Apply(e)
		}
		if !bytes.Equal(canonical(t, snap), canonical(t, s)) {
			rt.Fatal("snapshot + tail differs on arbitrary events")
		}
	})
}

func pick(rt *rapid.T) string {
	return rapid.SampledFrom([]string{"", "a", "b", "default/a", "default/b"}).Draw(rt, "s")
}

func ev(seq uint64, pod string, data proto.Message) eventlog.Event {
	return eventlog.Event{Seq: seq, Time: time.Unix(1000+int64(seq), 0).UTC(), Pod: pod, Data: data}
}

func TestRules(t *testing.T) {
	const key = "default/web-node1"
	added := &pb.ManifestAdded{Source: "file", Path: "/m/web.yaml", ContentHash: "h1", Uid: "u1", ConfigHash: "u1",
		PodJson: []byte(`{"metadata":{"name":"web-node1","namespace":"default"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}`)}
	tests := []struct {
		name  string
		evs   []eventlog.Event
		check func(t *testing.T, s *projector.State)
	}{
		{
			name: "BadEditKeepsLastGoodSpec",
			evs: []eventlog.Event{
				ev(1, key, added),
				ev(2, key, &pb.ManifestRejected{Source: "file", Path: "/m/web.yaml", ContentHash: "h2", Reason: "spec.containers: Required value"}),
			},
			check: func(t *testing.T, s *projector.State) {
				p := s.Pods[key]
				if p == nil || p.UID != "u1" || p.ContentHash != "h1" || p.Removed {
					t.Fatalf("pod lost its last good spec: %+v", p)
				}
				if p.LastRejection == "" || !s.Manifests["/m/web.yaml"].Rejected {
					t.Fatal("rejection not recorded")
				}
			},
		},
		{
			name: "RemovedPodStaysUntilRuntimeIsClean",
			evs: []eventlog.Event{
				ev(1, key, added),
				ev(2, key, &pb.ContainerObserved{Uid: "u1", Container: "c", ContainerId: "c1", State: "running"}),
				ev(3, key, &pb.ManifestRemoved{Source: "file", Path: "/m/web.yaml", Uid: "u1"}),
			},
			check: func(t *testing.T, s *projector.State) {
				if p := s.Pods[key]; p == nil || !p.Removed {
					t.Fatalf("removed pod with a live container must stay as Removed: %+v", p)
				}
				if v := s.Views()[0]; v.Status != "Terminating" {
					t.Fatalf("status %q, want Terminating", v.Status)
				}
				s.Apply(ev(4, key, &pb.ContainerGone{Uid: "u1", ContainerId: "c1"}))
				if _, ok := s.Pods[key]; ok {
					t.Fatal("pod should be forgotten once nothing of it runs")
				}
			},
		},
		{
			name: "AgentStartWithoutStopCountsUnclean",
			evs: []eventlog.Event{
				ev(1, "", &pb.AgentStarted{Version: "a"}),
				ev(2, "", &pb.AgentStarted{Version: "b"}),
				ev(3, "", &pb.AgentStopped{Reason: "signal"}),
				ev(4, "", &pb.AgentStarted{Version: "c"}),
			},
			check: func(t *testing.T, s *projector.State) {
				if s.Agent.Starts != 3 || s.Agent.Unclean != 1 || !s.Agent.Running || s.Agent.Version != "c" {
					t.Fatalf("agent %+v", s.Agent)
				}
			},
		},
		{
			name: "OutcomeClearsPendingIntent",
			evs: []eventlog.Event{
				ev(1, key, added),
				ev(2, key, &pb.Intent{Action: "RunSandbox", Uid: "u1"}),
				ev(3, key, &pb.Intent{Action: "PullImage", Uid: "u1", Container: "c"}),
				ev(4, key, &pb.Outcome{IntentSeq: 2, Ok: true}),
			},
			check: func(t *testing.T, s *projector.State) {
				if len(s.Pending) != 1 || s.Pending[3] == nil {
					t.Fatalf("pending %+v, want only intent 3", s.Pending)
				}
			},
		},
		{
			name: "ViewShowsRunningContainerAndRestarts",
			evs: []eventlog.Event{
				ev(1, key, added),
				ev(2, key, &pb.SandboxObserved{Uid: "u1", SandboxId: "s1", State: "ready", Ip: "10.0.0.5"}),
				ev(3, key, &pb.ContainerObserved{Uid: "u1", Container: "c", ContainerId: "c1", State: "exited", ExitCode: 1, Reason: "Error"}),
				ev(4, key, &pb.ContainerObserved{Uid: "u1", Container: "c", ContainerId: "c2", Attempt: 1, State: "running"}),
			},
			check: func(t *testing.T, s *projector.State) {
				v := s.Views()[0]
				if v.Phase != "Running" || v.Ready != "1/1" || v.Restarts != 1 || v.IP != "10.0.0.5" || v.Containers[0].ContainerID != "c2" {
					t.Fatalf("view %+v", v)
				}
			},
		},
		{
			name: "URLServingManyPodsKeepsThemAll",
			evs: []eventlog.Event{
				ev(1, "default/a-node1", &pb.ManifestAdded{Source: "http", Path: "http://x/pods", Uid: "ua", PodJson: []byte(`{}`)}),
				ev(2, "default/b-node1", &pb.ManifestAdded{Source: "http", Path: "http://x/pods", Uid: "ub", PodJson: []byte(`{}`)}),
			},
			check: func(t *testing.T, s *projector.State) {
				for _, k := range []string{"default/a-node1", "default/b-node1"} {
					if p := s.Pods[k]; p == nil || p.Removed {
						t.Fatalf("%s lost: %+v", k, p)
					}
				}
			},
		},
		{
			name: "FileNamingAnotherPodRemovesTheOld",
			evs: []eventlog.Event{
				ev(1, "default/a-node1", &pb.ManifestAdded{Source: "file", Path: "/m/x.yaml", Uid: "ua", PodJson: []byte(`{}`)}),
				ev(2, "default/b-node1", &pb.ManifestChanged{Source: "file", Path: "/m/x.yaml", Uid: "ub", PodJson: []byte(`{}`)}),
			},
			check: func(t *testing.T, s *projector.State) {
				if _, ok := s.Pods["default/a-node1"]; ok {
					t.Fatal("the pod the file no longer names should be gone")
				}
			},
		},
		{
			name: "EditBumpsGenerationAndReplacesSpec",
			evs: []eventlog.Event{
				ev(1, key, added),
				ev(2, key, &pb.ManifestChanged{Source: "file", Path: "/m/web.yaml", ContentHash: "h2", Uid: "u2", ConfigHash: "u2", PodJson: []byte(`{}`), PreviousUid: "u1"}),
			},
			check: func(t *testing.T, s *projector.State) {
				p := s.Pods[key]
				if p.UID != "u2" || p.Generation != 2 || p.ContentHash != "h2" {
					t.Fatalf("pod %+v", p)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := fold(t, tt.evs)
			tt.check(t, s)
		})
	}
}
