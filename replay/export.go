package replay

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ledgerlet/ledgerlet/eventlog"
)

// Export turns the ledger into a stream of records for other systems: the
// `events -o json` lines, and a Gap line where events the exporter had not
// yet written were compacted away. Delivery is at least once: a durable
// cursor (the last seq written) moves only after what it covers is durable
// in the sink, so a restart resumes at or before where it stopped, and a gap
// is always reported, never skipped silently.

// Gap says that events from..to were dropped by retention before they were
// exported.
type Gap struct {
	Type   string    `json:"type"` // "Gap"
	Time   time.Time `json:"time"` // when the gap was found
	From   uint64    `json:"from"`
	To     uint64    `json:"to"`
	Reason string    `json:"reason"`
}

// NewGap reports events from..to as gone.
func NewGap(from, to uint64, now time.Time) Gap {
	return Gap{Type: "Gap", Time: now.UTC(), From: from, To: to,
		Reason: fmt.Sprintf("events %d..%d were compacted by retention before they were exported", from, to)}
}

// ExportRecord is one record of an export: an event or a gap.
type ExportRecord struct {
	Event *JSONEvent
	Gap   *Gap
}

// Seq is the last seq the record covers.
func (r ExportRecord) Seq() uint64 {
	if r.Gap != nil {
		return r.Gap.To
	}
	return r.Event.Seq
}

// MarshalJSON writes the record as its one line.
func (r ExportRecord) MarshalJSON() ([]byte, error) {
	if r.Gap != nil {
		return json.Marshal(r.Gap)
	}
	return json.Marshal(r.Event)
}

// UnmarshalJSON reads a line: a Gap by its type, an event otherwise.
func (r *ExportRecord) UnmarshalJSON(b []byte) error {
	var probe struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return err
	}
	if probe.Type == "Gap" {
		r.Gap, r.Event = &Gap{}, nil
		return json.Unmarshal(b, r.Gap)
	}
	r.Event, r.Gap = &JSONEvent{}, nil
	return json.Unmarshal(b, r.Event)
}

// EmitFunc receives the records of an export in order; more says whether
// further records are ready at once (the exporter commits when none are).
type EmitFunc func(rec ExportRecord, more bool) error

// ExportLog emits the records of r from seq from on (0: the first retained,
// with no gap) up to its end as the call starts.
func ExportLog(ctx context.Context, r Reader, from uint64, now time.Time, emit EmitFunc) error {
	first, last := r.FirstSeq(), r.LastSeq()
	if from == 0 {
		from = first
	}
	if from < first {
		if err := emit(ExportRecord{Gap: ptr(NewGap(from, first-1, now))}, first <= last); err != nil {
			return err
		}
		from = first
	}
	if from > last {
		return nil
	}
	return r.Read(ctx, from, last, func(e eventlog.Event) error {
		j := ToJSON(e)
		return emit(ExportRecord{Event: &j}, e.Seq < last)
	})
}

// Follower is a log that can be followed (satisfied by *eventlog.Log).
type Follower interface {
	Reader
	Subscribe(from uint64) *eventlog.Subscription
}

// FollowLog emits the records of l from seq from on (0: the first
// retained) and then each event as it is committed, until ctx ends. When
// retention overtakes it, it reports the gap and goes on from the first
// retained event.
func FollowLog(ctx context.Context, l Follower, from uint64, emit EmitFunc) error {
	if from == 0 {
		from = l.FirstSeq()
	}
	for {
		if first := l.FirstSeq(); from < first {
			if err := emit(ExportRecord{Gap: ptr(NewGap(from, first-1, time.Now()))}, true); err != nil {
				return err
			}
			from = first
		}
		err := followFrom(ctx, l, &from, emit)
		if errors.Is(err, eventlog.ErrCompacted) {
			continue
		}
		return err
	}
}

func followFrom(ctx context.Context, l Follower, from *uint64, emit EmitFunc) error {
	sub := l.Subscribe(*from)
	defer sub.Close()
	for {
		e, err := sub.Next(ctx)
		if err != nil {
			return err
		}
		j := ToJSON(e)
		if err := emit(ExportRecord{Event: &j}, sub.Ready() > 0); err != nil {
			return err
		}
		*from = e.Seq + 1
	}
}

func ptr[T any](v T) *T { return &v }

// ExportSink receives records; Commit makes everything written so far
// durable (flushed and fsynced, or acknowledged by a collector) before the
// cursor may cover it.
type ExportSink interface {
	Write(ExportRecord) error
	Commit(ctx context.Context) error
	Close() error
}

// Exporter writes records to its sinks and moves its cursor after each commit.
type Exporter struct {
	Sinks  []ExportSink
	Cursor *Cursor // nil: no cursor
	// OnGap is told of every gap (the CLI warns on stderr).
	OnGap func(Gap)
	// CommitEvery bounds the records between commits; 0 means 1000.
	CommitEvery int

	pending int
	last    uint64
}

// Emit is the EmitFunc of the exporter.
func (x *Exporter) Emit(ctx context.Context) EmitFunc {
	return func(rec ExportRecord, more bool) error {
		if rec.Gap != nil && x.OnGap != nil {
			x.OnGap(*rec.Gap)
		}
		for _, s := range x.Sinks {
			if err := s.Write(rec); err != nil {
				return err
			}
		}
		x.pending++
		x.last = rec.Seq()
		every := x.CommitEvery
		if every <= 0 {
			every = 1000
		}
		if !more || x.pending >= every {
			return x.Commit(ctx)
		}
		return nil
	}
}

// Commit makes what was written durable in every sink, then stores the cursor.
func (x *Exporter) Commit(ctx context.Context) error {
	if x.pending == 0 {
		return nil
	}
	for _, s := range x.Sinks {
		if err := s.Commit(ctx); err != nil {
			return err
		}
	}
	if x.Cursor != nil {
		if err := x.Cursor.Store(x.last); err != nil {
			return err
		}
	}
	x.pending = 0
	return nil
}

// Cursor is a durable export position in a file: the last seq written.
type Cursor struct{ Path string }

// Load returns the stored seq, and false when there is no cursor yet.
func (c Cursor) Load() (uint64, bool, error) {
	b, err := os.ReadFile(c.Path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read cursor: %w", err)
	}
	seq, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("cursor %s: %q is not a seq", c.Path, bytes.TrimSpace(b))
	}
	return seq, true, nil
}

// Store replaces the cursor atomically and durably: a temporary file,
// fsynced, renamed over the cursor, and the directory fsynced, so a crash
// leaves the old cursor or the new one, never a torn one.
func (c Cursor) Store(seq uint64) error {
	dir := filepath.Dir(c.Path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(c.Path)+".*")
	if err != nil {
		return fmt.Errorf("store cursor: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := fmt.Fprintf(tmp, "%d\n", seq); err != nil {
		tmp.Close()
		return fmt.Errorf("store cursor: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("store cursor: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("store cursor: %w", err)
	}
	if err := os.Rename(tmp.Name(), c.Path); err != nil {
		return fmt.Errorf("store cursor: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("store cursor: sync %s: %w", dir, err)
		}
	}
	return nil
}

// LineSink writes records as JSON lines.
type LineSink struct {
	w    *bufio.Writer
	file *os.File // fsynced on commit when the lines go to a file
}

// NewLineSink writes to w (stdout, say): a commit flushes it.
func NewLineSink(w io.Writer) *LineSink { return &LineSink{w: bufio.NewWriterSize(w, 64<<10)} }

// OpenLineFile appends to the file at path, first cutting a torn last line
// left by a crash mid-write (what follows the cursor is written again).
func OpenLineFile(path string) (*LineSink, error) {
	// O_APPEND: a rotation that truncates the file (logrotate's
	// copytruncate) is followed by lines at its new end, not at a stale offset.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open export file: %w", err)
	}
	end, err := completeLines(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open export file %s: %w", path, err)
	}
	if err := f.Truncate(end); err != nil {
		f.Close()
		return nil, fmt.Errorf("open export file %s: %w", path, err)
	}
	return &LineSink{w: bufio.NewWriterSize(f, 64<<10), file: f}, nil
}

// completeLines is the length of f up to and including its last newline.
func completeLines(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	buf := make([]byte, 64<<10)
	for end := size; end > 0; {
		start := max(end-int64(len(buf)), 0)
		n, err := f.ReadAt(buf[:end-start], start)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return start + int64(i) + 1, nil
		}
		end = start
	}
	return 0, nil
}

// Write encodes the record as one line.
func (s *LineSink) Write(rec ExportRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode record %d: %w", rec.Seq(), err)
	}
	b = append(b, '\n')
	if _, err := s.w.Write(b); err != nil {
		return fmt.Errorf("write record %d: %w", rec.Seq(), err)
	}
	return nil
}

// Commit flushes, and fsyncs a file.
func (s *LineSink) Commit(context.Context) error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("flush export: %w", err)
	}
	if s.file != nil {
		if err := s.file.Sync(); err != nil {
			return fmt.Errorf("sync export file: %w", err)
		}
	}
	return nil
}

// Close flushes and closes a file.
func (s *LineSink) Close() error {
	err := s.w.Flush()
	if s.file != nil {
		if cerr := s.file.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
