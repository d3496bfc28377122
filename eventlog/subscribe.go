package eventlog

import (
	"context"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// subChunk is how many events a subscription reads per transaction.
const subChunk = 256

// Subscribe returns a subscription that yields every event from seq from on:
// first the stored ones, then new ones as they commit, with no gap and no duplicate.
// from == 0 means from FirstSeq. If events the subscription still has to
// yield are compacted away, Next returns an error wrapping ErrCompacted.
//
// There is no separate live feed: a subscription always reads the next seqs
// from the file and, when it has caught up, waits for the writer's next
// commit. Catch-up and tail are the same code, so the switch between them
// cannot lose or repeat an event.
func (l *Log) Subscribe(from uint64) *Subscription {
	if from == 0 {
		from = l.FirstSeq()
	}
	return &Subscription{l: l, next: from, done: make(chan struct{})}
}

// Subscription is a cursor that follows the log.
// Next must not be called concurrently; Close may be called from any goroutine.
type Subscription struct {
	l    *Log
	next uint64
	buf  []Event
	pos  int
	done chan struct{}
	once sync.Once
}

// Next blocks until the next event is committed, ctx is done, or the log closes.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	for {
		select {
		case <-s.done:
			return Event{}, ErrClosed
		case <-s.l.closed:
			return Event{}, ErrClosed
		default:
		}
		if s.pos < len(s.buf) {
			e := s.buf[s.pos]
			s.buf[s.pos] = Event{} // do not pin payloads already handed out
			s.pos++
			s.next = e.Seq + 1
			return e, nil
		}
		last, committed := s.l.published()
		if s.next <= last {
			if err := s.fill(last); err != nil {
				return Event{}, err
			}
			continue
		}
		select {
		case <-committed:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		case <-s.done:
			return Event{}, ErrClosed
		case <-s.l.closed:
			return Event{}, ErrClosed
		}
	}
}

// Ready is how many events Next will return without waiting: read from
// commits already made. A follower folding them all before acting never
// acts between two events of one append (a manifest moved from one file to
// another is one removal and one addition).
func (s *Subscription) Ready() int { return len(s.buf) - s.pos }

// fill reads the next chunk of committed events (up to last) into buf.
func (s *Subscription) fill(last uint64) error {
	if s.buf == nil {
		s.buf = make([]Event, 0, subChunk)
	}
	s.buf, s.pos = s.buf[:0], 0
	err := s.l.view(func(tx *bolt.Tx) error {
		var err error
		s.buf, _, err = s.l.readRange(tx, s.next, last, s.buf)
		return err
	})
	if err != nil {
		return fmt.Errorf("subscription at %d: %w", s.next, err)
	}
	if len(s.buf) == 0 || s.buf[0].Seq != s.next {
		s.buf = s.buf[:0]
		return fmt.Errorf("subscription at %d: first retained is %d: %w", s.next, s.l.FirstSeq(), ErrCompacted)
	}
	return nil
}

// Close releases the subscription.
func (s *Subscription) Close() {
	s.once.Do(func() { close(s.done) })
}
