package projector_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector"
)

const pk = "default/web-node1"

// world folds events with increasing times and lets a test act as the
// executor: it applies the planner's decisions and their outcomes.
type world struct {
	t   *testing.T
	s   *projector.State
	seq uint64
	now time.Time
	ids int
}

func newWorld(t *testing.T) *world {
	return &world{t: t, s: projector.New(), now: time.Unix(1_800_000_000, 0).UTC()}
}

func (w *world) apply(pod string, data proto.Message) uint64 {
	w.seq++
	w.s.Apply(eventlog.Event{Seq: w.seq, Time: w.now, Pod: pod, Data: data})
	return w.seq
}

func (w *world) advance(d time.Duration) { w.now = w.now.Add(d) }

func podSpec(policy string, inits []string, apps ...string) []byte {
	var is, cs []string
	for _, n := range inits {
		is = append(is, fmt.Sprintf(`{"name":%q,"image":"localhost/busybox:1.36"}`, n))
	}
	for _, n := range apps {
		cs = append(cs, fmt.Sprintf(`{"name":%q,"image":"localhost/busybox:1.36"}`, n))
	}
	return []byte(fmt.Sprintf(`{"metadata":{"name":"web-node1","namespace":"default"},"spec":{"initContainers":[%s],"containers":[%s],"restartPolicy":%q,"terminationGracePeriodSeconds":5}}`,
		strings.Join(is, ","), strings.Join(cs, ","), policy))
}

func (w *world) desire(uid string, spec []byte) {
	w.apply(pk, &pb.ManifestAdded{Source: "file", Path: "/m/web.yaml", ContentHash: "h-" + uid, Uid: uid, ConfigHash: uid, PodJson: spec})
}

func (w *world) ready() {
	w.apply("", &pb.AgentStarted{NodeName: "node1"})
	w.apply("", &pb.RuntimeConnected{Endpoint: "unix:///x"})
	w.apply("", &pb.SourceSynced{Source: "file", Location: "/m"})
}

// plan returns the single decision for pk (nil if none) and the wake time.
func (w *world) plan() (*pb.Intent, int64) {
	p := w.s.Plan(w.now.UnixNano())
	for _, d := range p.Decisions {
		if d.Pod == pk {
			return d.Intent, p.Wake
		}
	}
	return nil, p.Wake
}

// do records the intent and a successful outcome, like the executor would.
func (w *world) do(in *pb.Intent) *pb.Outcome {
	iseq := w.apply(pk, in)
	w.ids++
	out := &pb.Outcome{IntentSeq: iseq, Ok: true}
	switch pb.Action(in.Action) {
	case pb.ActionRunSandbox:
		out.SandboxId, out.Ip = fmt.Sprintf("sb%d", w.ids), "10.0.0.2"
	case pb.ActionStartContainer:
		out.ContainerId = fmt.Sprintf("ctr%d", w.ids)
	}
	w.apply(pk, out)
	return out
}

// settle carries out every planned action until the planner has nothing
// more to do, and returns them as "Action/uid".
func (w *world) settle() []string {
	var got []string
	for i := 0; i < 20; i++ {
		in, _ := w.plan()
		if in == nil {
			break
		}
		got = append(got, in.Action+"/"+in.Uid)
		w.do(in)
	}
	return got
}

func (w *world) mustPlan(action pb.Action, container string) *pb.Intent {
	w.t.Helper()
	in, _ := w.plan()
	// Clean-up of superseded attempts may be planned first; carry it out.
	for in != nil && pb.Action(in.Action) == pb.ActionRemoveContainer && action != pb.ActionRemoveContainer {
		w.do(in)
		in, _ = w.plan()
	}
	if in == nil || pb.Action(in.Action) != action || in.Container != container {
		w.t.Fatalf("planned %v, want %s %s", in, action, container)
	}
	return in
}

func (w *world) exit(id, container, uid, sandbox string, attempt uint32, code int32) {
	w.apply(pk, &pb.ContainerObserved{Uid: uid, SandboxId: sandbox, Container: container, ContainerId: id, Attempt: attempt, State: "exited", ExitCode: code})
}

func TestPlannerDoesNothingWithoutRuntime(t *testing.T) {
	w := newWorld(t)
	w.desire("u1", podSpec("Always", nil, "c"))
	if in, _ := w.plan(); in != nil {
		t.Fatalf("planned %v with no runtime connected", in)
	}
}

func TestNewPodGetsSandboxThenContainers(t *testing.T) {
	w := newWorld(t)
	w.ready()
	w.desire("u1", podSpec("Always", nil, "a", "b"))
	w.do(w.mustPlan(pb.ActionRunSandbox, ""))
	a := w.mustPlan(pb.ActionStartContainer, "a")
	if a.Attempt != 0 || a.SandboxId == "" || a.GracePeriodSeconds != 5 {
		t.Fatalf("start intent %v", a)
	}
	w.do(a)
	w.do(w.mustPlan(pb.ActionStartContainer, "b"))
	if in, _ := w.plan(); in != nil {
		t.Fatalf("pod converged, but planned %v", in)
	}
	if v := w.s.Views()[0]; v.Phase != "Running" || v.Ready != "2/2" {
		t.Fatalf("view %+v", v)
	}
}

func TestPendingIntentBlocksFurtherActionsOnThePod(t *testing.T) {
	w := newWorld(t)
	w.ready()
	w.desire("u1", podSpec("Always", nil, "a"))
	in := w.mustPlan(pb.ActionRunSandbox, "")
	w.apply(pk, in) // intent recorded, no outcome yet
	if again, _ := w.plan(); again != nil {
		t.Fatalf("planned %v while an intent is pending", again)
	}
}

func TestInitContainersRunInOrderToCompletionFirst(t *testing.T) {
	w := newWorld(t)
	w.ready()
	w.desire("u1", podSpec("Always", []string{"i1", "i2"}, "app"))
	w.do(w.mustPlan(pb.ActionRunSandbox, ""))
	sb := w.s.Pods[pk].DecodeSpec()
	_ = sb
	i1 := w.mustPlan(pb.ActionStartContainer, "i1")
	out := w.do(i1)
	if in, _ := w.plan(); in != nil {
		t.Fatalf("planned %v while init container i1 runs", in)
	}
	w.exit(out.ContainerId, "i1", "u1", i1.SandboxId, 0, 0)
	out2 := w.do(w.mustPlan(pb.ActionStartContainer, "i2"))
	w.exit(out2.ContainerId, "i2", "u1", i1.SandboxId, 0, 0)
	w.mustPlan(pb.ActionStartContainer, "app")
}

func TestEditStopsTheOldPodBeforeStartingTheNew(t *testing.T) {
	w := newWorld(t)
	w.ready()
	w.desire("u1", podSpec("Always", nil, "a"))
	w.do(w.mustPlan(pb.ActionRunSandbox, ""))
	w.do(w.mustPlan(pb.ActionStartContainer, "a"))

	w.apply(pk, &pb.ManifestChanged{Source: "file", Path: "/m/web.yaml", ContentHash: "h2", Uid: "u2", ConfigHash: "u2", PodJson: podSpec("Always", nil, "a"), PreviousUid: "u1"})
	var got []string
	for i := 0; i < 10; i++ {
		in, _ := w.plan()
		if in == nil {
			break
		}
		got = append(got, in.Action+"/"+in.Uid)
		if pb.Action(in.Action) == pb.ActionStopContainer && in.GracePeriodSeconds != 5 {
			t.Fatalf("old container stopped with grace %d, want its spec's 5", in.GracePeriodSeconds)
		}
		w.do(in)
	}
	want := "StopContainer/u1 RemoveContainer/u1 StopSandbox/u1 RemoveSandbox/u1 RunSandbox/u2 StartContainer/u2"
	if strings.Join(got, " ") != want {
		t.Fatalf("sequence\n got %s\nwant %s", strings.Join(got, " "), want)
	}
}

func TestRemovedPodIsTornDownInOrder(t *testing.T) {
	w := newWorld(t)
	w.ready()
	w.desire("u1", podSpec("Always", nil, "a"))
	w.do(w.mustPlan(pb.ActionRunSandbox, ""))
	w.do(w.mustPlan(pb.ActionStartContainer, "a"))
	w.apply(pk, &pb.ManifestRemoved{Source: "file", Path: "/m/web.yaml", Uid: "u1"})
	got := w.settle()
	if want := "StopContainer/u1 RemoveContainer/u1 StopSandbox/u1 RemoveSandbox/u1"; strings.Join(got, " ") != want {
		t.Fatalf("got %v, want %s", got, want)
	}
	if _, ok := w.s.Pods[pk]; ok {
		t.Fatal("a torn-down removed pod should leave the state")
	}
}

func TestCrashLoopBackOffDoublesToFiveMinutes(t *testing.T) {
	w := newWorld(t)
	w.ready()
	w.desire("u1", podSpec("Always", nil, "a"))
	sb := w.do(w.mustPlan(pb.ActionRunSandbox, "")).SandboxId
	var delays []time.Duration
	for i := 0; i < 7; i++ {
		in := w.mustPlan(pb.ActionStartContainer, "a")
		if in.Attempt != uint32(i) {
			t.Fatalf("attempt %d, want %d", in.Attempt, i)
		}
		out := w.do(in)
		w.advance(time.Second)
		w.exit(out.ContainerId, "a", "u1", sb, uint32(i), 1)
		if v := w.s.ViewsAt(w.now.UnixNano())[0]; v.Containers[0].Reason != "CrashLoopBackOff" {
			t.Fatalf("after exit %d, reason %q, want CrashLoopBackOff", i, v.Containers[0].Reason)
		}
		exitAt := w.now
		in2, wake := w.plan()
		if in2 != nil && pb.Action(in2.Action) == pb.ActionStartContainer {
			t.Fatalf("restarted at once after exit %d", i)
		}
		for in2 != nil { // clean-up of older attempts may come first
			w.do(in2)
			in2, wake = w.plan()
		}
		delays = append(delays, time.Unix(0, wake).Sub(exitAt))
		w.now = time.Unix(0, wake)
	}
	want := []time.Duration{10, 20, 40, 80, 160, 300, 300}
	for i := range want {
		want[i] *= time.Second
	}
	if fmt.Sprint(delays) != fmt.Sprint(want) {
		t.Fatalf("back-off delays %v, want %v", delays, want)
	}
}

func TestBackoffResetsAfterTenMinutesOfRunning(t *testing.T) {
	w := newWorld(t)
	w.ready()
	w.desire("u1", podSpec("Always", nil, "a"))
	sb := w.do(w.mustPlan(pb.ActionRunSandbox, "")).SandboxId
	for i := 0; i < 3; i++ {
		out := w.do(w.mustPlan(pb.ActionStartContainer, "a"))
		w.exit(out.ContainerId, "a", "u1", sb, uint32(i), 1)
		in, wake := w.plan()
		for in != nil {
			w.do(in)
			in, wake = w.plan()
		}
		w.now = time.Unix(0, wake)
	}
	out := w.do(w.mustPlan(pb.ActionStartContainer, "a"))
	start := w.now
	w.advance(11 * time.Minute)
	w.apply(pk, &pb.ContainerObserved{Uid: "u1", SandboxId: sb, Container: "a", ContainerId: out.ContainerId, Attempt: 3, State: "exited", ExitCode: 1,
		StartedUnixNano: start.UnixNano(), FinishedUnixNano: w.now.UnixNano()})
	if b := w.s.Pods[pk].Backoff["a"]; b.Delay != projector.BackoffInitial {
		t.Fatalf("delay %s after a 11-minute run, want 10s", time.Duration(b.Delay))
	}
}

func TestRestartPolicies(t *testing.T) {
	tests := []struct {
		policy  string
		code    int32
		restart bool
		phase   string
	}{
		{"Always", 0, true, ""},
		{"Always", 1, true, ""},
		{"OnFailure", 0, false, "Succeeded"},
		{"OnFailure", 2, true, ""},
		{"Never", 0, false, "Succeeded"},
		{"Never", 3, false, "Failed"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/exit%d", tt.policy, tt.code), func(t *testing.T) {
			w := newWorld(t)
			w.ready()
			w.desire("u1", podSpec(tt.policy, nil, "a"))
			sb := w.do(w.mustPlan(pb.ActionRunSandbox, "")).SandboxId
			out := w.do(w.mustPlan(pb.ActionStartContainer, "a"))
			w.exit(out.ContainerId, "a", "u1", sb, 0, tt.code)
			w.advance(time.Hour)
			in, _ := w.plan()
			if restarted := in != nil && pb.Action(in.Action) == pb.ActionStartContainer; restarted != tt.restart {
				t.Fatalf("restart %v, want %v (planned %v)", restarted, tt.restart, in)
			}
			if tt.phase != "" {
				if v := w.s.Views()[0]; v.Phase != tt.phase {
					t.Fatalf("phase %s, want %s", v.Phase, tt.phase)
				}
			}
		})
	}
}

func TestOrphansAreLeftAloneUntilSourcesHaveListed(t *testing.T) {
	w := newWorld(t)
	w.apply("", &pb.AgentStarted{})
	w.apply("", &pb.RuntimeConnected{})
	w.apply("default/stray-node1", &pb.ContainerObserved{Uid: "ux", ContainerId: "c9", Container: "x", State: "running"})
	if p := w.s.Plan(w.now.UnixNano()); len(p.Decisions) != 0 {
		t.Fatalf("planned %v before the sources listed", p.Decisions)
	}
	w.apply("", &pb.SourceSynced{Source: "file", Location: "/m"})
	p := w.s.Plan(w.now.UnixNano())
	if len(p.Decisions) != 1 || pb.Action(p.Decisions[0].Intent.Action) != pb.ActionStopContainer {
		t.Fatalf("after sync, want the orphan stopped, got %v", p.Decisions)
	}
	// A restart of the agent forgets the sync: sources must list again.
	w.apply("", &pb.AgentStarted{})
	w.apply("", &pb.RuntimeConnected{})
	if p := w.s.Plan(w.now.UnixNano()); len(p.Decisions) != 0 {
		t.Fatalf("planned %v after a restart before the sources listed again", p.Decisions)
	}
}

func TestFailedStartBacksOffAndShowsImagePullReasons(t *testing.T) {
	w := newWorld(t)
	w.ready()
	w.desire("u1", podSpec("Always", nil, "a"))
	w.do(w.mustPlan(pb.ActionRunSandbox, ""))
	for i := 0; i < 2; i++ {
		in := w.mustPlan(pb.ActionStartContainer, "a")
		iseq := w.apply(pk, in)
		w.apply(pk, &pb.Outcome{IntentSeq: iseq, Ok: false, Reason: "ErrImagePull", Error: "not found"})
		in2, wake := w.plan()
		if in2 != nil {
			t.Fatalf("retried at once after a failed pull: %v", in2)
		}
		want := []string{"ErrImagePull", "ImagePullBackOff"}[i]
		if r := w.s.ViewsAt(w.now.UnixNano())[0].Containers[0].Reason; r != want {
			t.Fatalf("reason %q, want %q", r, want)
		}
		w.now = time.Unix(0, wake)
	}
}

func TestReconciledOutcomeDoesNotCountAsFailure(t *testing.T) {
	w := newWorld(t)
	w.ready()
	w.desire("u1", podSpec("Always", nil, "a"))
	iseq := w.apply(pk, w.mustPlan(pb.ActionRunSandbox, ""))
	w.apply(pk, &pb.Outcome{IntentSeq: iseq, Ok: false, Reason: pb.ReasonReconciled})
	if len(w.s.Pods[pk].Failures) != 0 || len(w.s.Pending) != 0 {
		t.Fatalf("failures %v pending %v", w.s.Pods[pk].Failures, w.s.Pending)
	}
	w.mustPlan(pb.ActionRunSandbox, "")
}

func TestFailedTeardownStepIsRetriedWithBackoff(t *testing.T) {
	w := newWorld(t)
	w.ready()
	w.desire("u1", podSpec("Always", nil, "a"))
	w.do(w.mustPlan(pb.ActionRunSandbox, ""))
	w.do(w.mustPlan(pb.ActionStartContainer, "a"))
	w.apply(pk, &pb.ManifestRemoved{Source: "file", Path: "/m/web.yaml", Uid: "u1"})
	w.do(w.mustPlan(pb.ActionStopContainer, "a"))
	var gaps []time.Duration
	for i := 0; i < 3; i++ {
		in := w.mustPlan(pb.ActionRemoveContainer, "a")
		iseq := w.apply(pk, in)
		w.apply(pk, &pb.Outcome{IntentSeq: iseq, Ok: false, Error: "container is in starting state"})
		again, wake := w.plan()
		if again != nil {
			t.Fatalf("failed step retried at once: %v", again)
		}
		gaps = append(gaps, time.Unix(0, wake).Sub(w.now))
		w.now = time.Unix(0, wake)
	}
	if fmt.Sprint(gaps) != "[1s 2s 4s]" {
		t.Fatalf("retry gaps %v, want [1s 2s 4s]", gaps)
	}
}

// TestPinnedUIDEditReplacesThePod: a manifest that pins metadata.uid keeps
// its UID across edits, but its running containers are still of the old
// spec and must be replaced.
func TestPinnedUIDEditReplacesThePod(t *testing.T) {
	w := newWorld(t)
	w.ready()
	w.desire("pinned", podSpec("Always", nil, "a"))
	w.do(w.mustPlan(pb.ActionRunSandbox, ""))
	w.do(w.mustPlan(pb.ActionStartContainer, "a"))
	w.apply(pk, &pb.ManifestChanged{Source: "file", Path: "/m/web.yaml", ContentHash: "h-new", Uid: "pinned", ConfigHash: "pinned", PodJson: podSpec("Always", nil, "a"), PreviousUid: "pinned"})
	got := w.settle()
	if want := "StopContainer/pinned RemoveContainer/pinned StopSandbox/pinned RemoveSandbox/pinned RunSandbox/pinned StartContainer/pinned"; strings.Join(got, " ") != want {
		t.Fatalf("got %v, want %s", got, want)
	}
}

func TestContainerCreatedButNeverStartedIsReplaced(t *testing.T) {
	w := newWorld(t)
	w.ready()
	w.desire("u1", podSpec("Always", nil, "a"))
	sb := w.do(w.mustPlan(pb.ActionRunSandbox, "")).SandboxId
	// The agent died between CRI Create and Start; the relist finds this.
	w.apply(pk, &pb.ContainerObserved{Uid: "u1", SandboxId: sb, Container: "a", ContainerId: "half", State: "created", Adopted: true})
	w.do(w.mustPlan(pb.ActionRemoveContainer, "a"))
	in := w.mustPlan(pb.ActionStartContainer, "a")
	if in.Attempt != 0 {
		t.Fatalf("attempt %d: the never-started instance should not count as a restart", in.Attempt)
	}
}

func TestStaleObservationNeverMovesAContainerBack(t *testing.T) {
	w := newWorld(t)
	w.ready()
	w.desire("u1", podSpec("Always", nil, "a"))
	sb := w.do(w.mustPlan(pb.ActionRunSandbox, "")).SandboxId
	id := w.do(w.mustPlan(pb.ActionStartContainer, "a")).ContainerId
	w.apply(pk, &pb.ContainerObserved{Uid: "u1", SandboxId: sb, Container: "a", ContainerId: id, State: "created"})
	if got := w.s.Pods[pk].Containers[id].State; got != "running" {
		t.Fatalf("state %s after a stale 'created' observation, want running", got)
	}
	if in, _ := w.plan(); in != nil {
		t.Fatalf("planned %v for a running container", in)
	}
}
