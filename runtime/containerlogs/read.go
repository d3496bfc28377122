package containerlogs

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"
)

// ReadOptions say how Copy prints a container instance's log.
type ReadOptions struct {
	// Tail prints only the last Tail messages of what is there; < 0: all.
	Tail int
	// Timestamps prefixes each message with its RFC3339Nano time.
	Timestamps bool
	// Follow keeps printing what is written, across rotations, until ctx
	// ends or Running says the instance ended.
	Follow bool
	// Running is asked, while following and idle, whether the instance may
	// still write; nil: until ctx ends.
	Running func(ctx context.Context) bool
	// Poll is how often a followed log is checked for more; default 200ms.
	Poll time.Duration
	// Warn receives each line that is not a CRI log line (it is skipped),
	// with its file and line number; nil: ignored.
	Warn func(file string, line int, err error)
}

// Copy writes the messages of the instance whose live log is live, as
// `kubectl logs` shows them: the CRI prefix stripped, partial lines joined,
// rotated files first, oldest first.
func Copy(ctx context.Context, w io.Writer, live string, opt ReadOptions) error {
	if opt.Poll <= 0 {
		opt.Poll = 200 * time.Millisecond
	}
	out := &printer{w: bufio.NewWriter(w), timestamps: opt.Timestamps, tail: opt.Tail}
	d := &decoder{emit: out.message, warn: opt.Warn}

	// The live file first: a rotation after this makes it the newest
	// rotated file, which is then skipped by inode rather than read twice.
	liveF, err := os.Open(live)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("open log %s: %w", live, err)
	}
	var liveInfo os.FileInfo
	handedOver := false // to follow, which closes what it reads
	if liveF != nil {
		defer func() {
			if !handedOver {
				liveF.Close()
			}
		}()
		if liveInfo, err = liveF.Stat(); err != nil {
			liveF.Close()
			return fmt.Errorf("stat log %s: %w", live, err)
		}
	}
	rotated, err := rotatedFiles(live)
	if err != nil {
		return err
	}
	for _, f := range rotated {
		if err := d.readFile(ctx, f, liveInfo); err != nil {
			return err
		}
	}
	if liveF == nil && len(rotated) == 0 && !opt.Follow {
		return fmt.Errorf("no log at %s: %w", live, fs.ErrNotExist)
	}
	var cur *follower
	if liveF != nil {
		cur = &follower{f: liveF, info: liveInfo, r: bufio.NewReaderSize(liveF, 64<<10), name: live}
		if err := d.drain(cur); err != nil {
			return err
		}
	}
	if !opt.Follow {
		if cur != nil {
			d.finish(cur)
		}
		d.flush()
		out.flushTail()
		return out.w.Flush()
	}
	out.flushTail()
	out.tail = -1
	if err := out.w.Flush(); err != nil {
		return err
	}
	handedOver = true
	return d.follow(ctx, out, live, cur, opt)
}

// follow reads what is appended to live, switching to the new live file
// once the old one is rotated and read to its end. It checks every Poll, so
// it follows every rotation unless two happen within one Poll (rotations
// are at least a rotation period apart).
func (d *decoder) follow(ctx context.Context, out *printer, live string, cur *follower, opt ReadOptions) error {
	defer func() {
		if cur != nil {
			cur.f.Close()
		}
	}()
	lastCheck := time.Now()
	for {
		if cur != nil {
			before := d.consumed
			if err := d.drain(cur); err != nil {
				return err
			}
			if err := out.w.Flush(); err != nil {
				return err
			}
			if d.consumed != before {
				continue
			}
		}
		// Idle at the end of the file: rotated? ended?
		if st, err := os.Stat(live); err == nil && (cur == nil || !os.SameFile(st, cur.info)) {
			if cur != nil {
				// The runtime writes only to the new file once it reopened;
				// whatever reached the old one before is read first.
				if err := d.drain(cur); err != nil {
					return err
				}
				cur.f.Close()
			}
			f, err := os.Open(live)
			if err != nil {
				cur = nil
			} else if info, err := f.Stat(); err != nil {
				f.Close()
				cur = nil
			} else {
				cur = &follower{f: f, info: info, r: bufio.NewReaderSize(f, 64<<10), name: live}
			}
			continue
		}
		if opt.Running != nil && time.Since(lastCheck) >= time.Second {
			lastCheck = time.Now()
			if !opt.Running(ctx) {
				if cur != nil {
					if err := d.drain(cur); err != nil {
						return err
					}
					d.finish(cur)
				}
				d.flush()
				return out.w.Flush()
			}
		}
		select {
		case <-ctx.Done():
			d.flush()
			return out.w.Flush()
		case <-time.After(opt.Poll):
		}
	}
}

// follower is an open log file being read, with what it was opened as.
type follower struct {
	f    *os.File
	info os.FileInfo
	r    *bufio.Reader
	name string
	line int
	rest []byte // an unterminated line at the end of what was read
}

// decoder turns CRI log lines into messages, joining partial lines per
// stream (stdout and stderr interleave).
type decoder struct {
	pending  [2]pendingMsg // stdout, stderr
	emit     func(t time.Time, msg []byte)
	warn     func(file string, line int, err error)
	consumed int64
}

type pendingMsg struct {
	t   time.Time
	buf []byte
	has bool
}

func (d *decoder) line(file string, n int, b []byte) {
	l, err := ParseLine(b)
	if err != nil {
		if d.warn != nil {
			d.warn(file, n, err)
		}
		return
	}
	p := &d.pending[0]
	if l.Stream == "stderr" {
		p = &d.pending[1]
	}
	if l.Partial {
		if !p.has {
			p.t, p.has = l.Time, true
		}
		p.buf = append(p.buf, l.Message...)
		return
	}
	if !p.has {
		d.emit(l.Time, l.Message)
		return
	}
	p.buf = append(p.buf, l.Message...)
	d.emit(p.t, p.buf)
	p.buf, p.has = p.buf[:0], false
}

// flush prints partial messages that never got their end (the instance
// stopped in the middle of a line).
func (d *decoder) flush() {
	for i := range d.pending {
		if p := &d.pending[i]; p.has {
			d.emit(p.t, p.buf)
			p.buf, p.has = p.buf[:0], false
		}
	}
}

// readFile reads a whole rotated file, compressed or not; skip is the live
// file's identity, which a rotation since may have given this name.
func (d *decoder) readFile(ctx context.Context, name string, skip os.FileInfo) error {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) && !strings.HasSuffix(name, gzSuffix) {
		// Compressed by a rotation since it was listed.
		name += gzSuffix
		f, err = os.Open(name)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil // removed by rotation since it was listed
	}
	if err != nil {
		return fmt.Errorf("open log %s: %w", name, err)
	}
	defer f.Close()
	if skip != nil {
		if st, err := f.Stat(); err == nil && os.SameFile(st, skip) {
			return nil
		}
	}
	var r io.Reader = f
	if strings.HasSuffix(name, gzSuffix) {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("read log %s: %w", name, err)
		}
		defer zr.Close()
		r = zr
	}
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 1; ; n++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: the runtime splits long
			// messages into partial lines far shorter, so this is not a
			// CRI line; gather it whole to report it.
			long := append([]byte(nil), b...)
			for errors.Is(err, bufio.ErrBufferFull) {
				b, err = br.ReadSlice('\n')
				long = append(long, b...)
			}
			b = long
		}
		if len(b) > 0 {
			d.line(name, n, b)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read log %s: %w", name, err)
		}
	}
}

// drain reads f to its current end. An unterminated last line is kept
// until its newline arrives.
func (d *decoder) drain(f *follower) error {
	for {
		b, err := f.r.ReadSlice('\n')
		if len(b) > 0 {
			d.consumed += int64(len(b))
		}
		if err == nil {
			f.line++
			if len(f.rest) > 0 {
				f.rest = append(f.rest, b...)
				b, f.rest = f.rest, nil
			}
			d.line(f.name, f.line, b)
			continue
		}
		if errors.Is(err, bufio.ErrBufferFull) || err == io.EOF {
			f.rest = append(f.rest, b...)
			if err == io.EOF {
				return nil
			}
			continue
		}
		return fmt.Errorf("read log %s: %w", f.name, err)
	}
}

// finish takes an unterminated last line as it is: nothing more will
// be written to f.
func (d *decoder) finish(f *follower) {
	if len(f.rest) > 0 {
		f.line++
		d.line(f.name, f.line, f.rest)
		f.rest = nil
	}
}

// printer writes messages, or keeps the last tail of them until flushTail.
type printer struct {
	w          *bufio.Writer
	timestamps bool
	tail       int
	ring       [][]byte
	next       int
	full       bool
}

func (p *printer) message(t time.Time, msg []byte) {
	if p.tail == 0 {
		return
	}
	var b []byte
	if p.tail > 0 {
		b = make([]byte, 0, len(msg)+40)
	} else {
		b = make([]byte, 0, 40)
	}
	if p.timestamps {
		b = t.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, ' ')
	}
	if p.tail < 0 {
		p.w.Write(b)
		p.w.Write(msg)
		p.w.WriteByte('\n')
		return
	}
	b = append(b, msg...)
	b = append(b, '\n')
	if p.ring == nil {
		p.ring = make([][]byte, p.tail)
	}
	p.ring[p.next] = b
	p.next++
	if p.next == p.tail {
		p.next, p.full = 0, true
	}
}

// flushTail writes the kept messages, oldest first.
func (p *printer) flushTail() {
	if p.tail <= 0 || p.ring == nil {
		return
	}
	if p.full {
		for _, b := range p.ring[p.next:] {
			p.w.Write(b)
		}
	}
	for _, b := range p.ring[:p.next] {
		p.w.Write(b)
	}
	p.ring, p.next, p.full = nil, 0, false
}
