package eventlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// readChunk is how many events one read transaction decodes. Callbacks run
// outside transactions, so a slow or re-entrant fn (one that appends, say)
// never holds a read tx open and never blocks the writer.
const readChunk = 1024

// Read calls fn for each event with from <= seq <= to in order (to == 0: up to the end).
// "The end" is LastSeq when Read starts. Events before FirstSeq are gone and skipped.
func (l *Log) Read(ctx context.Context, from, to uint64, fn func(Event) error) error {
	if to == 0 {
		to = l.LastSeq()
	}
	if to >= from && to-from+1 >= parallelReadMin {
		return l.readParallel(ctx, from, to, fn)
	}
	buf := make([]Event, 0, readChunk)
	for from <= to {
		if err := checkCtx(ctx); err != nil {
			return err
		}
		var next uint64
		buf = buf[:0]
		err := l.view(func(tx *bolt.Tx) error {
			var err error
			buf, next, err = l.readRange(tx, from, to, buf)
			return err
		})
		if err != nil {
			return fmt.Errorf("read events %d..%d: %w", from, to, err)
		}
		for _, e := range buf {
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(buf) == 0 {
			return nil
		}
		from = next
	}
	return nil
}

// readRange decodes up to cap(buf) events from..to and returns the seq to
// continue at.
func (l *Log) readRange(tx *bolt.Tx, from, to uint64, buf []Event) ([]Event, uint64, error) {
	c := tx.Bucket(bucketEvents).Cursor()
	var key [8]byte
	binary.BigEndian.PutUint64(key[:], from)
	next := from
	var scratch []byte
	for k, v := c.Seek(key[:]); k != nil && len(buf) < cap(buf); k, v = c.Next() {
		seq := binary.BigEndian.Uint64(k)
		if seq > to {
			break
		}
		e, err := decodeValue(seq, v, l.podName, &scratch)
		if err != nil {
			return buf, next, err
		}
		buf = append(buf, e)
		next = seq + 1
	}
	return buf, next, nil
}

// ReadPod is Read restricted to events whose Pod is pod.
func (l *Log) ReadPod(ctx context.Context, pod string, from, to uint64, fn func(Event) error) error {
	if to == 0 {
		to = l.LastSeq()
	}
	buf := make([]Event, 0, readChunk)
	for from <= to {
		if err := checkCtx(ctx); err != nil {
			return err
		}
		var next uint64
		buf = buf[:0]
		err := l.view(func(tx *bolt.Tx) error {
			var err error
			buf, next, err = l.readPodRange(tx, pod, from, to, buf)
			return err
		})
		if err != nil {
			return fmt.Errorf("read events of %s %d..%d: %w", pod, from, to, err)
		}
		for _, e := range buf {
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(buf) == 0 {
			return nil
		}
		from = next
	}
	return nil
}

func (l *Log) readPodRange(tx *bolt.Tx, pod string, from, to uint64, buf []Event) ([]Event, uint64, error) {
	idv := tx.Bucket(bucketPods).Get([]byte(pod))
	if len(idv) != 4 {
		return buf, from, nil // never seen: no events
	}
	events := tx.Bucket(bucketEvents)
	c := tx.Bucket(bucketPodIdx).Cursor()
	var seek [12]byte
	copy(seek[:4], idv)
	binary.BigEndian.PutUint64(seek[4:], from)
	// The block holding from starts at or before it.
	k, v := c.Seek(seek[:])
	if k == nil || !bytes.Equal(k, seek[:]) {
		var pk, pv []byte
		if k == nil {
			pk, pv = c.Last()
		} else {
			pk, pv = c.Prev()
		}
		if pk != nil && bytes.HasPrefix(pk, idv) {
			k, v = pk, pv
		} else {
			k, v = c.Seek(seek[:])
		}
	}
	next := from
	var scratch []byte
	var evKey [8]byte
	var derr error
	done := false
	visit := func(seq uint64) bool {
		if seq > to || len(buf) == cap(buf) {
			done = true
			return false
		}
		if seq < from {
			return true
		}
		binary.BigEndian.PutUint64(evKey[:], seq)
		ev := events.Get(evKey[:])
		if ev == nil {
			return true // compacted away
		}
		e, err := decodeValue(seq, ev, l.podName, &scratch)
		if err != nil {
			derr = err
			return false
		}
		buf = append(buf, e)
		next = seq + 1
		return true
	}
	for ; k != nil && bytes.HasPrefix(k, idv) && len(k) == 12; k, v = c.Next() {
		seq := binary.BigEndian.Uint64(k[4:])
		if !visit(seq) {
			break
		}
		if err := forEachDelta(v, func(d uint64) bool { seq += d; return visit(seq) }); err != nil {
			return buf, next, err
		}
		if done || derr != nil {
			break
		}
	}
	if derr != nil {
		return buf, next, derr
	}
	if done {
		return buf, next, nil
	}
	// The unindexed tail (see derived.go): scan it for the pod's events.
	tailFrom, ok := unindexedFrom(tx)
	if !ok {
		return buf, next, nil
	}
	id := binary.BigEndian.Uint32(idv)
	binary.BigEndian.PutUint64(evKey[:], max(from, tailFrom))
	ec := events.Cursor()
	for k, v := ec.Seek(evKey[:]); k != nil; k, v = ec.Next() {
		seq := binary.BigEndian.Uint64(k)
		if seq > to || len(buf) == cap(buf) {
			break
		}
		podID, name, _, err := valueHeader(seq, v)
		if err != nil {
			return buf, next, err
		}
		if podID != id && (name == "" || name != pod) {
			continue
		}
		e, err := decodeValue(seq, v, l.podName, &scratch)
		if err != nil {
			return buf, next, err
		}
		buf = append(buf, e)
		next = seq + 1
	}
	return buf, next, nil
}

// SeqAt returns the first seq whose time is >= t (LastSeq+1 when none is).
//
// All events of one commit share its time, and the time index has an entry
// for each commit whose time passes every earlier one, so the answer is the
// first seq of the first commit at or after t. (After the clock stepped back,
// later events may again be earlier than t: seq is the order, and the state
// "at t" is the state before the first event stamped t or later.)
func (l *Log) SeqAt(t time.Time) (uint64, error) {
	var seq uint64
	err := l.view(func(tx *bolt.Tx) error {
		first := binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keyFirstSeq))
		seq = first
		if k, _ := tx.Bucket(bucketEvents).Cursor().Last(); k != nil {
			seq = binary.BigEndian.Uint64(k) + 1
		}
		want := max(t.UnixNano(), 0)
		var key [16]byte
		binary.BigEndian.PutUint64(key[:8], uint64(want))
		if k, _ := tx.Bucket(bucketTime).Cursor().Seek(key[:]); len(k) == 16 {
			seq = max(binary.BigEndian.Uint64(k[8:]), first)
			return nil
		}
		// Not among the indexed commits: look in the unindexed tail.
		tailFrom, ok := unindexedFrom(tx)
		if !ok {
			return nil
		}
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.Seek(u64(max(tailFrom, first))); k != nil; k, v = c.Next() {
			s := binary.BigEndian.Uint64(k)
			_, _, et, err := valueHeader(s, v)
			if err != nil {
				return err
			}
			if et >= want {
				seq = s
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("seq at %s: %w", t.Format(time.RFC3339Nano), err)
	}
	return seq, nil
}

// Blob returns the blob stored under its sha256 hex hash.
func (l *Log) Blob(hash string) ([]byte, error) {
	var out []byte
	err := l.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketBlobs).Get([]byte(hash))
		if v == nil {
			return ErrNotFound
		}
		out = bytes.Clone(v)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", hash, err)
	}
	return out, nil
}
