package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	criv1 "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Change is the runtime saying that one of its objects changed: a hint to
// look at that object now. The observer records what a CRI read of the
// object then says, so the ledger reads the same whether a change or the
// relist found it. The one exception is Exit: see there.
type Change struct {
	// ID is a container's or a pod sandbox's ID.
	ID   string
	What ChangeKind
	// At is when the runtime says it happened; zero when it did not say.
	At time.Time
	// Exit is the container's exit as the runtime's own exit event states
	// it (containerd's /tasks/exit), nil for every other change. containerd's
	// CRI plugin reports an exit only after the shim has cleaned the task up
	// (60-300 ms here, more when exits queue), so while a CRI read still
	// shows the container running, the observer records the exit from these
	// facts, in the fields CRI will report, and confirms them by a CRI read
	// once CRI shows it (correcting what differs).
	Exit *Exit
}

// Exit is a container's exit as the runtime published it.
type Exit struct {
	Code int32
	At   time.Time
}

// ChangeKind is what the runtime says happened to an object.
type ChangeKind string

// Change kinds. A read after one is expected to show its effect: a started
// object runs, an exited one has exited (or is gone), a deleted one is gone.
// An OOM kill is followed by an exit; it only says "look now".
const (
	ChangeStarted ChangeKind = "started"
	ChangeExited  ChangeKind = "exited"
	ChangeDeleted ChangeKind = "deleted"
	ChangeOOM     ChangeKind = "oom"
)

// The APIs a runtime may publish its changes through.
const (
	// ChangesCRI is CRI's GetContainerEvents (containerd 1.7 and 2.x). The
	// runtime sends each event after its own status reflects it.
	ChangesCRI = "cri"
	// ChangesContainerd is containerd's own events service on the same
	// socket (every containerd; the only one 1.6 has). Its events are
	// published before the CRI plugin has handled them, so a read right
	// after one may still show the old state.
	ChangesContainerd = "containerd"
)

// ChangeStream delivers changes until its context ends or the runtime drops it.
type ChangeStream interface {
	// Recv blocks until the next change. A runtime without the API answers
	// codes.Unimplemented, for CRI on the first Recv.
	Recv() (Change, error)
}

// SubscribeChanges opens a change stream through api (ChangesCRI or
// ChangesContainerd). The stream ends when ctx does.
func (r *Runtime) SubscribeChanges(ctx context.Context, api string) (ChangeStream, error) {
	switch api {
	case ChangesCRI:
		s, err := r.rs.GetContainerEvents(ctx, &criv1.GetEventsRequest{})
		if err != nil {
			return nil, fmt.Errorf("subscribe to CRI container events: %w", err)
		}
		return &criChanges{s: s, managedBy: r.cfg.ManagedBy}, nil
	case ChangesContainerd:
		cs, err := r.conn.NewStream(containerdCtx(ctx), &grpc.StreamDesc{StreamName: "Subscribe", ServerStreams: true},
			containerdSubscribe, grpc.ForceCodec(rawCodec{}))
		if err != nil {
			return nil, fmt.Errorf("subscribe to containerd events: %w", err)
		}
		req := subscribeRequest(containerdFilters())
		if err := cs.SendMsg(&req); err != nil {
			return nil, fmt.Errorf("subscribe to containerd events: %w", err)
		}
		if err := cs.CloseSend(); err != nil {
			return nil, fmt.Errorf("subscribe to containerd events: %w", err)
		}
		return &containerdChanges{cs: cs}, nil
	}
	return nil, fmt.Errorf("unknown change API %q", api)
}

// IsUnimplemented reports a runtime that does not offer an API at all.
func IsUnimplemented(err error) bool { return status.Code(err) == codes.Unimplemented }

// criChanges reads CRI's GetContainerEvents.
type criChanges struct {
	s         criv1.RuntimeService_GetContainerEventsClient
	managedBy string
}

func (c *criChanges) Recv() (Change, error) {
	for {
		ev, err := c.s.Recv()
		if err != nil {
			return Change{}, err
		}
		// Another agent's pod (the event names its sandbox): not ours to look at.
		if by, ok := ev.GetPodSandboxStatus().GetLabels()[LabelManaged]; ok && by != c.managedBy {
			continue
		}
		var what ChangeKind
		switch ev.ContainerEventType {
		case criv1.ContainerEventType_CONTAINER_STARTED_EVENT:
			what = ChangeStarted
		case criv1.ContainerEventType_CONTAINER_STOPPED_EVENT:
			what = ChangeExited
		case criv1.ContainerEventType_CONTAINER_DELETED_EVENT:
			what = ChangeDeleted
		default:
			// Created: the create's outcome records it; nothing runs yet.
			continue
		}
		return Change{ID: ev.ContainerId, What: what, At: nsTime(ev.CreatedAt)}, nil
	}
}

// criNamespace is the containerd namespace the CRI plugin keeps its objects in.
const criNamespace = "k8s.io"

// containerdCtx addresses containerd's own services (beside CRI on the same
// socket) in the CRI plugin's namespace.
func containerdCtx(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "containerd-namespace", criNamespace)
}

// invokeContainerd makes one call to a containerd service, its messages
// encoded and decoded by hand (see containerdChanges).
func (r *Runtime) invokeContainerd(ctx context.Context, method string, req []byte) ([]byte, error) {
	var resp []byte
	err := r.conn.Invoke(containerdCtx(ctx), method, &req, &resp, grpc.ForceCodec(rawCodec{}))
	return resp, err
}

// appendString appends string field num to a protobuf message.
func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

const containerdSubscribe = "/containerd.services.events.v1.Events/Subscribe"

// containerdTopics are the topics that say a CRI object changed state. Exec
// processes also publish /tasks/exit and /tasks/delete (told apart by their
// process ID); creation is left to the create's own outcome.
//
// An exit is published before the CRI plugin handles it: the plugin first
// deletes the task (the shim unmounts and cleans up, which takes 100 ms and
// more) and only then reports the container exited. The task's deletion is
// published just before that report, so it is the moment to look again.
var containerdTopics = map[string]ChangeKind{
	"/tasks/start":       ChangeStarted,
	"/tasks/exit":        ChangeExited,
	"/tasks/delete":      ChangeExited,
	"/tasks/oom":         ChangeOOM,
	"/containers/delete": ChangeDeleted,
}

// exitFields are TaskExit's exit_status (uint32) and exited_at (Timestamp).
const (
	exitStatusField protowire.Number = 4
	exitedAtField   protowire.Number = 5
)

// processIDField is the field of a task event's payload that names the
// process, where it is not the container's own (an exec's).
var processIDField = map[string]protowire.Number{
	"/tasks/exit":   2,
	"/tasks/delete": 5,
}

// containerdFilters selects the topics above in the CRI plugin's namespace
// (filters are or-ed; the comma inside one is an and).
func containerdFilters() []string {
	out := make([]string, 0, len(containerdTopics))
	for _, t := range sortedKeys(containerdTopics) {
		out = append(out, fmt.Sprintf("namespace==%q,topic==%q", criNamespace, t))
	}
	return out
}

// containerdChanges reads containerd's events service. The messages are
// decoded by hand from their (stable since containerd 1.0) wire format:
// the generated API module would bring ttrpc, logrus and more for five
// fields of three messages.
type containerdChanges struct{ cs grpc.ClientStream }

func (c *containerdChanges) Recv() (Change, error) {
	for {
		var b []byte
		if err := c.cs.RecvMsg(&b); err != nil {
			return Change{}, err
		}
		ch, ok, err := decodeEnvelope(b)
		if err != nil {
			return Change{}, fmt.Errorf("decode containerd event: %w", err)
		}
		if ok {
			return ch, nil
		}
	}
}

// subscribeRequest encodes containerd.services.events.v1.SubscribeRequest
// {repeated string filters = 1}.
func subscribeRequest(filters []string) []byte {
	var b []byte
	for _, f := range filters {
		b = appendString(b, 1, f)
	}
	return b
}

// decodeEnvelope reads containerd.types.Envelope {Timestamp timestamp = 1;
// string namespace = 2; string topic = 3; Any event = 4} and the event in it.
// Every payload of containerdTopics carries the container's ID in field 1;
// TaskExit and TaskDelete also name the process (see processIDField): an
// exec's exit is not the container's. ok is false for an event that is not a change.
func decodeEnvelope(b []byte) (c Change, ok bool, err error) {
	var ns, topic string
	var payload []byte
	err = eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			c.At = decodeTimestamp(v)
		case num == 2 && typ == protowire.BytesType:
			ns = string(v)
		case num == 3 && typ == protowire.BytesType:
			topic = string(v)
		case num == 4 && typ == protowire.BytesType:
			// google.protobuf.Any {string type_url = 1; bytes value = 2}
			return eachField(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
				if num == 2 && typ == protowire.BytesType {
					payload = v
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return Change{}, false, err
	}
	what, known := containerdTopics[topic]
	if !known || ns != criNamespace {
		return Change{}, false, nil
	}
	var processID string
	var exit Exit
	err = eachField(payload, func(num protowire.Number, typ protowire.Type, v []byte) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			c.ID = string(v)
		case num == processIDField[topic] && typ == protowire.BytesType:
			processID = string(v)
		case topic == "/tasks/exit" && num == exitStatusField && typ == protowire.VarintType:
			n, _ := protowire.ConsumeVarint(v)
			exit.Code = int32(uint32(n)) // as CRI reports it: int32(exit_status)
		case topic == "/tasks/exit" && num == exitedAtField && typ == protowire.BytesType:
			exit.At = decodeTimestamp(v)
		}
		return nil
	})
	if err != nil {
		return Change{}, false, err
	}
	if c.ID == "" || (processID != "" && processID != c.ID) {
		return Change{}, false, nil
	}
	c.What = what
	if topic == "/tasks/exit" && !exit.At.IsZero() {
		c.Exit = &exit
	}
	return c, true, nil
}

// decodeTimestamp reads google.protobuf.Timestamp {int64 seconds = 1; int32 nanos = 2}.
func decodeTimestamp(b []byte) time.Time {
	var sec, nsec int64
	_ = eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if typ != protowire.VarintType {
			return nil
		}
		n, _ := protowire.ConsumeVarint(v)
		switch num {
		case 1:
			sec = int64(n)
		case 2:
			nsec = int64(int32(n))
		}
		return nil
	})
	if sec == 0 && nsec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, nsec)
}

// eachField calls fn with each field of a protobuf message: for bytes
// fields v is the content, for varints the encoded varint, else nil.
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			_, n = protowire.ConsumeVarint(b)
			if n >= 0 {
				v = b[:n]
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := fn(num, typ, v); err != nil {
			return err
		}
	}
	return nil
}

// rawCodec passes messages through as bytes (*[]byte), for the hand-decoded
// containerd stream. It is named "proto" because that is what goes on the
// wire (the content-subtype containerd expects).
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, errors.New("raw codec: not *[]byte")
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return errors.New("raw codec: not *[]byte")
	}
	// grpc reuses data after Unmarshal returns.
	*b = append((*b)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }
