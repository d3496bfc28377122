package replay

import (
	"context"
	"fmt"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

// Entry is one line of a pod's timeline.
type Entry struct {
	JSONEvent
	Summary string `json:"summary"`
	// Diff is the manifest diff for ManifestAdded/ManifestChanged events.
	Diff string `json:"diff,omitempty"`
}

// History returns one pod's timeline, with each manifest version diffed
// against the previous one the log holds for that pod.
func History(ctx context.Context, r Reader, pod string, f Filter) ([]Entry, error) {
	var out []Entry
	var prev []byte
	// Manifest versions before the filter's start still matter for the first
	// diff, so read the pod's whole retained history and filter afterwards.
	from, to, err := f.Range(r)
	if err == errEmpty {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	err = r.ReadPod(ctx, pod, r.FirstSeq(), to, func(e eventlog.Event) error {
		var diff string
		var spec []byte
		switch d := e.Data.(type) {
		case *pb.ManifestAdded:
			spec = d.PodJson
		case *pb.ManifestChanged:
			spec = d.PodJson
		}
		if spec != nil {
			diff = ManifestDiff(prev, spec)
			prev = spec
		}
		if e.Seq >= from && f.MatchType(e) {
			out = append(out, Entry{JSONEvent: ToJSON(e), Summary: Summary(e), Diff: diff})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read history of %s: %w", pod, err)
	}
	return out, nil
}
