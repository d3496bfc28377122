package eventlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Derived data.
//
// The pod index, the time index and the data size (meta "databytes") are
// functions of the events bucket. Writing them in every group commit would
// dirty a pod index leaf per pod, a time index leaf and the meta bucket on
// every fsync, so the writer keeps them for the newest events in memory and
// writes them out together every flushCommits commits (or flushEvents events),
// before any job (snapshot, compaction) and at Close. Meta "indexed" is the
// last seq they cover, written in the same transaction.
//
// Events after "indexed" (the unindexed tail) are durable like all others,
// only not yet indexed. Readers cover them by scanning the tail, which is
// bounded by flushEvents and costs a value-header parse per event; Open
// rebuilds the writer's pending state from it, so a crash loses nothing.
// A file without "indexed" (written before this scheme) is fully indexed.
const (
	flushCommits = 64
	flushEvents  = 4096
)

var keyIndexed = []byte("indexed")

// timeEntry is one time index entry: the first seq of a commit and its time.
type timeEntry struct {
	t     int64
	first uint64
}

// pendingIndex is the derived data of the unindexed tail, owned by the writer.
type pendingIndex struct {
	pods    map[uint32][]uint64
	times   []timeEntry
	events  int
	commits int
}

func (p *pendingIndex) reset() {
	clear(p.pods)
	p.times = p.times[:0]
	p.events, p.commits = 0, 0
}

// add records the derived data of one commit.
func (p *pendingIndex) add(pods map[uint32][]uint64, te *timeEntry, events int) {
	if p.pods == nil {
		p.pods = make(map[uint32][]uint64)
	}
	for id, seqs := range pods {
		p.pods[id] = append(p.pods[id], seqs...)
	}
	if n := len(p.times); te != nil && (n == 0 || p.times[n-1].t < te.t) {
		p.times = append(p.times, *te)
	}
	p.events += events
	p.commits++
}

// due reports whether the commit that adds events more should also flush.
func (p *pendingIndex) due(events int) bool {
	return p.commits+1 >= flushCommits || p.events+events >= flushEvents
}

// flushIndex writes the pending derived data plus that of the commit in
// progress (extraPods, extra) to tx and records that everything up to last
// is indexed. The caller resets w.pend once tx has committed.
func (w *writer) flushIndex(tx *bolt.Tx, extraPods map[uint32][]uint64, extra *timeEntry, last, dataBytes uint64) error {
	ids := make([]uint32, 0, len(w.pend.pods)+len(extraPods))
	for id := range w.pend.pods {
		ids = append(ids, id)
	}
	for id := range extraPods {
		if _, ok := w.pend.pods[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var seqs []uint64
	for _, id := range ids {
		seqs = append(append(seqs[:0], w.pend.pods[id]...), extraPods[id]...)
		if len(seqs) == 0 {
			continue
		}
		if err := w.indexPod(tx, id, seqs); err != nil {
			return err
		}
	}
	timeIdx := tx.Bucket(bucketTime)
	timeIdx.FillPercent = 1.0
	times := w.pend.times
	if extra != nil {
		times = append(times[:len(times):len(times)], *extra)
	}
	for _, te := range times {
		var tk [16]byte
		binary.BigEndian.PutUint64(tk[:8], uint64(te.t))
		binary.BigEndian.PutUint64(tk[8:], te.first)
		if err := timeIdx.Put(tk[:], nil); err != nil {
			return fmt.Errorf("put time index: %w", err)
		}
	}
	meta := tx.Bucket(bucketMeta)
	if err := meta.Put(keyDataBytes, u64(dataBytes)); err != nil {
		return fmt.Errorf("put data size: %w", err)
	}
	if err := meta.Put(keyIndexed, u64(last)); err != nil {
		return fmt.Errorf("put indexed seq: %w", err)
	}
	return nil
}

// flushOnly writes the pending derived data in a transaction of its own.
func (w *writer) flushOnly() error {
	if w.pend.events == 0 && w.pend.commits == 0 {
		return nil
	}
	err := w.update(func(tx *bolt.Tx) error {
		return w.flushIndex(tx, nil, nil, w.last, w.dataBytes)
	})
	if err != nil {
		clear(w.podTails)
		var ce *commitError
		if errors.As(err, &ce) {
			return w.fail(ce)
		}
		return err
	}
	w.pend.reset()
	return nil
}

// unindexedFrom returns the first seq not covered by the derived data in tx
// (ok=false when everything is).
func unindexedFrom(tx *bolt.Tx) (uint64, bool) {
	v := tx.Bucket(bucketMeta).Get(keyIndexed)
	if len(v) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(v) + 1, true
}

// valueHeader returns the pod id and time of a stored value without decoding
// its record. A plain-encoded value has no pod id: it is decoded, podID is 0
// and pod is its pod key.
func valueHeader(seq uint64, v []byte) (podID uint32, pod string, t int64, err error) {
	if len(v) == 0 || (v[0] != formatCompact && v[0] != formatCompactBoottime) {
		e, err := Decode(seq, v)
		if err != nil {
			return 0, "", 0, err
		}
		return 0, e.Pod, e.Time.UnixNano(), nil
	}
	id, n := binary.Uvarint(v[1:])
	if n <= 0 || id > 1<<32-1 {
		return 0, "", 0, fmt.Errorf("decode event %d: bad pod id", seq)
	}
	ut, m := binary.Uvarint(v[1+n:])
	if m <= 0 {
		return 0, "", 0, fmt.Errorf("decode event %d: bad time", seq)
	}
	return uint32(id), "", int64(ut), nil
}

// tailDataBytes is the data size of the unindexed tail in tx.
func tailDataBytes(tx *bolt.Tx) uint64 {
	from, ok := unindexedFrom(tx)
	if !ok {
		return 0
	}
	var n uint64
	c := tx.Bucket(bucketEvents).Cursor()
	for k, v := c.Seek(u64(from)); k != nil; k, v = c.Next() {
		n += uint64(len(k) + len(v))
	}
	return n
}

// dataBytes is the data size of all events in tx.
func dataBytes(tx *bolt.Tx) uint64 {
	var n uint64
	if v := tx.Bucket(bucketMeta).Get(keyDataBytes); len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	}
	return n + tailDataBytes(tx)
}

// loadTail rebuilds the writer's pending derived data from the unindexed
// tail at Open. Events whose header cannot be read are left out of the
// indexes (reads report them).
func loadTail(tx *bolt.Tx, st *loaded) {
	from, ok := unindexedFrom(tx)
	if !ok {
		return
	}
	from = max(from, st.first)
	c := tx.Bucket(bucketEvents).Cursor()
	for k, v := c.Seek(u64(from)); k != nil; k, v = c.Next() {
		if len(k) != 8 {
			continue
		}
		seq := binary.BigEndian.Uint64(k)
		st.dataBytes += uint64(len(k) + len(v))
		id, pod, t, err := valueHeader(seq, v)
		if err != nil {
			continue
		}
		if pod != "" {
			id = st.pods[pod]
		}
		if id != 0 {
			st.pend.pods[id] = append(st.pend.pods[id], seq)
		}
		if t > st.lastTime || (seq == st.first && len(st.pend.times) == 0 && st.lastTime == 0) {
			st.pend.times = append(st.pend.times, timeEntry{t: t, first: seq})
		}
		st.pend.events++
		st.lastTime = max(st.lastTime, t)
	}
	if st.pend.events > 0 {
		st.pend.commits = len(st.pend.times)
	}
}
