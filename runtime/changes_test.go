package runtime

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	criv1 "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector"
)

// envelope encodes a containerd.types.Envelope holding a payload whose
// string fields are given by number.
func envelope(ns, topic string, at time.Time, fields map[protowire.Number]string) []byte {
	var payload []byte
	for num := protowire.Number(1); num <= 5; num++ {
		if v, ok := fields[num]; ok {
			payload = protowire.AppendTag(payload, num, protowire.BytesType)
			payload = protowire.AppendString(payload, v)
		}
	}
	return envelopeOf(ns, topic, at, payload)
}

// envelopeOf encodes a containerd.types.Envelope around an encoded payload.
func envelopeOf(ns, topic string, at time.Time, payload []byte) []byte {
	var any []byte
	any = protowire.AppendTag(any, 1, protowire.BytesType)
	any = protowire.AppendString(any, "containerd.events.Whatever")
	any = protowire.AppendTag(any, 2, protowire.BytesType)
	any = protowire.AppendBytes(any, payload)
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, timestamp(at))
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendString(b, ns)
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendString(b, topic)
	b = protowire.AppendTag(b, 4, protowire.BytesType)
	b = protowire.AppendBytes(b, any)
	return b
}

// timestamp encodes a google.protobuf.Timestamp.
func timestamp(at time.Time) []byte {
	var ts []byte
	ts = protowire.AppendTag(ts, 1, protowire.VarintType)
	ts = protowire.AppendVarint(ts, uint64(at.Unix()))
	ts = protowire.AppendTag(ts, 2, protowire.VarintType)
	return protowire.AppendVarint(ts, uint64(at.Nanosecond()))
}

func TestContainerdEventsDecodeToChangesOfContainersOnly(t *testing.T) {
	at := time.Unix(1_800_000_000, 123)
	tests := []struct {
		name string
		env  []byte
		want *Change
	}{
		{"TheContainersExit", envelope("k8s.io", "/tasks/exit", at, map[protowire.Number]string{1: "c1", 2: "c1"}), &Change{ID: "c1", What: ChangeExited, At: at}},
		{"AnExecsExitIsNotTheContainers", envelope("k8s.io", "/tasks/exit", at, map[protowire.Number]string{1: "c1", 2: "exec-7"}), nil},
		{"TheTasksDeletion", envelope("k8s.io", "/tasks/delete", at, map[protowire.Number]string{1: "c1"}), &Change{ID: "c1", What: ChangeExited, At: at}},
		{"AnExecsDeletion", envelope("k8s.io", "/tasks/delete", at, map[protowire.Number]string{1: "c1", 5: "exec-7"}), nil},
		{"AStart", envelope("k8s.io", "/tasks/start", at, map[protowire.Number]string{1: "c1"}), &Change{ID: "c1", What: ChangeStarted, At: at}},
		{"AnOOM", envelope("k8s.io", "/tasks/oom", at, map[protowire.Number]string{1: "c1"}), &Change{ID: "c1", What: ChangeOOM, At: at}},
		{"ARemoval", envelope("k8s.io", "/containers/delete", at, map[protowire.Number]string{1: "c1"}), &Change{ID: "c1", What: ChangeDeleted, At: at}},
		{"AnotherNamespace", envelope("moby", "/tasks/exit", at, map[protowire.Number]string{1: "c1", 2: "c1"}), nil},
		{"AnotherTopic", envelope("k8s.io", "/images/create", at, map[protowire.Number]string{1: "img"}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := decodeEnvelope(tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == nil {
				if ok {
					t.Fatalf("got %+v, want no change", got)
				}
				return
			}
			if !ok || got.ID != tt.want.ID || got.What != tt.want.What || !got.At.Equal(tt.want.At) {
				t.Fatalf("got %+v (ok=%v), want %+v", got, ok, *tt.want)
			}
		})
	}
	if _, _, err := decodeEnvelope([]byte{0xff}); err == nil {
		t.Fatal("garbage decoded without an error")
	}
}

// fakeCRI is a CRI runtime service (and, optionally, containerd's events
// service) over a unix socket, answering from maps the test changes.
type fakeCRI struct {
	criv1.UnimplementedRuntimeServiceServer
	mu         sync.Mutex
	sandboxes  map[string]*criv1.PodSandbox
	containers map[string]*criv1.Container
	exitCodes  map[string]int32
	// idLists counts list calls by the ID they asked for ("" for a full list).
	idLists map[string]int
	// envelopes feeds containerd's events service, when it is served.
	envelopes chan []byte
}

func (f *fakeCRI) Version(context.Context, *criv1.VersionRequest) (*criv1.VersionResponse, error) {
	return &criv1.VersionResponse{RuntimeName: "fake", RuntimeVersion: "1"}, nil
}

func (f *fakeCRI) ListPodSandbox(_ context.Context, r *criv1.ListPodSandboxRequest) (*criv1.ListPodSandboxResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.idLists["sandbox:"+r.GetFilter().GetId()]++
	out := &criv1.ListPodSandboxResponse{}
	for _, id := range sortedKeys(f.sandboxes) {
		sb := f.sandboxes[id]
		if fid := r.GetFilter().GetId(); fid != "" && fid != id {
			continue
		}
		if !matches(sb.Labels, r.GetFilter().GetLabelSelector()) {
			continue
		}
		out.Items = append(out.Items, proto.Clone(sb).(*criv1.PodSandbox))
	}
	return out, nil
}

func (f *fakeCRI) ListContainers(_ context.Context, r *criv1.ListContainersRequest) (*criv1.ListContainersResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.idLists["container:"+r.GetFilter().GetId()]++
	out := &criv1.ListContainersResponse{}
	for _, id := range sortedKeys(f.containers) {
		c := f.containers[id]
		if fid := r.GetFilter().GetId(); fid != "" && fid != id {
			continue
		}
		if !matches(c.Labels, r.GetFilter().GetLabelSelector()) {
			continue
		}
		out.Containers = append(out.Containers, proto.Clone(c).(*criv1.Container))
	}
	return out, nil
}

func (f *fakeCRI) ContainerStatus(_ context.Context, r *criv1.ContainerStatusRequest) (*criv1.ContainerStatusResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.containers[r.ContainerId]
	if c == nil {
		return nil, status.Error(codes.NotFound, "no such container")
	}
	c = proto.Clone(c).(*criv1.Container)
	st := &criv1.ContainerStatus{Id: c.Id, Metadata: c.Metadata, State: c.State, CreatedAt: c.CreatedAt, StartedAt: c.CreatedAt,
		Labels: c.Labels, Annotations: c.Annotations}
	if c.State == criv1.ContainerState_CONTAINER_EXITED {
		st.ExitCode, st.Reason, st.FinishedAt = f.exitCodes[c.Id], "Error", c.CreatedAt+1
	}
	return &criv1.ContainerStatusResponse{Status: st}, nil
}

func (f *fakeCRI) setState(id string, s criv1.ContainerState, exitCode int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.containers[id].State = s
	f.exitCodes[id] = exitCode
}

func (f *fakeCRI) lists(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.idLists[key]
}

func matches(labels, selector map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// subscribe serves containerd.services.events.v1.Events/Subscribe: the
// request and the envelopes travel as unknown fields of an empty message,
// which encode to exactly their bytes.
func (f *fakeCRI) subscribe(_ any, stream grpc.ServerStream) error {
	if err := stream.RecvMsg(&emptypb.Empty{}); err != nil {
		return err
	}
	for {
		select {
		case b, ok := <-f.envelopes:
			if !ok {
				return status.Error(codes.Unavailable, "events closed")
			}
			m := &emptypb.Empty{}
			m.ProtoReflect().SetUnknown(b)
			if err := stream.SendMsg(m); err != nil {
				return err
			}
		case <-stream.Context().Done():
			return nil
		}
	}
}

const fakeNode = "n1"

// serveFakeCRI serves f and returns a Runtime on it, and how to stop both.
func serveFakeCRI(t *testing.T, f *fakeCRI, withContainerdEvents bool) (*Runtime, func()) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "cri.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	criv1.RegisterRuntimeServiceServer(srv, f)
	if withContainerdEvents {
		srv.RegisterService(&grpc.ServiceDesc{
			ServiceName: "containerd.services.events.v1.Events",
			HandlerType: (*any)(nil),
			Streams:     []grpc.StreamDesc{{StreamName: "Subscribe", Handler: f.subscribe, ServerStreams: true}},
		}, f)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	r, err := New(Config{Endpoint: "unix://" + sock, ManagedBy: fakeNode, DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return r, func() { r.Close(); srv.Stop(); <-done }
}

func newFakeCRI() *fakeCRI {
	ours := map[string]string{LabelManaged: fakeNode, LabelPodName: "web-n1", LabelPodNamespace: "default", LabelPodUID: "u1", LabelContainerName: "c"}
	theirs := map[string]string{LabelManaged: "other", LabelPodName: "x-other", LabelPodNamespace: "default", LabelPodUID: "u9", LabelContainerName: "c"}
	created := time.Now().Add(-time.Minute).UnixNano()
	return &fakeCRI{
		sandboxes: map[string]*criv1.PodSandbox{
			"sb1": {Id: "sb1", Metadata: &criv1.PodSandboxMetadata{Name: "web-n1", Namespace: "default", Uid: "u1"}, State: criv1.PodSandboxState_SANDBOX_READY, CreatedAt: created, Labels: ours},
		},
		containers: map[string]*criv1.Container{
			"c1": {Id: "c1", PodSandboxId: "sb1", Metadata: &criv1.ContainerMetadata{Name: "c"}, State: criv1.ContainerState_CONTAINER_RUNNING, CreatedAt: created, Labels: ours},
			"f1": {Id: "f1", PodSandboxId: "sb9", Metadata: &criv1.ContainerMetadata{Name: "c"}, State: criv1.ContainerState_CONTAINER_RUNNING, CreatedAt: created, Labels: theirs},
		},
		exitCodes: map[string]int32{},
		idLists:   map[string]int{},
		envelopes: make(chan []byte, 16),
	}
}

// fakeChanges is a change stream the test feeds; a subscription fails while
// broken is set, and a stream ends when the test breaks it.
type fakeChanges struct {
	mu     sync.Mutex
	feed   chan Change
	broken bool
	cut    chan struct{} // closed to end the open stream
	// criFeed, when set, is a CRI event stream (as on containerd 2.x);
	// feed is then containerd's own events service beside it.
	criFeed chan Change
}

func newFakeChanges() *fakeChanges {
	return &fakeChanges{feed: make(chan Change, 16), cut: make(chan struct{})}
}

func (f *fakeChanges) SubscribeChanges(ctx context.Context, api string) (ChangeStream, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if api == ChangesCRI {
		if f.criFeed == nil {
			return nil, status.Error(codes.Unimplemented, "no CRI events")
		}
		return &fakeStream{ctx: ctx, feed: f.criFeed, cut: f.cut}, nil
	}
	if f.broken {
		return nil, errors.New("broken")
	}
	return &fakeStream{ctx: ctx, feed: f.feed, cut: f.cut}, nil
}

// breakStream ends the open stream and refuses new ones.
func (f *fakeChanges) breakStream() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.broken = true
	close(f.cut)
}

type fakeStream struct {
	ctx  context.Context
	feed chan Change
	cut  chan struct{}
}

func (s *fakeStream) Recv() (Change, error) {
	select {
	case c := <-s.feed:
		return c, nil
	case <-s.cut:
		return Change{}, errors.New("stream cut")
	case <-s.ctx.Done():
		return Change{}, s.ctx.Err()
	}
}

// observerWorld is a log holding pod web-n1 with sandbox sb1 and running
// container c1, a projection following it, and a runtime answering from a fakeCRI.
type observerWorld struct {
	t    *testing.T
	log  *eventlog.Log
	proj *testProjection
	cri  *fakeCRI
	rt   *Runtime
	stop func()
}

func newObserverWorld(t *testing.T, withContainerdEvents bool) *observerWorld {
	t.Helper()
	l, err := eventlog.Open(filepath.Join(t.TempDir(), "ledger.db"), eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	proj := newTestProjection()
	done := make(chan struct{})
	go func() { defer close(done); proj.run(ctx, l) }()
	cri := newFakeCRI()
	created := time.Unix(0, cri.containers["c1"].CreatedAt)
	seqs, err := l.Append(ctx,
		eventlog.Event{Pod: "default/web-n1", Data: &pb.SandboxObserved{Uid: "u1", SandboxId: "sb1", State: "ready", CreatedUnixNano: created.UnixNano()}},
		eventlog.Event{Pod: "default/web-n1", Data: &pb.ContainerObserved{Uid: "u1", SandboxId: "sb1", Container: "c", ContainerId: "c1", State: "running", StartedUnixNano: created.UnixNano()}},
	)
	if err != nil {
		t.Fatal(err)
	}
	if err := proj.WaitFor(ctx, seqs[1]); err != nil {
		t.Fatal(err)
	}
	rt, stopCRI := serveFakeCRI(t, cri, withContainerdEvents)
	w := &observerWorld{t: t, log: l, proj: proj, cri: cri, rt: rt}
	w.stop = func() { cancel(); <-done; l.Close(); stopCRI() }
	return w
}

// observeChanges runs an observer following changes, relisting only
// hourly, until the returned stop is called; it returns once the runtime is
// connected.
func (w *observerWorld) observeChanges(changes *fakeChanges) (stop func() error) {
	w.t.Helper()
	stop = w.run(&Observer{Changes: changes, Period: time.Hour, EventedPeriod: time.Hour})
	w.waitFor("the runtime connected", 5*time.Second, w.connected)
	return stop
}

// run runs an observer until the returned stop is called.
func (w *observerWorld) run(o *Observer) (stop func() error) {
	o.Runtime, o.Log, o.Projection, o.Endpoint = w.rt, w.log, w.proj, "unix:///fake"
	o.Logger = slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	return func() error { cancel(); return <-done }
}

// observed returns the ContainerObserved events appended after the world's
// own, but for the adoption's.
func (w *observerWorld) observed() []*pb.ContainerObserved {
	w.t.Helper()
	var out []*pb.ContainerObserved
	err := w.log.Read(context.Background(), 3, 0, func(e eventlog.Event) error {
		if d, ok := e.Data.(*pb.ContainerObserved); ok && !d.Adopted {
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return out
}

func (w *observerWorld) waitFor(what string, timeout time.Duration, cond func() bool) {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			w.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (w *observerWorld) connected() bool {
	var ok bool
	w.proj.Read(func(s *projector.State) { ok = s.Runtime.Connected })
	return ok
}

func TestAnExitIsRecordedFromTheChangeNotTheRelist(t *testing.T) {
	defer goleak.VerifyNone(t)
	w := newObserverWorld(t, false)
	defer w.stop()
	changes := newFakeChanges()
	stop := w.observeChanges(changes)

	var before map[string]knownPod
	var beforeIDs map[string]bool
	w.proj.Read(func(s *projector.State) { before, beforeIDs = knownObjects(s), knownIDs(s) })

	// CRI reports the exit only after the change arrived (as containerd
	// 1.6 does): the observer reads again until it shows.
	changes.feed <- Change{ID: "c1", What: ChangeExited}
	time.Sleep(5 * time.Millisecond)
	w.cri.setState("c1", criv1.ContainerState_CONTAINER_EXITED, 3)
	w.waitFor("the exit recorded", 2*time.Second, func() bool { return len(w.observed()) == 1 })
	got := w.observed()[0]

	// A relist of the same runtime against the same state records the same, field for field.
	l, err := w.rt.list(context.Background(), beforeIDs)
	if err != nil {
		t.Fatal(err)
	}
	want, err := observations(context.Background(), w.rt, before, l, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 1 || !proto.Equal(want[0].Data, got) {
		t.Fatalf("recorded from the change:\n  %v\na relist records:\n  %v", got, want)
	}
	if got.State != "exited" || got.ExitCode != 3 {
		t.Fatalf("recorded %v", got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := len(w.observed()); n != 1 {
		t.Fatalf("%d observations, want the exit once", n)
	}
}

func TestAnotherAgentsObjectCostsOneReadThenNothing(t *testing.T) {
	defer goleak.VerifyNone(t)
	w := newObserverWorld(t, false)
	defer w.stop()
	changes := newFakeChanges()
	stop := w.observeChanges(changes)
	for i := 0; i < 5; i++ {
		changes.feed <- Change{ID: "f1", What: ChangeExited}
		changes.feed <- Change{ID: "f1", What: ChangeOOM}
	}
	// A start or removal of an object the state does not hold costs nothing.
	changes.feed <- Change{ID: "new", What: ChangeStarted}
	changes.feed <- Change{ID: "gone", What: ChangeDeleted}
	w.cri.setState("c1", criv1.ContainerState_CONTAINER_EXITED, 1)
	changes.feed <- Change{ID: "c1", What: ChangeExited}
	w.waitFor("our own exit recorded", 2*time.Second, func() bool { return len(w.observed()) == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := w.cri.lists("container:f1"); n != 1 {
		t.Fatalf("%d reads of another agent's container, want 1", n)
	}
	if n := w.cri.lists("sandbox:f1") + w.cri.lists("container:new") + w.cri.lists("container:gone"); n != 0 {
		t.Fatalf("%d needless reads", n)
	}
}

func TestLosingTheStreamFallsBackToTheRelistAtOnce(t *testing.T) {
	defer goleak.VerifyNone(t)
	w := newObserverWorld(t, false)
	defer w.stop()
	changes := newFakeChanges()
	const period = 20 * time.Millisecond
	stop := w.run(&Observer{Changes: changes, Period: period, EventedPeriod: time.Hour})
	relists := func() int { return w.cri.lists("container:") }
	// Streaming: after the relist at the stream's opening, none for an hour.
	w.waitFor("the relist at the stream's opening", 5*time.Second, func() bool { return relists() >= 2 })
	time.Sleep(2 * streamSettle)
	n := relists()
	time.Sleep(10 * period)
	if got := relists(); got != n {
		t.Fatalf("%d relists while the stream flowed, want none", got-n)
	}
	// Lost: a relist at once, then every period.
	changes.breakStream()
	w.waitFor("relists every period", 2*time.Second, func() bool { return relists() >= n+5 })
	// An exit is seen by the relist alone.
	w.cri.setState("c1", criv1.ContainerState_CONTAINER_EXITED, 2)
	w.waitFor("the exit recorded by the relist", 2*time.Second, func() bool { return len(w.observed()) == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestContainerdEventsAreUsedWhereCRIHasNone(t *testing.T) {
	defer goleak.VerifyNone(t)
	w := newObserverWorld(t, true)
	defer w.stop()
	stop := w.run(&Observer{Changes: w.rt, Period: time.Hour, EventedPeriod: time.Hour})
	w.waitFor("the runtime connected", 5*time.Second, w.connected)
	// The fake's CRI has no GetContainerEvents (Unimplemented); its
	// containerd events service delivers an exec's exit, which is not the
	// container's, then the container's.
	w.cri.setState("c1", criv1.ContainerState_CONTAINER_EXITED, 4)
	w.cri.envelopes <- envelope("k8s.io", "/tasks/exit", time.Now(), map[protowire.Number]string{1: "c1", 2: "exec-1"})
	time.Sleep(50 * time.Millisecond)
	if n := len(w.observed()); n != 0 {
		t.Fatalf("an exec's exit recorded %d observations", n)
	}
	w.cri.envelopes <- envelope("k8s.io", "/tasks/exit", time.Now(), map[protowire.Number]string{1: "c1", 2: "c1"})
	w.waitFor("the exit recorded", 2*time.Second, func() bool { return len(w.observed()) == 1 })
	if got := w.observed()[0]; got.ExitCode != 4 {
		t.Fatalf("recorded %v", got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// taskExit encodes containerd's /tasks/exit envelope with its exit status and time.
func taskExit(id string, code uint32, at time.Time) []byte {
	var payload []byte
	payload = protowire.AppendTag(payload, 1, protowire.BytesType)
	payload = protowire.AppendString(payload, id)
	payload = protowire.AppendTag(payload, 2, protowire.BytesType)
	payload = protowire.AppendString(payload, id)
	payload = protowire.AppendTag(payload, 3, protowire.VarintType)
	payload = protowire.AppendVarint(payload, 4242)
	payload = protowire.AppendTag(payload, exitStatusField, protowire.VarintType)
	payload = protowire.AppendVarint(payload, uint64(code))
	payload = protowire.AppendTag(payload, exitedAtField, protowire.BytesType)
	payload = protowire.AppendBytes(payload, timestamp(at))
	return envelopeOf("k8s.io", "/tasks/exit", at, payload)
}

func TestContainerdsTaskExitCarriesTheExitAsCRIWillReportIt(t *testing.T) {
	at := time.Unix(1_800_000_000, 987654321)
	for _, tt := range []struct {
		code uint32
		want int32
	}{{0, 0}, {137, 137}, {255, 255}} {
		c, ok, err := decodeEnvelope(taskExit("c1", tt.code, at))
		if err != nil || !ok {
			t.Fatalf("decode: ok=%v err=%v", ok, err)
		}
		if c.Exit == nil || c.Exit.Code != tt.want || !c.Exit.At.Equal(at) || c.What != ChangeExited || c.ID != "c1" {
			t.Fatalf("exit %d decoded to %+v (exit %+v)", tt.code, c, c.Exit)
		}
	}
	// Only the container's own exit event carries it.
	c, _, _ := decodeEnvelope(envelope("k8s.io", "/tasks/delete", at, map[protowire.Number]string{1: "c1"}))
	if c.Exit != nil {
		t.Fatalf("a task deletion carries an exit: %+v", c.Exit)
	}
}

// exitWorld is an observer world whose CRI still shows c1 running when
// containerd's exit event for it arrives, as containerd 1.6 does for
// 60-300 ms: the event's exit is recorded at once.
func exitWorld(t *testing.T, code int32) (w *observerWorld, changes *fakeChanges, stop func() error, got *pb.ContainerObserved) {
	t.Helper()
	w = newObserverWorld(t, false)
	changes = newFakeChanges()
	stop = w.observeChanges(changes)
	finished := time.Unix(0, w.cri.containers["c1"].CreatedAt+1) // what the fake CRI will report
	changes.feed <- Change{ID: "c1", What: ChangeExited, Exit: &Exit{Code: code, At: finished}}
	w.waitFor("the exit recorded from the event", 2*time.Second, func() bool { return len(w.observed()) == 1 })
	return w, changes, stop, w.observed()[0]
}

func TestAnExitIsRecordedFromTheRuntimesEventWhileCRILagsAndReadsAsARelistWould(t *testing.T) {
	defer goleak.VerifyNone(t)
	w, changes, stop, got := exitWorld(t, 3)
	defer w.stop()
	if got.State != "exited" || got.ExitCode != 3 || got.Reason != "Error" || got.FinishedUnixNano != w.cri.containers["c1"].CreatedAt+1 {
		t.Fatalf("recorded %v", got)
	}

	// A relist while CRI still shows it running records nothing: an exited
	// container never runs again.
	var known map[string]knownPod
	var ids map[string]bool
	w.proj.Read(func(s *projector.State) { known, ids = knownObjects(s), knownIDs(s) })
	l, err := w.rt.list(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	if evs, err := observations(context.Background(), w.rt, known, l, false); err != nil || len(evs) != 0 {
		t.Fatalf("a relist behind the event records %v (err %v)", evs, err)
	}

	// CRI catches up, and says the same: nothing more is recorded, and what
	// was recorded is what a relist of the exited container records.
	w.cri.setState("c1", criv1.ContainerState_CONTAINER_EXITED, 3)
	changes.feed <- Change{ID: "c1", What: ChangeExited} // the task's deletion
	time.Sleep(100 * time.Millisecond)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := len(w.observed()); n != 1 {
		t.Fatalf("%d observations, want the exit once: %v", n, w.observed())
	}
	running := known // as the state was before the exit, but for the sandbox, unchanged
	c1 := running["default/web-n1"].containers["c1"]
	c1.State, c1.ExitCode, c1.Reason, c1.FinishedAt = "running", 0, "", 0
	running["default/web-n1"].containers["c1"] = c1
	l, err = w.rt.list(context.Background(), map[string]bool{"c1": true})
	if err != nil {
		t.Fatal(err)
	}
	want, err := observations(context.Background(), w.rt, running, l, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 1 || !proto.Equal(want[0].Data, got) {
		t.Fatalf("recorded from the event:\n  %v\na relist records:\n  %v", got, want)
	}
}

func TestAnExitRecordedFromTheEventIsCorrectedWhereCRISaysOtherwise(t *testing.T) {
	defer goleak.VerifyNone(t)
	w, changes, stop, _ := exitWorld(t, 3)
	defer w.stop()
	w.cri.setState("c1", criv1.ContainerState_CONTAINER_EXITED, 4)
	changes.feed <- Change{ID: "c1", What: ChangeExited}
	w.waitFor("the correction", 2*time.Second, func() bool { return len(w.observed()) == 2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := w.observed(); got[1].ExitCode != 4 || got[1].State != "exited" {
		t.Fatalf("corrected to %v", got[1])
	}
	w.waitFor("the state to hold CRI's exit code", 2*time.Second, func() bool {
		var code int32
		w.proj.Read(func(s *projector.State) { code = s.Pods["default/web-n1"].Containers["c1"].ExitCode })
		return code == 4
	})
}

// TestBesideCRIEventsContainerdsExitEventRecordsTheExitAtOnce: on a runtime
// with CRI events (containerd 2.x), whose STOPPED event comes only once the
// task is cleaned up, containerd's own exit event is followed beside it, and
// the exit is recorded from it; CRI's event then confirms it.
func TestBesideCRIEventsContainerdsExitEventRecordsTheExitAtOnce(t *testing.T) {
	defer goleak.VerifyNone(t)
	w := newObserverWorld(t, false)
	defer w.stop()
	changes := newFakeChanges()
	changes.criFeed = make(chan Change, 16)
	stop := w.observeChanges(changes)
	finished := time.Unix(0, w.cri.containers["c1"].CreatedAt+1)
	// containerd's events service publishes a start too: only exits and
	// OOM kills are taken from it, the rest is CRI's.
	changes.feed <- Change{ID: "c1", What: ChangeStarted}
	changes.feed <- Change{ID: "c1", What: ChangeExited, Exit: &Exit{Code: 3, At: finished}}
	w.waitFor("the exit recorded from containerd's event", 2*time.Second, func() bool { return len(w.observed()) == 1 })
	w.cri.setState("c1", criv1.ContainerState_CONTAINER_EXITED, 3)
	changes.criFeed <- Change{ID: "c1", What: ChangeExited}
	time.Sleep(100 * time.Millisecond)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got := w.observed()
	if len(got) != 1 || got[0].State != "exited" || got[0].ExitCode != 3 || got[0].FinishedUnixNano != finished.UnixNano() {
		t.Fatalf("observations %v; want the exit once, from the event", got)
	}
}

// TestAnExitAfterAnOOMEventIsRecordedOOMKilled: containerd publishes
// /tasks/oom before the exit; the exit recorded from the event carries the
// reason CRI will give it, OOMKilled, not Error.
func TestAnExitAfterAnOOMEventIsRecordedOOMKilled(t *testing.T) {
	defer goleak.VerifyNone(t)
	w := newObserverWorld(t, false)
	defer w.stop()
	changes := newFakeChanges()
	stop := w.observeChanges(changes)
	finished := time.Unix(0, w.cri.containers["c1"].CreatedAt+1)
	changes.feed <- Change{ID: "c1", What: ChangeOOM}
	changes.feed <- Change{ID: "c1", What: ChangeExited, Exit: &Exit{Code: 137, At: finished}}
	w.waitFor("the exit recorded from the event", 2*time.Second, func() bool { return len(w.observed()) == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := w.observed()[0]; got.Reason != "OOMKilled" || got.ExitCode != 137 || got.State != "exited" {
		t.Fatalf("recorded %v; want exited 137 OOMKilled", got)
	}
}
