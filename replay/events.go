package replay

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

// Filter selects events.
type Filter struct {
	Pod          string // "namespace/name"; empty: all
	Since, Until time.Time
	Types        []string // event types (ContainerObserved, Intent…); empty: all
}

// MatchType: the filter names no type, or e's.
func (f Filter) MatchType(e eventlog.Event) bool {
	if len(f.Types) == 0 {
		return true
	}
	t := e.Type()
	for _, want := range f.Types {
		if want == t {
			return true
		}
	}
	return false
}

// Range resolves the filter's times to an inclusive seq range (to == 0: the end).
func (f Filter) Range(r Reader) (from, to uint64, err error) {
	from = r.FirstSeq()
	if !f.Since.IsZero() {
		if from, err = r.SeqAt(f.Since); err != nil {
			return 0, 0, fmt.Errorf("find seq at %s: %w", f.Since.Format(time.RFC3339), err)
		}
	}
	if !f.Until.IsZero() {
		next, err := r.SeqAt(f.Until.Add(1))
		if err != nil {
			return 0, 0, fmt.Errorf("find seq at %s: %w", f.Until.Format(time.RFC3339), err)
		}
		if next <= from {
			return 1, 0, errEmpty
		}
		to = next - 1
	}
	return from, to, nil
}

var errEmpty = fmt.Errorf("empty range")

// Events calls fn for every event the filter selects, in order.
func Events(ctx context.Context, r Reader, f Filter, fn func(eventlog.Event) error) error {
	from, to, err := f.Range(r)
	if err == errEmpty {
		return nil
	}
	if err != nil {
		return err
	}
	if from > r.LastSeq() {
		return nil
	}
	if len(f.Types) > 0 {
		all := fn
		fn = func(e eventlog.Event) error {
			if !f.MatchType(e) {
				return nil
			}
			return all(e)
		}
	}
	if f.Pod != "" {
		return r.ReadPod(ctx, f.Pod, from, to, fn)
	}
	return r.Read(ctx, from, to, fn)
}

// JSONEvent is the stable `events -o json` shape: one object per line.
type JSONEvent struct {
	Seq  uint64          `json:"seq"`
	Time time.Time       `json:"time"`
	Type string          `json:"type"`
	Pod  string          `json:"pod"`
	Data json.RawMessage `json:"data"`
}

var dataJSON = protojson.MarshalOptions{UseProtoNames: false, EmitUnpopulated: false}

// ToJSON renders an event in the stable JSON shape. pod_json is shown as the
// pod object it is, not as base64.
func ToJSON(e eventlog.Event) JSONEvent {
	b, err := dataJSON.Marshal(e.Data)
	if err != nil {
		b = []byte(`{}`)
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) == nil {
		if _, ok := m["podJson"]; ok {
			var raw []byte
			switch d := e.Data.(type) {
			case *pb.ManifestAdded:
				raw = d.PodJson
			case *pb.ManifestChanged:
				raw = d.PodJson
			}
			delete(m, "podJson")
			if json.Valid(raw) {
				m["pod"] = raw
			}
			b, _ = json.Marshal(m)
		}
	}
	return JSONEvent{Seq: e.Seq, Time: e.Time, Type: e.Type(), Pod: e.Pod, Data: b}
}

// Summary is a one-line human description of an event, for tables.
func Summary(e eventlog.Event) string {
	switch d := e.Data.(type) {
	case *pb.AgentStarted:
		return fmt.Sprintf("agent %s started on %s (pid %d)", d.Version, d.NodeName, d.Pid)
	case *pb.AgentStopped:
		return "agent stopped: " + d.Reason
	case *pb.SnapshotMarker:
		return fmt.Sprintf("snapshot through seq %d", d.Seq)
	case *pb.ManifestAdded:
		return fmt.Sprintf("%s %s added (uid %s)", d.Source, d.Path, d.Uid)
	case *pb.ManifestChanged:
		return fmt.Sprintf("%s %s changed (uid %s -> %s)", d.Source, d.Path, d.PreviousUid, d.Uid)
	case *pb.ManifestRemoved:
		return fmt.Sprintf("%s %s removed", d.Source, d.Path)
	case *pb.ManifestRejected:
		return fmt.Sprintf("%s %s rejected: %s", d.Source, d.Path, d.Reason)
	case *pb.SourceSynced:
		return fmt.Sprintf("%s source %s listed (%d manifests)", d.Source, d.Location, d.Manifests)
	case *pb.SourceUnavailable:
		return fmt.Sprintf("%s source %s unavailable: %s", d.Source, d.Location, d.Reason)
	case *pb.SourceAvailable:
		return fmt.Sprintf("%s source %s available", d.Source, d.Location)
	case *pb.RuntimeConnected:
		return fmt.Sprintf("runtime %s %s connected at %s", d.RuntimeName, d.RuntimeVersion, d.Endpoint)
	case *pb.RuntimeDisconnected:
		return fmt.Sprintf("runtime at %s lost: %s", d.Endpoint, d.Reason)
	case *pb.SandboxObserved:
		s := fmt.Sprintf("sandbox %s %s", short(d.SandboxId), d.State)
		if d.Ip != "" {
			s += " ip " + d.Ip
		}
		if d.Adopted {
			s += " (adopted)"
		}
		return s
	case *pb.SandboxGone:
		return fmt.Sprintf("sandbox %s gone", short(d.SandboxId))
	case *pb.ContainerObserved:
		s := fmt.Sprintf("container %s %s %s (restarts %d)", d.Container, short(d.ContainerId), d.State, d.Attempt)
		if d.State == "exited" {
			s += fmt.Sprintf(" exit %d %s", d.ExitCode, d.Reason)
		}
		if d.Adopted {
			s += " (adopted)"
		}
		return s
	case *pb.ContainerGone:
		return fmt.Sprintf("container %s %s gone", d.Container, short(d.ContainerId))
	case *pb.ContainerProbed:
		s := fmt.Sprintf("%s probe of %s %s: %s", d.Probe, d.Container, short(d.ContainerId), d.Result)
		if d.Consecutive > 1 {
			s += fmt.Sprintf(" (%d in a row)", d.Consecutive)
		}
		if d.Output != "" {
			s += ": " + oneLine(d.Output)
		}
		return s
	case *pb.Intent:
		s := "intent " + d.Action
		if d.Container != "" {
			s += " " + d.Container
		}
		if d.MirrorUid != "" {
			s += " mirror " + d.MirrorUid
		}
		if pb.Action(d.Action) == pb.ActionStopContainer {
			s += fmt.Sprintf(" (grace %ds)", d.GracePeriodSeconds)
		}
		if d.Reason != "" {
			s += ": " + d.Reason
		}
		return s
	case *pb.Outcome:
		if d.Ok {
			return fmt.Sprintf("outcome of #%d: ok", d.IntentSeq)
		}
		return fmt.Sprintf("outcome of #%d: failed: %s", d.IntentSeq, strings.TrimSpace(d.Reason+" "+d.Error))
	case *pb.MirrorObserved:
		s := fmt.Sprintf("mirror %s observed (config %s)", d.MirrorUid, d.ConfigMirror)
		if d.Deleting {
			s += " being deleted"
		}
		return s
	case *pb.MirrorGone:
		return fmt.Sprintf("mirror %s gone", d.MirrorUid)
	case *pb.ApiserverConnected:
		return fmt.Sprintf("apiserver %s connected (%s), node uid %s", d.Host, d.ServerVersion, d.NodeUid)
	case *pb.ApiserverDisconnected:
		return fmt.Sprintf("apiserver %s lost: %s", d.Host, d.Reason)
	case *pb.MirrorsSynced:
		return fmt.Sprintf("mirror pods listed (%d)", d.Mirrors)
	case *pb.PodDataObserved:
		return fmt.Sprintf("cgroup or data of removed pod uid %s found on the node", d.Uid)
	}
	return e.Type()
}

// oneLine keeps a probe's output on the summary's line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	return s
}

func short(id string) string {
	if len(id) > 13 {
		return id[:13]
	}
	return id
}
