package eventlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Report is what Check found in a log file.
type Report struct {
	Path          string   `json:"path"`
	SchemaVersion uint32   `json:"schemaVersion"`
	FirstSeq      uint64   `json:"firstSeq"`
	LastSeq       uint64   `json:"lastSeq"`
	Events        uint64   `json:"events"`
	Snapshots     []uint64 `json:"snapshots"`
	// ReadableThrough is the last seq up to which every event from FirstSeq
	// is there and decodes (FirstSeq-1 when none is).
	ReadableThrough uint64 `json:"readableThrough"`
	// Problems has one line per problem found; empty for a sound log.
	Problems []string `json:"problems"`
}

// OK is true when no problem was found.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// CheckOptions refine Check.
type CheckOptions struct {
	// DecodeSnapshot, when set, is given every snapshot's state; an error is
	// a problem. The log treats snapshots as opaque, so only its user (the
	// projector) can say whether one decodes.
	DecodeSnapshot func(state []byte) error
}

// maxProblems bounds the report of a badly damaged file.
const maxProblems = 100

// Check verifies the log file at path without modifying it: bbolt's own
// page structure; the meta records; seqs gapless from the first seq, every
// event decodable; snapshots at seqs the log can use (and one at first-1 in
// a compacted log); the derived time and pod indexes and the data size
// against the events they derive from; blobs against their hashes.
//
// A file that is truncated or corrupt is reported, not refused: the report
// says up to which seq the events are readable. The error is for a file that
// cannot be examined at all (missing, in use, not a ledgerlet log).
func Check(path string) (Report, error) { return CheckWith(path, CheckOptions{}) }

// CheckWith is Check with options.
func CheckWith(path string, opts CheckOptions) (Report, error) {
	rep := Report{Path: path}
	_, perr := precheckFile(path, true)
	var trunc truncation
	if perr != nil {
		var ok bool
		if trunc, ok = truncatedFile(path); !ok {
			return rep, perr
		}
	}
	if trunc.need == 0 {
		db, err := openBolt(path, &bolt.Options{ReadOnly: true, Timeout: time.Second})
		if err != nil {
			return rep, err
		}
		defer db.Close()
		if err := checkDB(db, path, &rep, opts); err != nil {
			return Report{Path: path}, err
		}
		return rep, nil
	}

	// Truncated: what bbolt's last transaction needs is not all there.
	// Examine copies (the file itself is never written): first with the
	// missing end as zeros, then as of the previous transaction, whose pages
	// may all still be in the file. The copy that reads further is reported.
	var best Report
	found := false
	for _, previous := range []bool{false, true} {
		r := Report{Path: path}
		err := withCopy(path, trunc, previous, func(copyPath string) error {
			db, err := openBolt(copyPath, &bolt.Options{ReadOnly: true, Timeout: time.Second})
			if err != nil {
				return err
			}
			defer db.Close()
			return checkDB(db, path, &r, opts)
		})
		if err != nil {
			continue
		}
		if previous {
			r.problem("read as of the previous transaction (the file's last one is not complete)")
		}
		if !found || r.ReadableThrough > best.ReadableThrough {
			best, found = r, true
		}
	}
	head := fmt.Sprintf("truncated: the file is %d bytes, its last transaction needs %d", trunc.size, trunc.need)
	if !found {
		// Typically the cut took the pages of bbolt's tree root, which
		// every commit rewrites near the end of the file.
		return Report{Path: path, Problems: []string{head, "nothing is readable: the file's tree root is not in what remains"}}, nil
	}
	best.Problems = append([]string{head}, best.Problems...)
	return best, nil
}

// truncation describes a file shorter than its last transaction needs.
type truncation struct {
	size, need int64
	pageSize   int64
	meta       [2]boltMeta
}

// truncatedFile reports whether path is a bbolt file cut short.
func truncatedFile(path string) (truncation, bool) {
	f, err := os.Open(path)
	if err != nil {
		return truncation{}, false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return truncation{}, false
	}
	read := func(off int64) boltMeta {
		buf := make([]byte, pageHeaderSize+metaSize)
		if _, err := f.ReadAt(buf, off); err != nil {
			return boltMeta{}
		}
		return parseMeta(buf)
	}
	t := truncation{size: fi.Size()}
	t.meta[0] = read(0)
	if !t.meta[0].valid {
		return truncation{}, false
	}
	t.pageSize = int64(t.meta[0].pageSize)
	t.meta[1] = read(t.pageSize)
	for _, m := range t.meta {
		if m.valid {
			t.need = max(t.need, int64(m.pgid)*t.pageSize)
		}
	}
	return t, t.need > t.size && t.need/t.pageSize < 1<<40
}

// withCopy runs fn on a temporary copy of path extended with zeros to what
// its transactions need; with previous, the newer meta page of the copy is
// invalidated so that bbolt reads the transaction before it.
func withCopy(path string, t truncation, previous bool, fn func(copyPath string) error) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.CreateTemp("", "ledgerlet-check-*.db")
	if err != nil {
		return fmt.Errorf("copy for check: %w", err)
	}
	defer os.Remove(dst.Name())
	defer dst.Close()
	if _, err := io.Copy(dst, src); err != nil {
		return fmt.Errorf("copy for check: %w", err)
	}
	if err := dst.Truncate(t.need); err != nil {
		return fmt.Errorf("copy for check: %w", err)
	}
	if previous {
		newer := 0
		if t.meta[1].valid && t.meta[1].txid > t.meta[0].txid {
			newer = 1
		}
		other := t.meta[1-newer]
		if !other.valid || int64(other.pgid)*t.pageSize > t.size {
			return errors.New("no complete previous transaction")
		}
		zero := make([]byte, 8)
		if _, err := dst.WriteAt(zero, int64(newer)*t.pageSize+pageHeaderSize+metaChecksumOff); err != nil {
			return fmt.Errorf("copy for check: %w", err)
		}
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("copy for check: %w", err)
	}
	return fn(dst.Name())
}

func (r *Report) problem(format string, args ...any) {
	switch {
	case len(r.Problems) < maxProblems:
		r.Problems = append(r.Problems, oneLine(fmt.Sprintf(format, args...)))
	case len(r.Problems) == maxProblems:
		r.Problems = append(r.Problems, "further problems not listed")
	}
}

// guard runs one part of the check; bbolt panics (or faults) on pages that
// are not what their parents say, and that becomes a problem of that part.
func (r *Report) guard(what string, fn func()) (ok bool) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			r.problem("%s: corrupt (%v)", what, p)
			ok = false
		}
	}()
	fn()
	return true
}

// eventInfo is what the index checks need of each event.
type eventInfo struct {
	t     int64
	podID uint32
}

// checkDB checks an open file. Its error is for a file that is not a
// ledgerlet log; everything else is a problem in rep.
func checkDB(db *bolt.DB, path string, rep *Report, opts CheckOptions) error {
	tx, err := db.Begin(false)
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	defer func() { _ = tx.Rollback() }()

	var notLog error
	var indexed, metaBytes uint64
	hasIndexed := false
	if !rep.guard("meta", func() {
		meta := tx.Bucket(bucketMeta)
		if meta == nil || !bytes.Equal(meta.Get(keyMagic), magicValue) {
			notLog = fmt.Errorf("%s: not a ledgerlet log", path)
			return
		}
		if v := meta.Get(keySchema); len(v) == 4 {
			rep.SchemaVersion = binary.BigEndian.Uint32(v)
			if rep.SchemaVersion > SchemaVersion {
				notLog = fmt.Errorf("%s: schema version %d is newer than this ledgerlet supports (%d)", path, rep.SchemaVersion, SchemaVersion)
				return
			}
		} else {
			rep.problem("meta: bad schema version record")
		}
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil {
				rep.problem("bucket %q is missing", name)
			}
		}
		rep.FirstSeq = 1
		if v := meta.Get(keyFirstSeq); len(v) == 8 {
			rep.FirstSeq = binary.BigEndian.Uint64(v)
		} else {
			rep.problem("meta: bad first seq record")
		}
		if v := meta.Get(keyIndexed); len(v) == 8 {
			indexed, hasIndexed = binary.BigEndian.Uint64(v), true
		}
		if v := meta.Get(keyDataBytes); len(v) == 8 {
			metaBytes = binary.BigEndian.Uint64(v)
		}
	}) {
		return fmt.Errorf("%s: truncated or corrupt (%s)", path, rep.Problems[len(rep.Problems)-1])
	}
	if notLog != nil {
		return notLog
	}
	first := rep.FirstSeq
	rep.LastSeq = first - 1
	rep.ReadableThrough = first - 1

	rep.guard("bbolt structure", func() {
		for err := range tx.Check() {
			rep.problem("bbolt: %v", err)
		}
	})

	// Pod ids, needed to decode events.
	var names []string
	podIDs := map[string]uint32{}
	rep.guard("pods", func() {
		b := tx.Bucket(bucketPods)
		if b == nil {
			return
		}
		byID := map[uint32]string{}
		_ = b.ForEach(func(k, v []byte) error {
			if len(v) != 4 {
				rep.problem("pods: %q has a bad id record", k)
				return nil
			}
			id := binary.BigEndian.Uint32(v)
			if other, dup := byID[id]; dup || id == 0 {
				rep.problem("pods: id %d of %q is also %q's or invalid", id, k, other)
				return nil
			}
			byID[id] = string(k)
			podIDs[string(k)] = id
			return nil
		})
		names = make([]string, len(byID))
		for id, name := range byID {
			if int(id) > len(names) {
				rep.problem("pods: ids are not 1..%d (found %d)", len(byID), id)
				continue
			}
			names[id-1] = name
		}
	})
	podName := func(id uint32) (string, bool) {
		if id == 0 || int(id) > len(names) || names[id-1] == "" {
			return "", false
		}
		return names[id-1], true
	}

	// Events: gapless from first, decodable, times non-decreasing.
	var infos []eventInfo // by seq-first, while the events are gapless
	var dataBytes uint64
	rep.guard("events", func() {
		b := tx.Bucket(bucketEvents)
		if b == nil {
			return
		}
		c := b.Cursor()
		expect, readable := first, true
		var scratch []byte
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(k) != 8 {
				rep.problem("events: a key of %d bytes", len(k))
				readable = false
				continue
			}
			seq := binary.BigEndian.Uint64(k)
			rep.Events++
			rep.LastSeq = max(rep.LastSeq, seq)
			if seq < first {
				rep.problem("event %d is before the first seq %d", seq, first)
				continue
			}
			if seq != expect {
				rep.problem("events %d..%d are missing", expect, seq-1)
				readable = false
			}
			expect = seq + 1
			if !hasIndexed || seq <= indexed {
				dataBytes += uint64(len(k) + len(v))
			}
			_, err := decodeValue(seq, v, podName, &scratch)
			if err != nil {
				rep.problem("event %d: %v", seq, err)
				readable = false
				continue
			}
			// Times are the wall clock as read: one stepped back gives an
			// earlier time than the event before (seq is the order), which
			// is no damage. Boottimes of one run do not go back, but a run
			// may follow a reboot, so neither is checked here.
			if readable {
				rep.ReadableThrough = seq
				id, name, t, _ := valueHeader(seq, v)
				if name != "" {
					id = podIDs[name]
				}
				infos = append(infos, eventInfo{t: t, podID: id})
			}
		}
	})
	if rep.ReadableThrough < rep.LastSeq {
		rep.problem("readable: events %d..%d of %d..%d", first, rep.ReadableThrough, first, rep.LastSeq)
	}

	// Derived data, checked over the indexed events that are readable.
	if !hasIndexed {
		indexed = rep.LastSeq // written before "indexed" existed: all indexed
	} else if indexed > rep.LastSeq || indexed+1 < first {
		rep.problem("meta: indexed seq %d is outside the log (%d..%d)", indexed, first, rep.LastSeq)
	}
	through := min(indexed, rep.ReadableThrough)
	info := func(seq uint64) (eventInfo, bool) {
		if seq < first || seq > through {
			return eventInfo{}, false
		}
		return infos[seq-first], true
	}
	if hasIndexed && indexed <= rep.LastSeq && rep.ReadableThrough >= indexed && metaBytes != dataBytes {
		rep.problem("meta: data size %d, but events %d..%d hold %d bytes", metaBytes, first, indexed, dataBytes)
	}
	rep.guard("time index", func() { checkTimeIndex(tx, rep, first, indexed, through, info) })
	rep.guard("pod index", func() { checkPodIndex(tx, rep, first, indexed, through, info) })

	rep.guard("snapshots", func() {
		b := tx.Bucket(bucketSnapshots)
		if b == nil {
			return
		}
		_ = b.ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				rep.problem("snapshots: a key of %d bytes", len(k))
				return nil
			}
			seq := binary.BigEndian.Uint64(k)
			rep.Snapshots = append(rep.Snapshots, seq)
			switch {
			case seq > rep.LastSeq:
				rep.problem("snapshot at %d is past the last seq %d", seq, rep.LastSeq)
			case first > 1 && seq < first-1:
				rep.problem("snapshot at %d is before the retained log (first seq %d)", seq, first)
			}
			if opts.DecodeSnapshot != nil {
				if err := opts.DecodeSnapshot(v); err != nil {
					rep.problem("snapshot at %d: %v", seq, err)
				}
			}
			return nil
		})
		if first > 1 && !slices.Contains(rep.Snapshots, first-1) {
			rep.problem("the log starts at seq %d but holds no snapshot at %d: it cannot be replayed before its oldest snapshot", first, first-1)
		}
	})

	rep.guard("blobs", func() {
		b := tx.Bucket(bucketBlobs)
		if b == nil {
			return
		}
		_ = b.ForEach(func(k, v []byte) error {
			sum := sha256.Sum256(v)
			if hex.EncodeToString(sum[:]) != string(k) {
				rep.problem("blob %.16s…: content does not match its hash", k)
			}
			return nil
		})
	})
	return nil
}

// checkTimeIndex: every entry names an indexed event with its time, and
// exactly the indexed events whose time passes every earlier one start an
// entry (SeqAt relies on both).
func checkTimeIndex(tx *bolt.Tx, rep *Report, first, indexed, through uint64, info func(uint64) (eventInfo, bool)) {
	b := tx.Bucket(bucketTime)
	if b == nil {
		return
	}
	entries := map[uint64]int64{}
	_ = b.ForEach(func(k, _ []byte) error {
		if len(k) != 16 {
			rep.problem("time index: a key of %d bytes", len(k))
			return nil
		}
		t, seq := int64(binary.BigEndian.Uint64(k)), binary.BigEndian.Uint64(k[8:])
		switch {
		case seq < first:
			rep.problem("time index: entry for seq %d, before the first seq %d", seq, first)
		case seq > indexed:
			rep.problem("time index: entry for seq %d, past the indexed seq %d", seq, indexed)
		default:
			// The first entry may carry a later time (see compactTimeIndex).
			if e, ok := info(seq); ok && e.t != t && !(seq == first && t > e.t) {
				rep.problem("time index: seq %d at %d, but the event is at %d", seq, t, e.t)
			}
			entries[seq] = t
		}
		return nil
	})
	var prev int64
	for seq := first; seq <= through; seq++ {
		e, ok := info(seq)
		if !ok {
			continue
		}
		t, has := entries[seq]
		switch {
		case seq == first:
			if !has {
				rep.problem("time index: no entry for the first seq %d", seq)
			}
			// A compaction cut keys the first entry with the latest time
			// of the commits before it.
			prev = max(e.t, t)
		case e.t > prev:
			if !has {
				rep.problem("time index: no entry for seq %d, whose time passes every earlier one", seq)
			}
			prev = e.t
		case has:
			rep.problem("time index: entry for seq %d, whose time does not pass every earlier one", seq)
		}
	}
}

// checkPodIndex: every block lists only seqs of its pod, and every indexed
// event of a pod is listed.
func checkPodIndex(tx *bolt.Tx, rep *Report, first, indexed, through uint64, info func(uint64) (eventInfo, bool)) {
	b := tx.Bucket(bucketPodIdx)
	if b == nil {
		return
	}
	var listed []bool // by seq-first, over first..through
	if through >= first {
		listed = make([]bool, through-first+1)
	}
	_ = b.ForEach(func(k, v []byte) error {
		if len(k) != 12 {
			rep.problem("pod index: a key of %d bytes", len(k))
			return nil
		}
		id, seq := binary.BigEndian.Uint32(k), binary.BigEndian.Uint64(k[4:])
		visit := func(seq uint64) bool {
			if seq > indexed {
				rep.problem("pod index: pod id %d lists seq %d, past the indexed seq %d", id, seq, indexed)
				return false
			}
			if e, ok := info(seq); ok {
				if e.podID != id {
					rep.problem("pod index: pod id %d lists seq %d, an event of pod id %d", id, seq, e.podID)
				}
				listed[seq-first] = true
			}
			return true
		}
		if !visit(seq) {
			return nil
		}
		if err := forEachDelta(v, func(d uint64) bool { seq += d; return visit(seq) }); err != nil {
			rep.problem("pod index: block %d/%d: %v", id, binary.BigEndian.Uint64(k[4:]), err)
		}
		return nil
	})
	for seq := first; seq <= through; seq++ {
		if e, _ := info(seq); e.podID != 0 && !listed[seq-first] {
			rep.problem("pod index: event %d of pod id %d is not listed", seq, e.podID)
		}
	}
}
