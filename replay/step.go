package replay

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/ledgerlet/ledgerlet/eventlog"
	"github.com/ledgerlet/ledgerlet/projector"
)

// Step is one event and the change it made to the projected state.
type Step struct {
	Entry
	// Changes are the fields of the canonical state the event changed:
	// per pod (Pod set) or of the node ("agent.", "runtime.", "apiserver.",
	// "sources.", "manifests.", "pending."); a new spec is one change whose
	// To is the manifest diff.
	Changes []Change `json:"changes"`
}

// Steps folds the log from its state before seq from, one event at a time,
// and calls fn with each event of from..from+count-1 (count 0: to the end)
// and what it changed.
func Steps(ctx context.Context, r Reader, from, count uint64, fn func(Step) error) error {
	if from == 0 {
		from = 1
	}
	st, err := StateAt(ctx, r, from-1)
	if err != nil {
		return err
	}
	var to uint64
	if count > 0 {
		to = from + count - 1
		if last := r.LastSeq(); to > last {
			to = last
		}
	}
	return r.Read(ctx, from, to, func(e eventlog.Event) error {
		beforeNode, beforePod := stepFields(st, e.Pod)
		var beforeSpec []byte
		if p := st.Pods[e.Pod]; p != nil {
			beforeSpec = p.Spec
		}
		st.Apply(e)
		afterNode, afterPod := stepFields(st, e.Pod)
		changes := fieldChanges("", "", beforeNode, afterNode)
		if e.Pod != "" {
			changes = append(changes, fieldChanges(e.Pod, "", beforePod, afterPod)...)
			var afterSpec []byte
			if p := st.Pods[e.Pod]; p != nil {
				afterSpec = p.Spec
			}
			if string(beforeSpec) != string(afterSpec) {
				changes = append(changes, Change{Pod: e.Pod, Field: "spec", To: ManifestDiff(beforeSpec, afterSpec)})
			}
		}
		if changes == nil {
			changes = []Change{}
		}
		return fn(Step{Entry: Entry{JSONEvent: ToJSON(e), Summary: Summary(e)}, Changes: changes})
	})
}

// stepFields flattens the node-wide parts of the canonical state and one
// pod (its spec left out: it is diffed as a manifest).
func stepFields(st *projector.State, pod string) (node, p map[string]string) {
	node = flatten(struct {
		Agent     projector.Agent                     `json:"agent"`
		Runtime   projector.Runtime                   `json:"runtime"`
		Apiserver projector.Apiserver                 `json:"apiserver"`
		Sources   map[string]*projector.Source        `json:"sources"`
		Manifests map[string]*projector.Manifest      `json:"manifests"`
		Pending   map[uint64]*projector.PendingIntent `json:"pending"`
	}{st.Agent, st.Runtime, st.Apiserver, st.Sources, st.Manifests, st.Pending})
	p = map[string]string{}
	if pp := st.Pods[pod]; pp != nil {
		b, err := json.Marshal(pp)
		if err == nil {
			var m map[string]any
			if json.Unmarshal(b, &m) == nil {
				delete(m, "spec")
				p = flatten(m)
			}
		}
		p["pod"] = "present"
	} else if pod != "" {
		p = map[string]string{"pod": "(absent)"}
	}
	return node, p
}

// String renders a change compactly: field: from -> to.
func (c Change) String() string {
	switch {
	case c.From == "":
		return fmt.Sprintf("%s: %s", c.Field, c.To)
	case c.To == "":
		return fmt.Sprintf("%s: %s -> (none)", c.Field, c.From)
	}
	return fmt.Sprintf("%s: %s -> %s", c.Field, c.From, c.To)
}
