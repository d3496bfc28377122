package eventlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Retention bounds how much history is kept.
type Retention struct {
	MaxAge   time.Duration // 0: unbounded
	MaxBytes int64         // bytes of event data; 0: unbounded
	// AgeCut, when set, finds the first seq to keep under MaxAge in place of
	// comparing recorded times with now: recorded times are wall times as
	// read, and a clock stepped forward would make recent events look old.
	// The agent measures ages on the steady clock (projector.Clock).
	AgeCut func(maxAge time.Duration) (uint64, error)
}

// RetentionCut returns the first seq to keep under r as of now (FirstSeq when nothing is to go).
// Events older than now-MaxAge go, and the oldest go until at most MaxBytes
// of event data (Stats.DataBytes) remain; the cut is the later of the two.
func (l *Log) RetentionCut(r Retention, now time.Time) (uint64, error) {
	cut := l.FirstSeq()
	if r.MaxAge > 0 {
		var c uint64
		var err error
		if r.AgeCut != nil {
			c, err = r.AgeCut(r.MaxAge)
		} else {
			c, err = l.SeqAt(now.Add(-r.MaxAge))
		}
		if err != nil {
			return 0, fmt.Errorf("retention cut: %w", err)
		}
		cut = max(cut, c)
	}
	if r.MaxBytes > 0 {
		err := l.view(func(tx *bolt.Tx) error {
			remaining := int64(dataBytes(tx))
			c := tx.Bucket(bucketEvents).Cursor()
			for k, v := c.First(); k != nil && remaining > r.MaxBytes; k, v = c.Next() {
				remaining -= int64(len(k) + len(v))
				cut = max(cut, binary.BigEndian.Uint64(k)+1)
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("retention cut: %w", err)
		}
	}
	if first := l.FirstSeq(); cut > first && first > 1 {
		usable, err := l.usableCut(first)
		if err != nil {
			return 0, fmt.Errorf("retention cut: %w", err)
		}
		if usable > cut {
			l.logger.Warn("event log has no snapshot at its first seq; retention drops the events before its oldest snapshot, which cannot be replayed",
				"path", l.path, "first", first, "policyCut", cut, "cut", usable)
			cut = usable
		}
	}
	return cut, nil
}

// usableCut returns the lowest cut whose state can be computed from the log.
// That is any cut when the snapshot at first-1 is there; a log compacted by
// an older ledgerlet may have lost it (the cut's snapshot was pruned with the
// periodic ones), and then only cuts past its oldest snapshot can be
// replayed to. Without that, retention would fail every time and the log
// would grow until the disk is full.
func (l *Log) usableCut(first uint64) (uint64, error) {
	usable := first
	err := l.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSnapshots).Cursor()
		for k, _ := c.Seek(u64(first - 1)); k != nil; k, _ = c.Next() {
			if len(k) != 8 {
				continue
			}
			if seq := binary.BigEndian.Uint64(k); seq >= first {
				usable = seq + 1
			}
			return nil // the first snapshot at or after first-1 decides
		}
		return nil
	})
	return usable, err
}

// Compact drops every event with seq < cut, after durably storing snapshot
// (which must be the state as of cut-1) so that everything after the cut stays
// replayable. Blobs no longer referenced are kept (they are small and few).
//
// The snapshot, the deletions and the new first seq are one transaction, so
// a crash leaves either the old log or the compacted one. Seqs continue from
// LastSeq; FirstSeq becomes cut. The snapshot at cut-1 is kept for as long as
// cut is the first seq, whatever other snapshots are saved: replay of the log
// starts there. A cut equal to FirstSeq only (re)stores that snapshot; a cut
// below it does nothing.
func (l *Log) Compact(ctx context.Context, cut uint64, snapshot Snapshot) error {
	if cut == 0 || snapshot.Seq != cut-1 {
		return fmt.Errorf("compact before %d: snapshot is at %d, must be at %d", cut, snapshot.Seq, cut-1)
	}
	if l.readOnly {
		return fmt.Errorf("compact before %d: %s is open read-only", cut, l.path)
	}
	w := l.w
	state := bytes.Clone(snapshot.State)
	var removed uint64
	newFirst := uint64(0)
	job := func(tx *bolt.Tx) error {
		// Runs on the writer goroutine: w's fields are safe to read here.
		removed, newFirst = 0, w.first
		if cut > w.last+1 {
			return fmt.Errorf("cut is past the last seq %d", w.last)
		}
		if cut < w.first || cut == 1 {
			return nil // nothing to drop, and no snapshot would be kept
		}
		if err := tx.Bucket(bucketSnapshots).Put(u64(snapshot.Seq), state); err != nil {
			return fmt.Errorf("put snapshot: %w", err)
		}
		if cut > w.first {
			var err error
			if removed, err = compactEvents(tx, cut); err != nil {
				return err
			}
			if err := compactTimeIndex(tx, cut, w.last); err != nil {
				return err
			}
			if err := compactPodIndex(tx, cut); err != nil {
				return err
			}
			meta := tx.Bucket(bucketMeta)
			if err := meta.Put(keyFirstSeq, u64(cut)); err != nil {
				return err
			}
			if err := meta.Put(keyDataBytes, u64(w.dataBytes-removed)); err != nil {
				return err
			}
		}
		newFirst = cut
		return pruneSnapshots(tx, cut)
	}
	onCommit := func() {
		w.first = newFirst
		w.dataBytes -= removed
		clear(w.podTails) // a pod's newest block may have been deleted
		l.publish(w.first, w.last)
	}
	if err := l.submitJob(ctx, job, onCommit); err != nil {
		return fmt.Errorf("compact before %d: %w", cut, err)
	}
	l.logger.Info("event log compacted", "path", l.path, "first", newFirst, "removedBytes", removed)
	return nil
}

// compactEvents deletes events < cut and returns the data bytes they held.
func compactEvents(tx *bolt.Tx, cut uint64) (uint64, error) {
	c := tx.Bucket(bucketEvents).Cursor()
	var removed uint64
	// Re-seek after each delete: bbolt's Next after Delete can skip a key.
	for k, v := c.First(); k != nil && binary.BigEndian.Uint64(k) < cut; k, v = c.First() {
		removed += uint64(len(k) + len(v))
		if err := c.Delete(); err != nil {
			return 0, fmt.Errorf("delete event: %w", err)
		}
	}
	return removed, nil
}

// compactTimeIndex drops entries of commits before cut. If cut falls inside
// a commit, that commit's entry is re-keyed to start at cut so SeqAt stays exact.
func compactTimeIndex(tx *bolt.Tx, cut, last uint64) error {
	b := tx.Bucket(bucketTime)
	c := b.Cursor()
	var lastTime []byte
	for k, _ := c.First(); len(k) == 16 && binary.BigEndian.Uint64(k[8:]) < cut; k, _ = c.First() {
		lastTime = bytes.Clone(k[:8])
		if err := c.Delete(); err != nil {
			return fmt.Errorf("delete time index: %w", err)
		}
	}
	if lastTime == nil || cut > last {
		return nil
	}
	if k, _ := c.First(); len(k) == 16 && binary.BigEndian.Uint64(k[8:]) == cut {
		return nil
	}
	key := binary.BigEndian.AppendUint64(lastTime, cut)
	if err := b.Put(key, nil); err != nil {
		return fmt.Errorf("put time index: %w", err)
	}
	return nil
}

// compactPodIndex drops pod index blocks whose seqs are all before cut.
// A block straddling the cut stays; readers skip seqs that are gone.
func compactPodIndex(tx *bolt.Tx, cut uint64) error {
	b := tx.Bucket(bucketPodIdx)
	var drop [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if len(k) != 12 {
			return nil
		}
		last := binary.BigEndian.Uint64(k[4:])
		if last >= cut {
			return nil
		}
		if err := forEachDelta(v, func(d uint64) bool { last += d; return last < cut }); err != nil {
			return err
		}
		if last < cut {
			drop = append(drop, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("scan pod index: %w", err)
	}
	for _, k := range drop {
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("delete pod index: %w", err)
		}
	}
	return nil
}
