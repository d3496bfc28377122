package replay

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ledgerlet/ledgerlet/eventlog"
	"github.com/ledgerlet/ledgerlet/projector"
)

// Reader is what replay needs of a log (satisfied by *eventlog.Log).
type Reader interface {
	FirstSeq() uint64
	LastSeq() uint64
	Read(ctx context.Context, from, to uint64, fn func(eventlog.Event) error) error
	ReadPod(ctx context.Context, pod string, from, to uint64, fn func(eventlog.Event) error) error
	SeqAt(t time.Time) (uint64, error)
	LatestSnapshot(atOrBefore uint64) (eventlog.Snapshot, bool, error)
}

// Point names a place in the log: a seq, or an instant (the state after every
// event at or before it). The zero Point is the end of the log.
type Point struct {
	Seq  uint64
	Time time.Time
}

// ParsePoint reads "N" (a seq) or an RFC3339 time.
func ParsePoint(s string) (Point, error) {
	var seq uint64
	if _, err := fmt.Sscanf(s, "%d", &seq); err == nil && fmt.Sprint(seq) == s {
		return Point{Seq: seq}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return Point{}, fmt.Errorf("%q is neither a sequence number nor an RFC3339 time", s)
	}
	return Point{Time: t}, nil
}

// Seq resolves the point to the seq of the last event it includes.
func (p Point) Resolve(r Reader) (uint64, error) {
	switch {
	case p.Seq != 0:
		if last := r.LastSeq(); p.Seq > last {
			return 0, fmt.Errorf("seq %d is past the end of the log (%d)", p.Seq, last)
		}
		return p.Seq, nil
	case !p.Time.IsZero():
		// SeqAt gives the first event at or after t; we want the last one at or before t.
		first, err := r.SeqAt(p.Time.Add(1))
		if err != nil {
			return 0, fmt.Errorf("find seq at %s: %w", p.Time.Format(time.RFC3339Nano), err)
		}
		return first - 1, nil
	default:
		return r.LastSeq(), nil
	}
}

// StateAt returns the projected state after event upTo: the newest usable
// snapshot at or before it, plus the fold of the events after the snapshot.
//
// In a compacted log (FirstSeq > 1) only snapshots at or after FirstSeq-1
// are usable: an older one is followed by events that are gone, so folding
// the retained ones onto it would be a state that never was.
func StateAt(ctx context.Context, r Reader, upTo uint64) (*projector.State, error) {
	s := projector.New()
	if upTo == 0 {
		return s, nil // before the first event
	}
	first := r.FirstSeq()
	if first > 1 && upTo < first-1 {
		return nil, fmt.Errorf("seq %d is before the retained log (it starts at %d)", upTo, first)
	}
	from, restoredOK := first, false
	snap, ok, err := r.LatestSnapshot(upTo)
	if err != nil {
		return nil, fmt.Errorf("read snapshot at or before %d: %w", upTo, err)
	}
	if ok && (first <= 1 || snap.Seq >= first-1) {
		restored, err := projector.Restore(snap.State)
		if err != nil {
			// A snapshot from another schema: fall back to what the log holds.
			slog.Default().Warn("ignoring snapshot", "seq", snap.Seq, "err", err)
		} else {
			s, from, restoredOK = restored, snap.Seq+1, true
		}
	}
	if first > 1 && !restoredOK {
		return nil, fmt.Errorf("no usable snapshot at or before seq %d: the log starts at %d and its snapshot at %d is missing", upTo, first, first-1)
	}
	if from > upTo {
		return s, nil
	}
	if err := r.Read(ctx, from, upTo, func(e eventlog.Event) error {
		s.Apply(e)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("fold events %d..%d: %w", from, upTo, err)
	}
	return s, nil
}
