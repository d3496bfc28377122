package eventlog

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Append assigns seqs and times to evs and returns their seqs once the batch
// holding them is committed and fsynced. Concurrent callers share commits.
//
// On success evs[i].Seq, .Time and .Boottime are set in the caller's slice. All
// events of one call get consecutive seqs. If ctx ends first, Append returns
// ctx.Err() without waiting, but the events may still be committed: once
// queued they cannot be withdrawn.
func (l *Log) Append(ctx context.Context, evs ...Event) ([]uint64, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	if l.readOnly {
		return nil, fmt.Errorf("append %d events: %s is open read-only", len(evs), l.path)
	}
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	// Encoding and hashing happen here, on the callers' goroutines, so the
	// single writer only copies bytes.
	req := &request{recs: make([]pendingEvent, len(evs)), done: make(chan struct{})}
	for i := range evs {
		p, err := prepare(evs[i])
		if err != nil {
			return nil, fmt.Errorf("append %d events: event %d (%s): %w", len(evs), i, evs[i].Type(), err)
		}
		req.recs[i] = p
	}
	if err := l.w.enqueue(req); err != nil {
		return nil, fmt.Errorf("append %d events: %w", len(evs), err)
	}
	select {
	case <-req.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if req.err != nil {
		return nil, fmt.Errorf("append %d events: %w", len(evs), req.err)
	}
	seqs := make([]uint64, len(evs))
	t := time.Unix(0, req.time).UTC()
	for i := range evs {
		seqs[i] = req.first + uint64(i)
		evs[i].Seq = seqs[i]
		evs[i].Time = t
		evs[i].Boottime = req.boottime
	}
	return seqs, nil
}

// pendingEvent is an event encoded without its pod and time (which the
// writer adds, see codec.go) and already hex-packed.
type pendingEvent struct {
	packed []byte
	pod    string
	blobs  [][]byte
	hashes []string
}

func prepare(ev Event) (pendingEvent, error) {
	rec, err := encodePayload(ev)
	if err != nil {
		return pendingEvent{}, err
	}
	p := pendingEvent{packed: hexpack(make([]byte, 0, len(rec)), rec), pod: ev.Pod, blobs: ev.Blobs}
	if len(ev.Blobs) > 0 {
		p.hashes = make([]string, len(ev.Blobs))
		for i, b := range ev.Blobs {
			sum := sha256.Sum256(b)
			p.hashes[i] = hex.EncodeToString(sum[:])
		}
	}
	return p, nil
}

// encodePayload returns Encode(ev) with ev.Pod and ev.Time cleared: a
// Record holding only the payload field, i.e. that field's tag, length and
// the payload's deterministic encoding. Building those bytes directly skips
// the reflective oneof assignment of toRecord, the costliest part of Encode.
func encodePayload(ev Event) ([]byte, error) {
	if ev.Data == nil {
		return nil, fmt.Errorf("encode event: no payload")
	}
	name := ev.Data.ProtoReflect().Descriptor().FullName()
	fd, ok := payloadFields[name]
	if !ok {
		return nil, fmt.Errorf("encode event: %s is not an event payload", name)
	}
	opts := proto.MarshalOptions{Deterministic: true}
	n := opts.Size(ev.Data)
	b := protowire.AppendTag(make([]byte, 0, n+8), fd.Number(), protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	opts.UseCachedSize = true
	return opts.MarshalAppend(b, ev.Data)
}

// request is one unit of work for the writer: a batch of events from one
// Append call, or a job (snapshot, compaction) that runs in its own tx.
type request struct {
	recs []pendingEvent

	job      func(tx *bolt.Tx) error
	onCommit func() // runs on the writer after job's tx committed

	// results, valid after done is closed
	first    uint64
	time     int64
	boottime int64
	err      error
	done     chan struct{}
}

// writer is the single goroutine that owns write transactions. Appends queue
// up while a commit (and its fsync) is in flight and the next commit takes
// all of them: group commit.
type writer struct {
	l *Log

	mu       sync.Mutex
	queue    []*request
	queued   int // events in queue
	stopping bool
	wake     chan struct{} // cap 1: something was queued or stop was asked
	exited   chan struct{}

	// Owned by the writer goroutine.
	first, last uint64
	lastTime    int64
	dataBytes   uint64
	pods        map[string]uint32
	podTails    map[uint32]podTail
	pend        pendingIndex // derived data not yet written (derived.go)
	zero        zeroer       // file space written ahead (prealloc.go)
	batch       []*request

	// Adaptive group commit (see gather).
	concurrency int           // callers seen per commit cycle recently
	lastCommit  time.Duration // how long the last commit took
	timer       *time.Timer
}

// maxLinger bounds how long the writer waits for more appends before a
// commit; lingerFraction of the last commit's duration is used when smaller.
const (
	maxLinger      = 500 * time.Microsecond
	lingerFraction = 2
)

func newWriter(l *Log, st loaded) *writer {
	w := &writer{
		l:         l,
		exited:    make(chan struct{}),
		first:     st.first,
		last:      st.last,
		lastTime:  st.lastTime,
		dataBytes: st.dataBytes,
		pods:      st.pods,
		podTails:  make(map[uint32]podTail),
		pend:      st.pend,
	}
	w.wake = make(chan struct{}, 1)
	return w
}

func (w *writer) enqueue(r *request) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.l.Err(); err != nil {
		return err
	}
	if w.stopping {
		return ErrClosed
	}
	w.queue = append(w.queue, r)
	w.queued += len(r.recs)
	w.signal()
	return nil
}

func (w *writer) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// stop lets the writer commit everything queued, then waits for it to exit.
func (w *writer) stop() {
	w.mu.Lock()
	w.stopping = true
	w.mu.Unlock()
	w.signal()
	<-w.exited
}

// fail makes the log refuse every further write after a commit error and
// fails everything queued. A failed commit may still be visible in the file
// (bbolt can have written the meta page whose fsync failed), so the writer's
// idea of the next seq, pod id and index state can no longer be trusted; only
// a reopen, which reads the file as it is, can. It returns the error every
// writer call reports from now on.
func (w *writer) fail(cause error) error {
	w.mu.Lock()
	sticky := w.l.markFailed(cause)
	queued := w.queue
	w.queue, w.queued = nil, 0
	w.mu.Unlock()
	w.l.logger.Error("event log commit failed; refusing all further appends until reopened", "path", w.l.path, "err", cause)
	for _, r := range queued {
		r.err = sticky
		close(r.done)
	}
	return sticky
}

// state reports the queue length (requests, events) and whether stop was asked.
func (w *writer) state() (reqs, events int, stopping bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue), w.queued, w.stopping
}

func (w *writer) run() {
	defer close(w.exited)
	defer w.zero.close()
	w.timer = time.NewTimer(time.Hour)
	w.timer.Stop()
	for {
		reqs, _, stopping := w.state()
		if reqs == 0 {
			if stopping {
				if w.l.Err() != nil {
					return // nothing more may be written
				}
				// Write the derived data out so the next Open has no tail
				// to scan; if this fails, Open rebuilds it anyway.
				if err := w.flushOnly(); err != nil {
					w.l.logger.Error("event log index flush failed", "path", w.l.path, "err", err)
				}
				return
			}
			<-w.wake
			continue
		}
		w.gather()

		w.mu.Lock()
		w.batch = w.take(w.batch[:0])
		waiting := len(w.queue)
		w.mu.Unlock()

		start := time.Now()
		if w.batch[0].job != nil {
			w.runJob(w.batch[0])
		} else {
			w.commitEvents(w.batch)
			if w.l.Err() == nil {
				w.zeroAhead()
			}
			// Callers of this batch plus those who queued meanwhile are
			// how many will want the next commit.
			w.concurrency = len(w.batch) + waiting
		}
		w.lastCommit = time.Since(start)
		clear(w.batch) // do not pin finished requests
	}
}

// gather waits briefly for appenders released by the last commit to come
// back before starting the next one. With N concurrent appenders and no
// waiting, commits alternate between two halves of them (those released
// queue up while the other half commits), so each fsync carries N/2 events;
// waiting a fraction of a commit's duration lets it carry N. A lone
// sequential appender never waits: one queued request already meets its
// concurrency of 1.
func (w *writer) gather() {
	linger := min(maxLinger, w.lastCommit/lingerFraction)
	if w.concurrency <= 1 || linger <= 0 {
		return
	}
	w.timer.Reset(linger)
	defer w.timer.Stop()
	for {
		reqs, events, stopping := w.state()
		if reqs >= w.concurrency || events >= w.l.maxBatch || stopping {
			return
		}
		select {
		case <-w.wake:
		case <-w.timer.C:
			// Fewer callers came back: adapt so the next cycle does not wait.
			w.concurrency = reqs
			return
		}
	}
}

// take moves the next unit of work from the queue: either one job or as many
// event requests as fit in maxBatch (always at least one). Called with mu held.
func (w *writer) take(dst []*request) []*request {
	if w.queue[0].job != nil {
		dst = append(dst, w.queue[0])
	} else {
		n := 0
		for _, r := range w.queue {
			if r.job != nil || (len(dst) > 0 && n+len(r.recs) > w.l.maxBatch) {
				break
			}
			dst = append(dst, r)
			n += len(r.recs)
		}
	}
	for _, r := range dst {
		w.queued -= len(r.recs)
	}
	rest := copy(w.queue, w.queue[len(dst):])
	clear(w.queue[rest:])
	w.queue = w.queue[:rest]
	return dst
}

func (w *writer) runJob(r *request) {
	// Jobs see complete derived data (compaction edits the indexes).
	flushed := false
	err := w.update(func(tx *bolt.Tx) error {
		if w.pend.events > 0 || w.pend.commits > 0 {
			if err := w.flushIndex(tx, nil, nil, w.last, w.dataBytes); err != nil {
				return err
			}
			flushed = true
		}
		return r.job(tx)
	})
	var ce *commitError
	if errors.As(err, &ce) {
		err = w.fail(ce)
	}
	r.err = err
	if err == nil && flushed {
		w.pend.reset()
	}
	if err == nil && r.onCommit != nil {
		r.onCommit()
	}
	if err != nil {
		// A failed job may have left writer caches ahead of the file.
		clear(w.podTails)
	}
	close(r.done)
}

// commitEvents writes the events of batch in one transaction and, once it is
// committed and synced, wakes the callers and the subscribers.
func (w *writer) commitEvents(batch []*request) {
	now, boot := time.Now, Boottime
	if w.l.clock != nil {
		// A history written with its own wall times has no boottime of
		// its own: durations between its events come from those times.
		now, boot = w.l.clock, func() int64 { return 0 }
	}
	if w.l.boottime != nil {
		boot = w.l.boottime
	}
	// The wall time as read, not raised to the last one: after a clock
	// stepped back, records say when things happened (seq is the order)
	// rather than freezing at the future time until the clock catches up.
	t, bt := now().UnixNano(), boot()
	var newPods []string
	err := w.writeBatch(batch, t, bt, &newPods)
	if err != nil {
		var ce *commitError
		if errors.As(err, &ce) {
			// The transaction may be visible: its pod ids stay taken.
			err = w.fail(ce)
		} else {
			// Rolled back before anything was written: undo the pod ids
			// this batch assigned.
			for _, name := range newPods {
				delete(w.pods, name)
			}
			if len(newPods) > 0 {
				w.l.truncPodNames(len(w.pods))
			}
			w.l.logger.Error("event log batch failed before its commit", "path", w.l.path, "err", err)
		}
		clear(w.podTails)
		for _, r := range batch {
			r.err = err
			close(r.done)
		}
		return
	}
	w.lastTime = max(w.lastTime, t)
	w.l.publish(w.first, w.last)
	for _, r := range batch {
		r.time, r.boottime = t, bt
		close(r.done)
	}
}

func (w *writer) writeBatch(batch []*request, t, boottime int64, newPods *[]string) (err error) {
	tx, err := w.l.db.Begin(true)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	events := tx.Bucket(bucketEvents)
	events.FillPercent = 1.0 // keys only ever grow: pack pages full
	blobs := tx.Bucket(bucketBlobs)

	size, n := 0, 0
	for _, r := range batch {
		for _, p := range r.recs {
			size += 8 + 1 + 5 + binary.MaxVarintLen64 + len(p.packed)
		}
		n += len(r.recs)
	}
	// bbolt keeps references to keys and values until commit, so each gets
	// its own bytes; one arena per batch avoids an allocation per event.
	arena := make([]byte, 0, size)
	firstSeq := w.last + 1
	seq := w.last
	dataBytes := w.dataBytes
	podSeqs := make(map[uint32][]uint64)

	for _, r := range batch {
		r.first = seq + 1
		for _, p := range r.recs {
			seq++
			var podID uint32
			if p.pod != "" {
				var err error
				if podID, err = w.podID(tx, p.pod, newPods); err != nil {
					return err
				}
				podSeqs[podID] = append(podSeqs[podID], seq)
			}
			start := len(arena)
			arena = binary.BigEndian.AppendUint64(arena, seq)
			key := arena[start:len(arena):len(arena)]
			start = len(arena)
			arena = encodeValue(arena, podID, t, boottime, p.packed)
			val := arena[start:len(arena):len(arena)]
			if err := events.Put(key, val); err != nil {
				return fmt.Errorf("put event %d: %w", seq, err)
			}
			dataBytes += uint64(len(key) + len(val))
			for i, b := range p.blobs {
				hk := []byte(p.hashes[i])
				if blobs.Get(hk) != nil {
					continue
				}
				if err := blobs.Put(hk, b); err != nil {
					return fmt.Errorf("put blob %s: %w", p.hashes[i], err)
				}
			}
		}
	}
	// The pod and time indexes and the data size are written only every
	// so often (see derived.go); most commits touch the events bucket only.
	// The time index has an entry where the time passes every earlier one
	// (SeqAt: the first seq at or after a time); a commit stamped at or
	// before an earlier time, after the clock stepped back, adds none.
	var te *timeEntry
	if t > w.lastTime || w.last == 0 {
		te = &timeEntry{t: t, first: firstSeq}
	}
	flush := w.pend.due(n)
	if flush {
		if err := w.flushIndex(tx, podSeqs, te, seq, dataBytes); err != nil {
			return err
		}
	}
	if err := w.commitTx(tx); err != nil {
		return err
	}
	w.last = seq
	w.dataBytes = dataBytes
	if flush {
		w.pend.reset()
	} else {
		w.pend.add(podSeqs, te, n)
	}
	return nil
}

// update runs fn in a write transaction and commits it with commitTx.
func (w *writer) update(fn func(tx *bolt.Tx) error) (err error) {
	tx, err := w.l.db.Begin(true)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // a no-op once Commit was called
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	return w.commitTx(tx)
}

// commitError is a failed Commit: unlike an error before it, the
// transaction may have reached the file.
type commitError struct{ err error }

func (e *commitError) Error() string { return "commit: " + e.err.Error() }
func (e *commitError) Unwrap() error { return e.err }

// commitTx commits tx: the writer's only way to commit. A failure is a
// *commitError.
func (w *writer) commitTx(tx *bolt.Tx) error {
	if err := tx.Commit(); err != nil {
		return &commitError{err}
	}
	if f := w.l.commitFault.Load(); f != nil && *f != nil {
		if err := (*f)(); err != nil {
			return &commitError{err}
		}
	}
	return nil
}

// podID returns the compact id of a pod key, assigning the next one on first use.
func (w *writer) podID(tx *bolt.Tx, pod string, newPods *[]string) (uint32, error) {
	if id, ok := w.pods[pod]; ok {
		return id, nil
	}
	id := uint32(len(w.pods) + 1)
	if err := tx.Bucket(bucketPods).Put([]byte(pod), binary.BigEndian.AppendUint32(nil, id)); err != nil {
		return 0, fmt.Errorf("put pod %q: %w", pod, err)
	}
	w.pods[pod] = id
	*newPods = append(*newPods, pod)
	// Readers resolve ids through l.names. Publish before the commit: no
	// reader can see an event with this id before then, and a failed commit
	// leaves only an unused name behind (rolled back in commitEvents).
	w.l.addPodName(pod, id)
	return id, nil
}

// The pod index holds, per pod, blocks keyed by podID(4)+firstSeq(8) whose
// value is the uvarint deltas of the pod's following seqs. Appending to a
// pod's newest block costs 1-3 bytes per event instead of a 12-byte key and
// a 16-byte bbolt element per event.
const podBlockMax = 256

type podTail struct {
	start, last uint64
	size        int
}

func (w *writer) indexPod(tx *bolt.Tx, id uint32, seqs []uint64) error {
	idx := tx.Bucket(bucketPodIdx)
	tail, ok := w.podTails[id]
	if !ok {
		var err error
		if tail, ok, err = loadPodTail(idx, id); err != nil {
			return err
		}
	}
	var key [12]byte
	binary.BigEndian.PutUint32(key[:4], id)
	var val []byte
	if ok && tail.size < podBlockMax {
		binary.BigEndian.PutUint64(key[4:], tail.start)
		old := idx.Get(key[:])
		val = append(make([]byte, 0, len(old)+len(seqs)*3), old...)
	} else {
		binary.BigEndian.PutUint64(key[4:], seqs[0])
		tail = podTail{start: seqs[0], last: seqs[0]}
		seqs = seqs[1:]
	}
	for _, s := range seqs {
		val = binary.AppendUvarint(val, s-tail.last)
		tail.last = s
	}
	tail.size = len(val)
	if err := idx.Put(key[:], val); err != nil {
		return fmt.Errorf("put pod index: %w", err)
	}
	w.podTails[id] = tail
	return nil
}

// loadPodTail finds the newest index block of pod id.
func loadPodTail(idx *bolt.Bucket, id uint32) (podTail, bool, error) {
	var seek [12]byte
	binary.BigEndian.PutUint32(seek[:4], id+1)
	c := idx.Cursor()
	var k, v []byte
	if sk, _ := c.Seek(seek[:]); sk == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	if len(k) != 12 || binary.BigEndian.Uint32(k) != id {
		return podTail{}, false, nil
	}
	start := binary.BigEndian.Uint64(k[4:])
	tail := podTail{start: start, last: start, size: len(v)}
	err := forEachDelta(v, func(d uint64) bool { tail.last += d; return true })
	return tail, true, err
}

// forEachDelta decodes a pod index block value.
func forEachDelta(v []byte, fn func(d uint64) bool) error {
	for len(v) > 0 {
		d, n := binary.Uvarint(v)
		if n <= 0 || d == 0 {
			return errors.New("corrupt pod index block")
		}
		if !fn(d) {
			return nil
		}
		v = v[n:]
	}
	return nil
}

// submitJob runs job in its own write transaction on the writer and waits
// for it to commit.
func (l *Log) submitJob(ctx context.Context, job func(tx *bolt.Tx) error, onCommit func()) error {
	if l.readOnly {
		return fmt.Errorf("%s is open read-only", l.path)
	}
	if err := checkCtx(ctx); err != nil {
		return err
	}
	r := &request{job: job, onCommit: onCommit, done: make(chan struct{})}
	if err := l.w.enqueue(r); err != nil {
		return err
	}
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}
