package eventlog

import (
	"os"

	bolt "go.etcd.io/bbolt"
)

// Writing zeros ahead of bbolt's high-water mark.
//
// bbolt grows its file with ftruncate, which leaves a hole, and every commit
// appends a few pages past the previous high-water mark. On ext4 (and most
// filesystems) writing into a hole allocates blocks, and the commit's
// fdatasync then has to commit the filesystem journal as well as flush the
// data: measurably slower than an fdatasync of overwritten blocks. So the
// writer keeps the next zeroChunk bytes past the high-water mark written
// with zeros (and synced once), between transactions. Pages at or past the
// high-water mark belong to no transaction, so this never touches data; a
// crash part-way leaves only zeros past the mark, which bbolt ignores.
const (
	zeroChunk    = 1 << 20
	zeroLowWater = 256 << 10
)

type zeroer struct {
	f        *os.File
	zeroedTo int64 // bytes [.., zeroedTo) past the mark are known written
	buf      []byte
	failed   bool
}

// zeroAhead runs on the writer goroutine between transactions.
func (w *writer) zeroAhead() {
	z := &w.zero
	if w.l.noSync || z.failed {
		return
	}
	var hw int64
	if err := w.l.db.View(func(tx *bolt.Tx) error { hw = tx.Size(); return nil }); err != nil {
		return
	}
	if hw+zeroLowWater <= z.zeroedTo {
		return
	}
	if z.f == nil {
		f, err := os.OpenFile(w.l.path, os.O_WRONLY, 0)
		if err != nil {
			z.failed = true
			w.l.logger.Debug("event log: cannot pre-write file space", "path", w.l.path, "err", err)
			return
		}
		z.f = f
		z.buf = make([]byte, 64<<10) // small: it stays allocated, and 16 writes a chunk cost nothing
	}
	from := max(hw, z.zeroedTo)
	to := hw + zeroChunk
	for off := from; off < to; {
		n, err := z.f.WriteAt(z.buf[:min(int64(len(z.buf)), to-off)], off)
		if err != nil {
			z.fail(w.l, err)
			return
		}
		off += int64(n)
	}
	if err := z.f.Sync(); err != nil {
		z.fail(w.l, err)
		return
	}
	z.zeroedTo = to
}

func (z *zeroer) fail(l *Log, err error) {
	z.failed = true
	l.logger.Debug("event log: cannot pre-write file space", "path", l.path, "err", err)
}

func (z *zeroer) close() {
	if z.f != nil {
		_ = z.f.Close()
		z.f = nil
	}
}
