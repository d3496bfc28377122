package projectortest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

// Scenario writes a recorded history to a real log, each event at the time
// the scenario says (the log's clock is the scenario's), so golden files of
// what replay reads from it are stable.
type Scenario struct {
	t   testing.TB
	Log *eventlog.Log
	Now time.Time
}

// ScenarioStart is when scenarios begin unless they say otherwise.
var ScenarioStart = time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)

// NewScenario opens a new log at path whose clock is the scenario's.
func NewScenario(t testing.TB, path string) *Scenario {
	t.Helper()
	s := &Scenario{t: t, Now: ScenarioStart}
	l, err := eventlog.Open(path, eventlog.Options{NoSync: true, Clock: func() time.Time { return s.Now }})
	if err != nil {
		t.Fatal(err)
	}
	s.Log = l
	t.Cleanup(func() { l.Close() })
	return s
}

// After moves the clock on.
func (s *Scenario) After(d time.Duration) *Scenario {
	s.Now = s.Now.Add(d)
	return s
}

// Add appends one event about pod ("" for none) now and returns its seq.
func (s *Scenario) Add(pod string, data proto.Message) uint64 {
	s.t.Helper()
	e := eventlog.Event{Pod: pod, Data: data}
	switch d := data.(type) {
	case *pb.ManifestAdded:
		e.Blobs = [][]byte{d.PodJson}
	case *pb.ManifestChanged:
		e.Blobs = [][]byte{d.PodJson}
	}
	seqs, err := s.Log.Append(context.Background(), e)
	if err != nil {
		s.t.Fatal(err)
	}
	return seqs[0]
}

// Close closes the log (so it can be opened read-only by path).
func (s *Scenario) Close() {
	s.t.Helper()
	if err := s.Log.Close(); err != nil {
		s.t.Fatal(err)
	}
}

// PodSpec describes a static pod for PodJSON.
type PodSpec struct {
	Key           string // "namespace/name"
	UID           string
	Containers    []ContainerSpec
	Init          []ContainerSpec
	RestartPolicy string // "" is Always
	HostNetwork   bool
	Grace         int64 // terminationGracePeriodSeconds; 0 is 30
}

// ContainerSpec is one container of a PodSpec.
type ContainerSpec struct {
	Name, Image string
	Command     []string
}

// PodJSON renders the defaulted pod the sources would record.
func PodJSON(p PodSpec) []byte {
	ns, name, _ := strings.Cut(p.Key, "/")
	containers := func(cs []ContainerSpec) []map[string]any {
		out := []map[string]any{}
		for _, c := range cs {
			m := map[string]any{"name": c.Name, "image": c.Image, "imagePullPolicy": "IfNotPresent",
				"terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "resources": map[string]any{}}
			if len(c.Command) > 0 {
				m["command"] = c.Command
			}
			out = append(out, m)
		}
		return out
	}
	policy := p.RestartPolicy
	if policy == "" {
		policy = "Always"
	}
	grace := p.Grace
	if grace == 0 {
		grace = 30
	}
	spec := map[string]any{"containers": containers(p.Containers), "restartPolicy": policy,
		"terminationGracePeriodSeconds": grace, "dnsPolicy": "ClusterFirst", "nodeName": "node1"}
	if len(p.Init) > 0 {
		spec["initContainers"] = containers(p.Init)
	}
	if p.HostNetwork {
		spec["hostNetwork"] = true
	}
	pod := map[string]any{
		"metadata": map[string]any{"name": name, "namespace": ns, "uid": p.UID,
			"annotations": map[string]any{"kubernetes.io/config.hash": p.UID, "kubernetes.io/config.source": "file"}},
		"spec": spec, "status": map[string]any{"phase": "Pending"},
	}
	b, err := json.Marshal(pod)
	if err != nil {
		panic(fmt.Sprintf("pod json: %v", err))
	}
	return b
}
