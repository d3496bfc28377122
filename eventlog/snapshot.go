package eventlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"
)

// SaveSnapshot durably stores state as of seq; older snapshots beyond the few
// newest are dropped.
func (l *Log) SaveSnapshot(ctx context.Context, s Snapshot) error {
	if last := l.LastSeq(); s.Seq > last {
		return fmt.Errorf("save snapshot at %d: beyond last seq %d", s.Seq, last)
	}
	state := bytes.Clone(s.State) // the caller may reuse its buffer once we return
	err := l.submitJob(ctx, func(tx *bolt.Tx) error {
		return putSnapshot(tx, Snapshot{Seq: s.Seq, State: state})
	}, nil)
	if err != nil {
		return fmt.Errorf("save snapshot at %d: %w", s.Seq, err)
	}
	return nil
}

// putSnapshot stores s and keeps only the newest maxSnapshots.
func putSnapshot(tx *bolt.Tx, s Snapshot) error {
	b := tx.Bucket(bucketSnapshots)
	if err := b.Put(u64(s.Seq), s.State); err != nil {
		return err
	}
	// Count with a cursor: Bucket.Stats does not see this tx's own writes.
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	// Re-seek after each delete: bbolt's Next after Delete can skip a key.
	for k, _ := c.First(); k != nil && n > maxSnapshots; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
		n--
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
