package eventlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"strings"
)

// bbolt's on-disk meta page, as laid out by go.etcd.io/bbolt (internal/common):
// a 16-byte page header, then magic, version, page size, flags (uint32 each),
// root bucket (pgid, sequence), freelist pgid, high-water pgid, txid and an
// FNV-64a checksum of the preceding meta bytes. Integers are native-endian.
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	pageHeaderSize   = 16
	metaChecksumOff  = 56
	metaSize         = 64
	minBoltPageSize  = 1024
	maxBoltPageShift = 14
)

type boltMeta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	pgid     uint64 // high-water mark: pages [0, pgid) are in use
	txid     uint64
	valid    bool
}

func parseMeta(page []byte) boltMeta {
	if len(page) < pageHeaderSize+metaSize {
		return boltMeta{}
	}
	m := page[pageHeaderSize : pageHeaderSize+metaSize]
	ne := binary.NativeEndian
	bm := boltMeta{
		pageSize: ne.Uint32(m[8:]),
		root:     ne.Uint64(m[16:]),
		freelist: ne.Uint64(m[32:]),
		pgid:     ne.Uint64(m[40:]),
		txid:     ne.Uint64(m[48:]),
	}
	h := fnv.New64a()
	_, _ = h.Write(m[:metaChecksumOff])
	bm.valid = ne.Uint32(m[0:]) == boltMagic && ne.Uint32(m[4:]) == boltVersion &&
		ne.Uint64(m[metaChecksumOff:]) == h.Sum64() &&
		bm.pageSize >= minBoltPageSize && bm.pageSize&(bm.pageSize-1) == 0
	return bm
}

// precheckFile looks at the file before bbolt maps it. bbolt trusts the meta
// page's high-water mark and would fault (SIGBUS) touching a page past the
// end of a truncated file, so that case is caught here. fresh reports that
// the file does not exist yet (or is empty) and will be created.
func precheckFile(path string, readOnly bool) (fresh bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		if readOnly {
			return false, fmt.Errorf("%s: no such file", path)
		}
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("open %s: %w", path, err)
	}
	if fi.IsDir() {
		return false, fmt.Errorf("%s: is a directory, not a ledgerlet log", path)
	}
	size := fi.Size()
	if size == 0 {
		if readOnly {
			return false, fmt.Errorf("%s: not a ledgerlet log (empty file)", path)
		}
		return true, nil
	}

	readPage := func(off int64) []byte {
		buf := make([]byte, pageHeaderSize+metaSize)
		if n, err := f.ReadAt(buf, off); n < len(buf) && (err == nil || err == io.EOF) {
			return nil
		} else if err != nil && err != io.EOF {
			return nil
		}
		return buf
	}
	m0 := parseMeta(readPage(0))
	var m1 boltMeta
	if m0.valid {
		m1 = parseMeta(readPage(int64(m0.pageSize)))
	} else {
		// Like bbolt: without a valid first meta page, probe the second at
		// every possible page size.
		for i := 0; i <= maxBoltPageShift; i++ {
			off := int64(minBoltPageSize) << i
			if off >= size {
				break
			}
			if m := parseMeta(readPage(off)); m.valid {
				m1 = m
				break
			}
		}
	}
	// bbolt uses the meta with the higher txid if it is valid, else the other.
	m := m0
	if m1.txid > m0.txid {
		m = m1
		if !m1.valid {
			m = m0
		}
	} else if !m0.valid {
		m = m1
	}
	if !m.valid {
		return false, fmt.Errorf("%s: not a ledgerlet log", path)
	}
	need := int64(m.pgid) * int64(m.pageSize)
	if m.pgid < 2 || need/int64(m.pageSize) != int64(m.pgid) {
		return false, fmt.Errorf("%s: truncated or corrupt (bad high-water mark %d)", path, m.pgid)
	}
	if size < need {
		return false, fmt.Errorf("%s: truncated or corrupt (file is %d bytes, its last transaction needs %d)", path, size, need)
	}
	if m.root >= m.pgid || (m.freelist >= m.pgid && m.freelist != ^uint64(0)) {
		return false, fmt.Errorf("%s: truncated or corrupt (meta page points past the end)", path)
	}
	return false, nil
}

// oneLine keeps error messages (e.g. recovered panics) on one line.
func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\r", " ")
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
