package eventlog

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// parallelReadMin is the range size from which Read decodes on several
// cores: decoding dominates a replay (about 80% of it), and the caller's fold
// runs meanwhile on its own goroutine.
const parallelReadMin = 4 * readChunk

// rawChunk is a run of stored values copied out of a read transaction,
// decoded by a worker, and handed to the caller in seq order.
type rawChunk struct {
	seqs  []uint64
	vals  [][]byte
	arena []byte
	evs   []Event
	err   error
	done  chan struct{}
}

// readParallel is Read for long ranges: one goroutine copies raw values out
// of short read transactions, workers decode chunks concurrently, and the
// caller's goroutine calls fn in order. Every goroutine has ended when it
// returns.
func (l *Log) readParallel(ctx context.Context, from, to uint64, fn func(Event) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := max(1, runtime.GOMAXPROCS(0))
	ordered := make(chan *rawChunk, 2*workers)
	work := make(chan *rawChunk, 2*workers)
	var wg sync.WaitGroup
	var readErr error
	// Chunks are recycled once their events are handed over: decoding copies
	// what it keeps out of the raw values, so the buffers can be reused.
	free := make(chan *rawChunk, 4*workers)
	get := func() *rawChunk {
		select {
		case ch := <-free:
			ch.seqs, ch.vals, ch.arena, ch.evs, ch.err = ch.seqs[:0], ch.vals[:0], ch.arena[:0], ch.evs[:0], nil
			ch.done = make(chan struct{})
			return ch
		default:
			return &rawChunk{seqs: make([]uint64, 0, readChunk), vals: make([][]byte, 0, readChunk), done: make(chan struct{})}
		}
	}

	wg.Add(1)
	go func() { // reader
		defer wg.Done()
		defer close(ordered)
		defer close(work)
		for from <= to {
			ch := get()
			err := l.view(func(tx *bolt.Tx) error {
				var err error
				from, err = copyRange(tx, from, to, ch)
				return err
			})
			if err != nil {
				readErr = fmt.Errorf("read events %d..%d: %w", from, to, err)
				return
			}
			if len(ch.seqs) == 0 {
				return
			}
			select {
			case work <- ch:
			case <-ctx.Done():
				return
			}
			select {
			case ordered <- ch:
			case <-ctx.Done():
				return
			}
		}
	}()
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() { // decoder
			defer wg.Done()
			var scratch []byte
			for ch := range work {
				if cap(ch.evs) < len(ch.seqs) {
					ch.evs = make([]Event, 0, len(ch.seqs))
				}
				for i, seq := range ch.seqs {
					e, err := decodeValue(seq, ch.vals[i], l.podName, &scratch)
					if err != nil {
						ch.err = err
						break
					}
					ch.evs = append(ch.evs, e)
				}
				close(ch.done)
			}
		}()
	}

	err := func() error {
		for ch := range ordered {
			if err := ctx.Err(); err != nil {
				return err
			}
			select {
			case <-ch.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			if ch.err != nil {
				return ch.err
			}
			for _, e := range ch.evs {
				if err := fn(e); err != nil {
					return err
				}
			}
			clear(ch.evs) // drop references to payloads the caller may not keep
			select {
			case free <- ch:
			default:
			}
		}
		return nil
	}()
	cancel()
	// Let the reader and decoders finish what they hold, then wait for them.
	go func() {
		for range ordered {
		}
	}()
	wg.Wait()
	if err != nil {
		return err
	}
	return readErr
}

// copyRange copies up to readChunk stored values from..to out of tx (bbolt's
// memory is valid only inside it) and returns the seq to continue at.
func copyRange(tx *bolt.Tx, from, to uint64, ch *rawChunk) (uint64, error) {
	c := tx.Bucket(bucketEvents).Cursor()
	var key [8]byte
	binary.BigEndian.PutUint64(key[:], from)
	next := from
	size := 0
	for k, v := c.Seek(key[:]); k != nil && len(ch.seqs) < readChunk; k, v = c.Next() {
		seq := binary.BigEndian.Uint64(k)
		if seq > to {
			break
		}
		ch.seqs = append(ch.seqs, seq)
		ch.vals = append(ch.vals, v)
		size += len(v)
		next = seq + 1
	}
	// One arena per chunk: the values must outlive the transaction.
	if cap(ch.arena) < size {
		ch.arena = make([]byte, 0, size)
	}
	arena := ch.arena[:0]
	for i, v := range ch.vals {
		arena = append(arena, v...)
		ch.vals[i] = arena[len(arena)-len(v):]
	}
	ch.arena = arena
	return next, nil
}
