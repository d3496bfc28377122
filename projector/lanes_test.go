package projector_test

import (
	"testing"
	"time"

	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector"
)

// decisions returns the planned actions for pk as "Action" strings, by lane.
func (w *world) decisions() map[pb.Lane]*pb.Intent {
	out := map[pb.Lane]*pb.Intent{}
	for _, d := range w.s.Plan(w.now.UnixNano()).Decisions {
		if d.Pod == pk {
			out[pb.Action(d.Intent.Action).Lane()] = d.Intent
		}
	}
	return out
}

// mirrorsReady starts a run that keeps mirrors, with everything connected.
func (w *world) mirrorsReady() {
	w.apply("", &pb.AgentStarted{NodeName: "node1", Apiserver: true, NodeIp: "192.0.2.10"})
	w.apply("", &pb.RuntimeConnected{Endpoint: "unix:///x"})
	w.apply("", &pb.SourceSynced{Source: "file", Location: "/m"})
	w.apply("", &pb.ApiserverConnected{Host: "https://127.0.0.1:16443", NodeUid: "node-uid"})
	w.apply("", &pb.MirrorsSynced{})
}

func TestMirrorLaneNeverHoldsBackTheRuntimeLane(t *testing.T) {
	w := newWorld(t)
	w.mirrorsReady()
	w.desire("u1", podSpec("Always", nil, "a"))
	d := w.decisions()
	if d[pb.LaneRuntime] == nil || pb.Action(d[pb.LaneRuntime].Action) != pb.ActionRunSandbox {
		t.Fatalf("runtime lane: %v", d[pb.LaneRuntime])
	}
	create := d[pb.LaneMirror]
	if create == nil || pb.Action(create.Action) != pb.ActionMirrorCreate || create.ConfigHash != "u1" {
		t.Fatalf("mirror lane: %v", create)
	}
	// The mirror create hangs (no outcome): the runtime lane goes on.
	w.apply(pk, create)
	w.do(w.mustPlan(pb.ActionRunSandbox, ""))
	if in := w.decisions()[pb.LaneRuntime]; in == nil || pb.Action(in.Action) != pb.ActionStartContainer {
		t.Fatalf("with a mirror intent pending, runtime lane planned %v", in)
	}
	if in := w.decisions()[pb.LaneMirror]; in != nil {
		t.Fatalf("a second mirror action while one is pending: %v", in)
	}
}

func TestDisconnectedApiserverStopsOnlyTheMirrorLane(t *testing.T) {
	w := newWorld(t)
	w.mirrorsReady()
	w.apply("", &pb.ApiserverDisconnected{Reason: "connection refused"})
	w.desire("u1", podSpec("Always", nil, "a"))
	d := w.decisions()
	if d[pb.LaneMirror] != nil {
		t.Fatalf("mirror action planned with the apiserver down: %v", d[pb.LaneMirror])
	}
	if d[pb.LaneRuntime] == nil {
		t.Fatal("runtime lane waits for the apiserver")
	}
}

func TestMirrorFollowsThePod(t *testing.T) {
	w := newWorld(t)
	w.mirrorsReady()
	w.desire("u1", podSpec("Always", nil, "a"))
	mirror := func() *pb.Intent { return w.decisions()[pb.LaneMirror] }
	in := mirror()
	iseq := w.apply(pk, in)
	w.apply(pk, &pb.Outcome{IntentSeq: iseq, Ok: true, MirrorUid: "m1"})
	// Created: the status is published next, then nothing until it changes.
	st := mirror()
	if st == nil || pb.Action(st.Action) != pb.ActionMirrorStatus || st.MirrorUid != "m1" || st.StatusHash == "" {
		t.Fatalf("after create: %v", st)
	}
	iseq = w.apply(pk, st)
	w.apply(pk, &pb.Outcome{IntentSeq: iseq, Ok: true})
	if in := mirror(); in != nil {
		t.Fatalf("status unchanged, planned %v", in)
	}
	// The watch reports it unchanged: still nothing.
	w.apply(pk, &pb.MirrorObserved{MirrorUid: "m1", ConfigMirror: "u1", Phase: "Pending"})
	if in := mirror(); in != nil {
		t.Fatalf("after an unchanged observation, planned %v", in)
	}
	// A user deletes it gracefully: it is deleted for good, then recreated.
	w.apply(pk, &pb.MirrorObserved{MirrorUid: "m1", ConfigMirror: "u1", Deleting: true})
	if in := mirror(); in == nil || pb.Action(in.Action) != pb.ActionMirrorDelete || in.MirrorUid != "m1" {
		t.Fatalf("deleting mirror: planned %v", in)
	}
	w.apply(pk, &pb.MirrorGone{MirrorUid: "m1"})
	if in := mirror(); in == nil || pb.Action(in.Action) != pb.ActionMirrorCreate {
		t.Fatalf("after the mirror went: planned %v", in)
	}
	// An edit: the mirror of the old hash is deleted, then one of the new made.
	iseq = w.apply(pk, mirror())
	w.apply(pk, &pb.Outcome{IntentSeq: iseq, Ok: true, MirrorUid: "m2"})
	w.desire("u2", podSpec("Always", nil, "a", "b"))
	if in := mirror(); in == nil || pb.Action(in.Action) != pb.ActionMirrorDelete || in.MirrorUid != "m2" {
		t.Fatalf("after an edit: planned %v", in)
	}
	// The manifest goes: the mirror goes with it, whatever the runtime does.
	w.apply(pk, &pb.ManifestRemoved{Source: "file", Path: "/m/web.yaml", Uid: "u2"})
	if in := mirror(); in == nil || pb.Action(in.Action) != pb.ActionMirrorDelete {
		t.Fatalf("after removal: planned %v", in)
	}
}

func TestOrphanMirrorIsDeletedOnlyAfterSourcesListed(t *testing.T) {
	w := newWorld(t)
	w.apply("", &pb.AgentStarted{NodeName: "node1", Apiserver: true, Sources: []string{"file /m"}})
	w.apply("", &pb.ApiserverConnected{NodeUid: "n"})
	w.apply("default/old-node1", &pb.MirrorObserved{MirrorUid: "m9", ConfigMirror: "zz"})
	w.apply("", &pb.MirrorsSynced{Mirrors: 1})
	if d := w.s.Plan(w.now.UnixNano()).Decisions; len(d) != 0 {
		t.Fatalf("planned %v before the sources listed", d)
	}
	w.apply("", &pb.SourceSynced{Source: "file", Location: "/m"})
	d := w.s.Plan(w.now.UnixNano()).Decisions
	if len(d) != 1 || pb.Action(d[0].Intent.Action) != pb.ActionMirrorDelete || d[0].Intent.MirrorUid != "m9" {
		t.Fatalf("after sync: %v", d)
	}
}

// TestIntentsOfAnEarlierRunAreSettledOnlyOnThisRunsFacts: an intent left
// pending by a crash is closed as Reconciled once this run has connected
// (and relisted) the runtime — never on the previous run's "connected".
func TestIntentsOfAnEarlierRunAreSettledOnlyOnThisRunsFacts(t *testing.T) {
	w := newWorld(t)
	w.ready()
	w.desire("u1", podSpec("Always", nil, "a"))
	in := w.mustPlan(pb.ActionRunSandbox, "")
	iseq := w.apply(pk, in) // the agent dies before the outcome
	w.apply("", &pb.AgentStarted{NodeName: "node1"})
	p := w.s.Plan(w.now.UnixNano())
	if len(p.Decisions) != 0 || len(p.Reconcile) != 0 {
		t.Fatalf("before this run connected: %+v", p)
	}
	w.apply("", &pb.RuntimeConnected{})
	p = w.s.Plan(w.now.UnixNano())
	if len(p.Reconcile) != 1 || p.Reconcile[0].IntentSeq != iseq || len(p.Decisions) != 0 {
		t.Fatalf("after connecting: %+v", p)
	}
	w.apply(pk, &pb.Outcome{IntentSeq: iseq, Reason: pb.ReasonReconciled})
	if p := w.s.Plan(w.now.UnixNano()); len(p.Reconcile) != 0 {
		t.Fatalf("settled twice: %+v", p)
	}
}

func TestNothingIsPlannedBeforeAnAgentStart(t *testing.T) {
	w := newWorld(t)
	w.apply("", &pb.RuntimeConnected{})
	w.apply("", &pb.SourceSynced{Source: "file", Location: "/m"})
	w.desire("u1", podSpec("Always", nil, "a"))
	if p := w.s.Plan(w.now.UnixNano()); len(p.Decisions) != 0 {
		t.Fatalf("planned %v with no agent run", p.Decisions)
	}
}

// TestSourceNoLongerConfiguredNoLongerDesires: a --manifest-url dropped from
// the configuration would otherwise never list again, blocking orphan
// removal forever and keeping its pods.
func TestSourceNoLongerConfiguredNoLongerDesires(t *testing.T) {
	w := newWorld(t)
	w.apply("", &pb.AgentStarted{Sources: []string{"file /m", "http http://cfg/pods"}})
	w.apply("default/a-node1", &pb.ManifestAdded{Source: "http", Path: "http://cfg/pods", Uid: "ua", ConfigHash: "ua", PodJson: podSpec("Always", nil, "a")})
	w.desire("u1", podSpec("Always", nil, "a"))
	w.apply("", &pb.AgentStarted{Sources: []string{"file /m"}})
	if _, ok := w.s.Sources["http http://cfg/pods"]; ok {
		t.Fatal("the dropped source is still awaited")
	}
	w.apply("", &pb.RuntimeConnected{})
	w.apply("", &pb.SourceSynced{Source: "file", Location: "/m"})
	if p := w.s.Pods["default/a-node1"]; p != nil && !p.Removed {
		t.Fatal("a pod of the dropped source is still desired")
	}
	if p := w.s.Pods[pk]; p == nil || p.Removed {
		t.Fatal("a pod of a configured source was dropped")
	}
	var _ = projector.New
}

// TestSandboxReplacedKeepsPodData: the pod's emptyDirs and cgroup go only
// when its UID is no longer desired, never when a sandbox of a continuing
// UID is replaced.
func TestSandboxReplacedKeepsPodData(t *testing.T) {
	w := newWorld(t)
	w.ready()
	w.desire("u1", podSpec("Always", nil, "a"))
	sb := w.do(w.mustPlan(pb.ActionRunSandbox, "")).SandboxId
	w.do(w.mustPlan(pb.ActionStartContainer, "a"))
	w.apply(pk, &pb.SandboxObserved{Uid: "u1", SandboxId: sb, State: pb.StateNotReady})
	for i := 0; i < 10; i++ {
		in, _ := w.plan()
		if in == nil {
			t.Fatal("nothing planned")
		}
		if pb.Action(in.Action) == pb.ActionRemoveSandbox {
			if in.RemovePodData {
				t.Fatal("a sandbox of a continuing UID takes the pod's data with it")
			}
			break
		}
		w.do(in)
	}
	// Removal of the pod: now the data goes.
	w2 := newWorld(t)
	w2.ready()
	w2.desire("u1", podSpec("Always", nil, "a"))
	w2.do(w2.mustPlan(pb.ActionRunSandbox, ""))
	w2.apply(pk, &pb.ManifestRemoved{Source: "file", Path: "/m/web.yaml", Uid: "u1"})
	for i := 0; i < 10; i++ {
		in, _ := w2.plan()
		if in == nil {
			t.Fatal("nothing planned")
		}
		if pb.Action(in.Action) == pb.ActionRemoveSandbox {
			if !in.RemovePodData {
				t.Fatal("the last sandbox of a removed pod leaves its data")
			}
			return
		}
		w2.do(in)
	}
}

// TestEveryFailingStepBacksOff: a container left "created" by a crashed run
// that containerd refuses to remove (it is still starting it) is retried
// with back-off, not in a hot loop.
func TestEveryFailingStepBacksOff(t *testing.T) {
	w := newWorld(t)
	w.ready()
	w.desire("u1", podSpec("Always", nil, "a"))
	sb := w.do(w.mustPlan(pb.ActionRunSandbox, "")).SandboxId
	w.apply(pk, &pb.ContainerObserved{Uid: "u1", SandboxId: sb, Container: "a", ContainerId: "c1", State: pb.StateCreated})
	in := w.mustPlan(pb.ActionRemoveContainer, "a")
	iseq := w.apply(pk, in)
	w.apply(pk, &pb.Outcome{IntentSeq: iseq, Ok: false, Error: "container is in starting state, can't be removed"})
	if again, wake := w.plan(); again != nil || wake <= w.now.UnixNano() {
		t.Fatalf("retried at once: %v (wake %d)", again, wake)
	}
	w.advance(1100 * time.Millisecond)
	if again, _ := w.plan(); again == nil || pb.Action(again.Action) != pb.ActionRemoveContainer {
		t.Fatalf("not retried after its back-off: %v", again)
	}
}

// TestAdoptedContainerIsStoppedWithItsOwnGrace: a container found after a
// crash carries its version's grace period (its annotation), so a stop
// never falls back to 30 s.
func TestAdoptedContainerIsStoppedWithItsOwnGrace(t *testing.T) {
	w := newWorld(t)
	w.ready()
	w.apply(pk, &pb.SandboxObserved{Uid: "u0", SandboxId: "sb0", State: pb.StateReady, Adopted: true})
	w.apply(pk, &pb.ContainerObserved{Uid: "u0", SandboxId: "sb0", Container: "a", ContainerId: "c0", State: pb.StateRunning,
		Adopted: true, GracePeriodSeconds: 1})
	w.desire("u1", podSpec("Always", nil, "a"))
	in := w.mustPlan(pb.ActionStopContainer, "a")
	if in.GracePeriodSeconds != 1 {
		t.Fatalf("stopped with grace %d, want the version's own 1", in.GracePeriodSeconds)
	}
}

// TestCleanupCutShortByACrashIsCompleted: the agent dies after removing the
// last sandbox but before the pod's cgroup and data; the next run settles
// the intent and still removes them.
func TestCleanupCutShortByACrashIsCompleted(t *testing.T) {
	w := newWorld(t)
	w.ready()
	w.desire("u1", podSpec("Always", nil, "a"))
	sb := w.do(w.mustPlan(pb.ActionRunSandbox, "")).SandboxId
	w.apply(pk, &pb.ManifestRemoved{Source: "file", Path: "/m/web.yaml", Uid: "u1"})
	w.do(w.mustPlan(pb.ActionStopSandbox, ""))
	rm := w.mustPlan(pb.ActionRemoveSandbox, "")
	iseq := w.apply(pk, rm) // crash: the sandbox goes, the data stays
	w.apply("", &pb.AgentStarted{NodeName: "node1"})
	w.apply(pk, &pb.SandboxGone{Uid: "u1", SandboxId: sb})
	w.apply("", &pb.RuntimeConnected{})
	w.apply("", &pb.SourceSynced{Source: "file", Location: "/m"})
	p := w.s.Plan(w.now.UnixNano())
	if len(p.Reconcile) != 1 || p.Reconcile[0].IntentSeq != iseq {
		t.Fatalf("want the dangling removal settled first: %+v", p)
	}
	w.apply(pk, &pb.Outcome{IntentSeq: iseq, Reason: pb.ReasonReconciled})
	in := w.mustPlan(pb.ActionCleanupPod, "")
	if in.Uid != "u1" {
		t.Fatalf("cleanup of %s", in.Uid)
	}
	// It fails once (a cgroup still busy): retried after a back-off.
	cseq := w.apply(pk, in)
	w.apply(pk, &pb.Outcome{IntentSeq: cseq, Ok: false, Error: "device or resource busy"})
	if again, _ := w.plan(); again != nil {
		t.Fatalf("retried at once: %v", again)
	}
	w.advance(2 * time.Second)
	w.do(w.mustPlan(pb.ActionCleanupPod, ""))
	if _, ok := w.s.Pods[pk]; ok {
		t.Fatal("the pod stays in state after its data was removed")
	}
}

// TestNameReservedByAnEarlierRunIsRetriedSoon: a sandbox an earlier run was
// creating when it died still holds its name in containerd; the retry comes
// within a second or two (the relist then shows the sandbox), not after the
// 10 s back-off of a real failure.
func TestNameReservedByAnEarlierRunIsRetriedSoon(t *testing.T) {
	w := newWorld(t)
	w.ready()
	w.desire("u1", podSpec("Always", nil, "a"))
	in := w.mustPlan(pb.ActionRunSandbox, "")
	iseq := w.apply(pk, in)
	w.apply(pk, &pb.Outcome{IntentSeq: iseq, Ok: false, Reason: pb.ReasonNameReserved, Error: `name "x_0" is reserved for "abc"`})
	if again, _ := w.plan(); again != nil {
		t.Fatalf("retried at once: %v", again)
	}
	w.advance(1100 * time.Millisecond)
	if again, _ := w.plan(); again == nil || pb.Action(again.Action) != pb.ActionRunSandbox {
		t.Fatalf("not retried after a second: %v", again)
	}
}

// TestStartCutShortByTheAgentsDeathIsNoCrash: the agent dies while
// containerd starts a container; containerd then fails the start
// (StartError). That is not the container crashing: it is started again at
// once, without crash-loop back-off.
func TestStartCutShortByTheAgentsDeathIsNoCrash(t *testing.T) {
	for _, exitFirst := range []bool{false, true} {
		w := newWorld(t)
		w.ready()
		w.desire("u1", podSpec("Always", nil, "a"))
		sb := w.do(w.mustPlan(pb.ActionRunSandbox, "")).SandboxId
		in := w.mustPlan(pb.ActionStartContainer, "a")
		iseq := w.apply(pk, in) // the agent dies here
		w.apply("", &pb.AgentStarted{NodeName: "node1"})
		exit := func() {
			w.apply(pk, &pb.ContainerObserved{Uid: "u1", SandboxId: sb, Container: "a", ContainerId: "c1", State: pb.StateExited,
				ExitCode: 128, Reason: "StartError"})
		}
		if exitFirst {
			exit()
		}
		w.apply("", &pb.RuntimeConnected{})
		w.apply("", &pb.SourceSynced{Source: "file", Location: "/m"})
		w.apply(pk, &pb.Outcome{IntentSeq: iseq, Reason: pb.ReasonReconciled})
		if !exitFirst {
			exit()
		}
		if again, _ := w.plan(); again == nil || pb.Action(again.Action) != pb.ActionStartContainer {
			t.Fatalf("exitFirst=%v: not restarted at once: %v", exitFirst, again)
		}
	}
}

// TestCgroupBroughtBackAfterCleanupIsRemovedAgain: a sandbox create an
// earlier run left in flight recreates the pod's cgroup after it was
// removed; the observer reports it and it is removed again.
func TestCgroupBroughtBackAfterCleanupIsRemovedAgain(t *testing.T) {
	w := newWorld(t)
	w.ready()
	w.desire("u1", podSpec("Always", nil, "a"))
	iseq := w.apply(pk, w.mustPlan(pb.ActionRunSandbox, "")) // the agent dies mid-create
	w.apply(pk, &pb.ManifestRemoved{Source: "file", Path: "/m/web.yaml", Uid: "u1"})
	w.apply(pk, &pb.Outcome{IntentSeq: iseq, Reason: pb.ReasonReconciled})
	w.do(w.mustPlan(pb.ActionCleanupPod, ""))
	if in, _ := w.plan(); in != nil {
		t.Fatalf("after cleanup: %v", in)
	}
	w.apply(pk, &pb.PodDataObserved{Uid: "u1"})
	if in := w.mustPlan(pb.ActionCleanupPod, ""); in.Uid != "u1" {
		t.Fatalf("cleanup of %s", in.Uid)
	}
	// Cleaned entries are forgotten after the recheck window.
	w.do(w.mustPlan(pb.ActionCleanupPod, ""))
	w.advance(11 * time.Minute)
	w.apply("", &pb.Outcome{IntentSeq: 9999})
	if len(w.s.Leftovers) != 0 {
		t.Fatalf("leftovers kept: %v", w.s.Leftovers)
	}
}

// TestMirrorStatusFollowsReadiness: a running container whose readiness
// probe fails is published not ready (and the pod not Ready).
func TestMirrorStatusFollowsReadiness(t *testing.T) {
	w := newWorld(t)
	w.ready()
	spec := []byte(`{"metadata":{"name":"web-node1","namespace":"default"},"spec":{"containers":[{"name":"a","image":"i","readinessProbe":{"exec":{"command":["true"]}}}]}}`)
	w.desire("u1", spec)
	w.do(w.mustPlan(pb.ActionRunSandbox, ""))
	id := w.do(w.mustPlan(pb.ActionStartContainer, "a")).ContainerId
	ready := func() bool {
		st := w.s.Pods[pk].APIStatus("192.0.2.1")
		return st.ContainerStatuses[0].Ready
	}
	if ready() {
		t.Fatal("ready before its readiness probe succeeded")
	}
	w.apply(pk, &pb.ContainerProbed{Uid: "u1", Container: "a", ContainerId: id, Probe: string(pb.ProbeReadiness), Result: string(pb.ProbeSuccess)})
	if !ready() {
		t.Fatal("not ready after its readiness probe succeeded")
	}
}

// TestMirrorStatusChangedByAnotherWriterIsPublishedAgain: the node
// lifecycle controller marks every pod of a node it thought lost NotReady
// and leaves it to the node to say otherwise. A mirror whose status in the
// apiserver no longer reads as published is published again — once.
func TestMirrorStatusChangedByAnotherWriterIsPublishedAgain(t *testing.T) {
	w := newWorld(t)
	w.mirrorsReady()
	w.desire("u1", podSpec("Always", nil, "a"))
	mirror := func() *pb.Intent { return w.decisions()[pb.LaneMirror] }
	iseq := w.apply(pk, mirror())
	w.apply(pk, &pb.Outcome{IntentSeq: iseq, Ok: true, MirrorUid: "m1"})
	st := mirror()
	if st == nil || st.StatusDigest == "" {
		t.Fatalf("status intent without a digest: %v", st)
	}
	iseq = w.apply(pk, st)
	w.apply(pk, &pb.Outcome{IntentSeq: iseq, Ok: true})
	// The watch shows what was published: nothing to do.
	w.apply(pk, &pb.MirrorObserved{MirrorUid: "m1", ConfigMirror: "u1", Phase: "Pending", StatusDigest: st.StatusDigest})
	if in := mirror(); in != nil {
		t.Fatalf("mirror reads as published, planned %v", in)
	}
	// Another writer changes it.
	other := projector.MirrorStatusDigest(w.s.Pods[pk].APIStatus("192.0.2.10")) + "-changed"
	w.apply(pk, &pb.MirrorObserved{MirrorUid: "m1", ConfigMirror: "u1", Phase: "Pending", StatusDigest: other})
	again := mirror()
	if again == nil || pb.Action(again.Action) != pb.ActionMirrorStatus || again.Reason != "mirror status changed by another writer" {
		t.Fatalf("after another writer: planned %v", again)
	}
	iseq = w.apply(pk, again)
	w.apply(pk, &pb.Outcome{IntentSeq: iseq, Ok: true})
	if in := mirror(); in != nil {
		t.Fatalf("published again, then planned %v", in)
	}
}
