//go:build linux

package sources

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

const inotifyMask = unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_MODIFY | unix.IN_ATTRIB |
	unix.IN_DELETE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR

// inotifyWatcher is a dirWatcher on one inotify instance.
type inotifyWatcher struct {
	fd int
	f  *os.File // owns fd; non-blocking, so Close interrupts a pending Read

	mu     sync.Mutex
	dirs   map[int32]string // watch descriptor → directory
	closed bool             // fd is being closed: no more syscalls on it

	events chan []watchEvent
	done   chan struct{}
	exited chan struct{}
}

func newDirWatcher() (dirWatcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	w := &inotifyWatcher{
		fd:     fd,
		f:      os.NewFile(uintptr(fd), "inotify"),
		dirs:   map[int32]string{},
		events: make(chan []watchEvent),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	go w.read()
	return w, nil
}

func (w *inotifyWatcher) Add(dir string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("watcher closed")
	}
	wd, err := unix.InotifyAddWatch(w.fd, dir, inotifyMask)
	if err != nil {
		return &fs.PathError{Op: "inotify_add_watch", Path: dir, Err: err}
	}
	w.dirs[int32(wd)] = dir
	return nil
}

func (w *inotifyWatcher) Events() <-chan []watchEvent { return w.events }

func (w *inotifyWatcher) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.done)
	err := w.f.Close()
	<-w.exited
	return err
}

func (w *inotifyWatcher) read() {
	defer close(w.exited)
	// Room for many events with the longest names; the kernel never splits one.
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			w.send([]watchEvent{{err: fmt.Errorf("read inotify events: %w", err)}})
			return
		}
		if batch := w.parse(buf[:n]); len(batch) > 0 && !w.send(batch) {
			return
		}
	}
}

func (w *inotifyWatcher) send(batch []watchEvent) bool {
	select {
	case w.events <- batch:
		return true
	case <-w.done:
		return false
	}
}

// parse decodes struct inotify_event records.
func (w *inotifyWatcher) parse(b []byte) []watchEvent {
	var out []watchEvent
	ne := binary.NativeEndian
	for len(b) >= unix.SizeofInotifyEvent {
		wd := int32(ne.Uint32(b[0:]))
		mask := ne.Uint32(b[4:])
		cookie := ne.Uint32(b[8:])
		nameLen := int(ne.Uint32(b[12:]))
		if unix.SizeofInotifyEvent+nameLen > len(b) {
			break // cannot happen: the kernel writes whole records
		}
		name := string(bytes.TrimRight(b[unix.SizeofInotifyEvent:unix.SizeofInotifyEvent+nameLen], "\x00"))
		b = b[unix.SizeofInotifyEvent+nameLen:]

		if mask&unix.IN_Q_OVERFLOW != 0 {
			out = append(out, watchEvent{op: opOverflow})
			continue
		}
		w.mu.Lock()
		dir, ok := w.dirs[wd]
		if mask&unix.IN_IGNORED != 0 {
			delete(w.dirs, wd)
		}
		if ok && mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0 {
			// A directory moved away keeps its watch and would go on
			// reporting its entries under its old path.
			delete(w.dirs, wd)
			if !w.closed {
				_, _ = unix.InotifyRmWatch(w.fd, uint32(wd))
			}
		}
		w.mu.Unlock()
		if !ok || mask&unix.IN_IGNORED != 0 {
			continue
		}
		if mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0 {
			out = append(out, watchEvent{name: dir, op: opGone, isDir: true})
			continue
		}
		ev := watchEvent{name: filepath.Join(dir, name), cookie: cookie, isDir: mask&unix.IN_ISDIR != 0}
		for _, m := range [...]struct {
			bit uint32
			op  watchOp
		}{
			{unix.IN_CREATE, opCreate}, {unix.IN_MOVED_TO, opMovedTo}, {unix.IN_MOVED_FROM, opMovedFrom},
			{unix.IN_MODIFY, opWrite}, {unix.IN_ATTRIB, opAttrib}, {unix.IN_DELETE, opRemove},
		} {
			if mask&m.bit != 0 {
				ev.op |= m.op
			}
		}
		if ev.op != 0 {
			out = append(out, ev)
		}
	}
	return out
}
