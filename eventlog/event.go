package eventlog

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

// Event is one entry of the log: a fact the agent learned or an action it took.
// Seq and Time are assigned by Append; callers set Pod, Data and Blobs.
type Event struct {
	Seq uint64
	// Time is the wall clock when the event was appended (UTC, ns), as
	// read: a clock step shows in it, so it is not ordered by Seq (Seq is
	// the order). It says when things happened; never measure a deadline
	// with it (see Boottime).
	Time time.Time
	// Boottime is CLOCK_BOOTTIME at append, in ns (0: not read, e.g. logs
	// written before it was recorded). It never steps; readings of one boot
	// (the boot id is in the run's AgentStarted) give true durations.
	Boottime int64
	// Pod is the key "namespace/name" of the static pod the event is about, or "".
	Pod string
	// Data is one of the payload messages of eventpb.Record (e.g. *eventpb.ManifestAdded).
	Data proto.Message
	// Blobs are stored content-addressed (sha256) in the same commit as the
	// event; they are not part of the record and are not returned by reads.
	Blobs [][]byte
}

// Type is the payload's message name, e.g. "ManifestAdded": the event type.
func (e Event) Type() string {
	if e.Data == nil {
		return ""
	}
	return string(e.Data.ProtoReflect().Descriptor().Name())
}

var (
	recordDesc   = (&eventpb.Record{}).ProtoReflect().Descriptor()
	payloadOneof = recordDesc.Oneofs().ByName("payload")
)

// payloadFields maps a payload message's full name to its field in Record.
// It is derived once from the generated descriptor, so adding a payload to
// events.proto needs no code here.
var payloadFields = func() map[protoreflect.FullName]protoreflect.FieldDescriptor {
	m := make(map[protoreflect.FullName]protoreflect.FieldDescriptor)
	fields := payloadOneof.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		m[fd.Message().FullName()] = fd
	}
	return m
}()

// Types lists every event type name in field-number order.
func Types() []string {
	fields := payloadOneof.Fields()
	out := make([]string, 0, fields.Len())
	for i := 0; i < fields.Len(); i++ {
		out = append(out, string(fields.Get(i).Message().Name()))
	}
	return out
}

// Encode turns an event into the stored record bytes (without its seq).
func Encode(e Event) ([]byte, error) {
	rec, err := toRecord(e)
	if err != nil {
		return nil, err
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(rec)
}

func toRecord(e Event) (*eventpb.Record, error) {
	if e.Data == nil {
		return nil, fmt.Errorf("encode event: no payload")
	}
	fd, ok := payloadFields[e.Data.ProtoReflect().Descriptor().FullName()]
	if !ok {
		return nil, fmt.Errorf("encode event: %s is not an event payload", e.Data.ProtoReflect().Descriptor().FullName())
	}
	rec := &eventpb.Record{Pod: e.Pod}
	if !e.Time.IsZero() {
		rec.TimeUnixNano = e.Time.UnixNano()
	}
	rec.BoottimeNano = e.Boottime
	rec.ProtoReflect().Set(fd, protoreflect.ValueOfMessage(e.Data.ProtoReflect()))
	return rec, nil
}

// payloadTypes maps a Record field number to its payload message type.
var payloadTypes = func() map[protowire.Number]protoreflect.MessageType {
	m := make(map[protowire.Number]protoreflect.MessageType)
	fields := payloadOneof.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		mt, err := protoregistry.GlobalTypes.FindMessageByName(fd.Message().FullName())
		if err == nil {
			m[fd.Number()] = mt
		}
	}
	return m
}()

// Decode is the inverse of Encode.
func Decode(seq uint64, b []byte) (Event, error) {
	// Fast path: a record holding only its payload (how the log stores
	// them, pod and time kept beside it) decodes straight into the payload
	// message, without the Record and its oneof wrapper.
	if num, typ, n := protowire.ConsumeTag(b); n > 0 && typ == protowire.BytesType {
		if mt, ok := payloadTypes[num]; ok {
			if v, m := protowire.ConsumeBytes(b[n:]); m > 0 && n+m == len(b) {
				msg := mt.New().Interface()
				if err := proto.Unmarshal(v, msg); err != nil {
					return Event{}, fmt.Errorf("decode event %d: %w", seq, err)
				}
				return Event{Seq: seq, Time: time.Unix(0, 0).UTC(), Data: msg}, nil
			}
		}
	}
	var rec eventpb.Record
	if err := proto.Unmarshal(b, &rec); err != nil {
		return Event{}, fmt.Errorf("decode event %d: %w", seq, err)
	}
	fd := rec.ProtoReflect().WhichOneof(payloadOneof)
	if fd == nil {
		return Event{}, fmt.Errorf("decode event %d: unknown or missing payload (written by a newer ledgerlet?)", seq)
	}
	return Event{
		Seq:      seq,
		Time:     time.Unix(0, rec.TimeUnixNano).UTC(),
		Boottime: rec.BoottimeNano,
		Pod:      rec.Pod,
		Data:     rec.ProtoReflect().Get(fd).Message().Interface(),
	}, nil
}
