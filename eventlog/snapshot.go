package eventlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"
)

// SaveSnapshot durably stores state as of seq; periodic snapshots beyond the
// newest few are dropped (see pruneSnapshots).
func (l *Log) SaveSnapshot(ctx context.Context, s Snapshot) error {
	if last := l.LastSeq(); s.Seq > last {
		return fmt.Errorf("save snapshot at %d: beyond last seq %d", s.Seq, last)
	}
	if l.readOnly {
		return fmt.Errorf("save snapshot at %d: %s is open read-only", s.Seq, l.path)
	}
	w := l.w
	state := bytes.Clone(s.State) // the caller may reuse its buffer once we return
	err := l.submitJob(ctx, func(tx *bolt.Tx) error {
		// Runs on the writer goroutine: w.first is safe to read here.
		if w.first > 1 && s.Seq < w.first-1 {
			return fmt.Errorf("it is before the retained log (first seq %d)", w.first)
		}
		if err := tx.Bucket(bucketSnapshots).Put(u64(s.Seq), state); err != nil {
			return err
		}
		return pruneSnapshots(tx, w.first)
	}, nil)
	if err != nil {
		return fmt.Errorf("save snapshot at %d: %w", s.Seq, err)
	}
	return nil
}

// pruneSnapshots keeps, for a log whose first retained seq is first, the
// snapshot at first-1 (the base: a compacted log can only be replayed from
// it) and the newest maxSnapshots after it. Snapshots before the base are
// dropped: nothing in the log follows them. Older periodic snapshots are
// thinned rather than all dropped: one at least every sparseSnapshotEvery
// seqs stays, so the state at any point of a long log (replay --at) is a
// snapshot plus a bounded fold.
func pruneSnapshots(tx *bolt.Tx, first uint64) error {
	var base uint64 // snapshots with seq < base go
	if first > 1 {
		base = first - 1
	}
	c := tx.Bucket(bucketSnapshots).Cursor()
	// Re-seek after each delete: bbolt's Next after Delete can skip a key.
	for k, _ := c.First(); len(k) == 8 && binary.BigEndian.Uint64(k) < base; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return fmt.Errorf("drop snapshot: %w", err)
		}
	}
	// Count with a cursor: Bucket.Stats does not see this tx's own writes.
	var periodic [][]byte
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if first > 1 && len(k) == 8 && binary.BigEndian.Uint64(k) == base {
			continue
		}
		periodic = append(periodic, bytes.Clone(k))
	}
	if len(periodic) <= maxSnapshots {
		return nil
	}
	kept := base
	for _, k := range periodic[:len(periodic)-maxSnapshots] {
		if seq := binary.BigEndian.Uint64(k); len(k) == 8 && seq-kept >= sparseSnapshotEvery {
			kept = seq
			continue
		}
		if err := tx.Bucket(bucketSnapshots).Delete(k); err != nil {
			return fmt.Errorf("drop snapshot: %w", err)
		}
	}
	return nil
}

// LatestSnapshot returns the newest snapshot with Seq <= atOrBefore (ok=false if none).
// atOrBefore == 0 means no bound (like Read's to == 0): the newest snapshot.
func (l *Log) LatestSnapshot(atOrBefore uint64) (s Snapshot, ok bool, err error) {
	if atOrBefore == 0 {
		atOrBefore = math.MaxUint64
	}
	err = l.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSnapshots).Cursor()
		var k, v []byte
		if atOrBefore == math.MaxUint64 {
			k, v = c.Last()
		} else if sk, _ := c.Seek(u64(atOrBefore + 1)); sk == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		if len(k) != 8 {
			return nil
		}
		s = Snapshot{Seq: binary.BigEndian.Uint64(k), State: bytes.Clone(v)}
		ok = true
		return nil
	})
	if err != nil {
		return Snapshot{}, false, fmt.Errorf("latest snapshot at or before %d: %w", atOrBefore, err)
	}
	return s, ok, nil
}

// Snapshots lists the seqs of the stored snapshots, oldest first.
func (l *Log) Snapshots() ([]uint64, error) {
	var out []uint64
	err := l.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSnapshots).ForEach(func(k, _ []byte) error {
			if len(k) == 8 {
				out = append(out, binary.BigEndian.Uint64(k))
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	return out, nil
}
