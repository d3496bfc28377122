package eventlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrClosed is returned by operations on a closed Log or Subscription.
var ErrClosed = errors.New("eventlog: closed")

// ErrNotFound is returned (wrapped) when a blob is not in the log.
var ErrNotFound = errors.New("not found")

// ErrFailed is returned (wrapped, with the cause) by every write to a Log
// after one of its commits failed: see Log.Err.
var ErrFailed = errors.New("eventlog: a commit failed; the log refuses appends until it is reopened")

// ErrCompacted is returned (wrapped) by Subscription.Next when the events it
// would have to yield next were dropped by Compact.
var ErrCompacted = errors.New("events were compacted away")

// Options configure Open.
type Options struct {
	// ReadOnly opens the file without ever modifying it (offline inspection).
	ReadOnly bool
	// LockTimeout bounds the wait for the file lock (another process holding it).
	// Zero means 1s for read-only opens and 10s otherwise (a restarting agent
	// may briefly overlap with the process it replaces).
	LockTimeout time.Duration
	// MaxBatch caps the events committed in one transaction by group commit.
	// Zero means DefaultMaxBatch.
	MaxBatch int
	// NoSync skips fsync (benchmarks of non-durable paths and fast unit tests only).
	NoSync bool
	Logger *slog.Logger
	// Clock stamps commits with the wall time; nil means time.Now. A
	// recorded history written again with its own times (golden tests, a
	// generated month for benchmarks) sets it. The time is recorded as read:
	// a clock stepped back shows as an earlier time (seq is the order).
	Clock func() time.Time
	// Boottime stamps commits with a monotonic reading in ns (the event's
	// Boottime); nil means CLOCK_BOOTTIME, or none (0) when Clock is set: a
	// history with its own wall times measures durations by them. Tests
	// that step a fake wall clock set both.
	Boottime func() int64
}

// DefaultMaxBatch is the group-commit cap used when Options.MaxBatch is zero.
const DefaultMaxBatch = 4096

// SchemaVersion is the on-disk schema this package writes and understands.
const SchemaVersion uint32 = 1

// maxSnapshots is how many of the newest snapshots are kept; older ones
// are thinned to one every sparseSnapshotEvery seqs.
const (
	maxSnapshots        = 3
	sparseSnapshotEvery = 25_000
)

// initialMmapSize is reserved address space, not memory: with it the mmap
// never has to grow (which would block on open read transactions) until the
// file passes 1 GiB.
const initialMmapSize = 1 << 30

var (
	bucketMeta      = []byte("meta")
	bucketEvents    = []byte("events")
	bucketTime      = []byte("time")
	bucketPods      = []byte("pods")
	bucketPodIdx    = []byte("podidx")
	bucketBlobs     = []byte("blobs")
	bucketSnapshots = []byte("snapshots")

	keyMagic     = []byte("magic")
	keySchema    = []byte("schema")
	keyFirstSeq  = []byte("first")
	keyDataBytes = []byte("databytes")

	magicValue = []byte("ledgerlet")

	allBuckets = [][]byte{bucketMeta, bucketEvents, bucketTime, bucketPods, bucketPodIdx, bucketBlobs, bucketSnapshots}
)

// Log is an open event log.
type Log struct {
	path     string
	db       *bolt.DB
	readOnly bool
	noSync   bool
	maxBatch int
	logger   *slog.Logger
	clock    func() time.Time
	boottime func() int64

	// first and last are the retained range; they are published by the
	// writer after each commit (under mu, together with notify).
	first atomic.Uint64
	last  atomic.Uint64

	// mu guards notify, which the writer closes and replaces after every
	// commit so that subscribers waiting on it wake up.
	mu     sync.Mutex
	notify chan struct{}

	// closed is closed when Close starts; it wakes subscribers.
	closed    chan struct{}
	closeOnce sync.Once
	closeErr  error

	// names maps pod id-1 to pod key for decoding. The writer appends
	// (copy-on-write) and publishes a new slice; readers load it lock-free.
	names   atomic.Pointer[[]string]
	namesMu sync.Mutex

	w *writer // nil when read-only

	// failed is closed when a commit fails; failErr (set before) is then
	// what every write returns.
	failed   chan struct{}
	failOnce sync.Once
	failErr  error

	// commitFault is for tests (export_test.go): called after each commit of
	// the writer, a non-nil error makes the commit count as failed although
	// its transaction is visible, as when bbolt's fsync of the meta page
	// fails after the page was written.
	commitFault atomic.Pointer[func() error]
}

func (l *Log) podName(id uint32) (string, bool) {
	names := *l.names.Load()
	if id == 0 || int(id) > len(names) {
		return "", false
	}
	return names[id-1], true
}

func (l *Log) addPodName(pod string, id uint32) {
	l.namesMu.Lock()
	defer l.namesMu.Unlock()
	old := *l.names.Load()
	names := make([]string, max(len(old), int(id)))
	copy(names, old)
	names[id-1] = pod
	l.names.Store(&names)
}

func (l *Log) truncPodNames(n int) {
	l.namesMu.Lock()
	defer l.namesMu.Unlock()
	names := (*l.names.Load())[:n:n]
	l.names.Store(&names)
}

// Snapshot is projected state as of Seq (all events <= Seq folded), opaque to the log.
type Snapshot struct {
	Seq   uint64
	State []byte
}

// Stats describe the log.
type Stats struct {
	FirstSeq, LastSeq uint64
	Events            uint64
	FileSize          int64
	DataBytes         int64 // bytes held by event records and their keys
	Blobs             int
	Snapshots         int
	SchemaVersion     uint32
}

// Open opens or creates the log at path. A file that is not a ledgerlet log,
// is truncated or corrupt, or has a newer schema is refused with an error
// whose message is one line naming the problem.
func Open(path string, opts Options) (*Log, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	lockTimeout := opts.LockTimeout
	if lockTimeout <= 0 {
		lockTimeout = 10 * time.Second
		if opts.ReadOnly {
			lockTimeout = time.Second
		}
	}
	maxBatch := opts.MaxBatch
	if maxBatch <= 0 {
		maxBatch = DefaultMaxBatch
	}

	fresh, err := precheckFile(path, opts.ReadOnly)
	if err != nil {
		return nil, err
	}

	db, err := openBolt(path, &bolt.Options{
		Timeout:  lockTimeout,
		ReadOnly: opts.ReadOnly,
		// The freelist is written with every commit (one small page: an
		// append-only log frees few pages). Without it bbolt rebuilds the
		// freelist at every read-write Open by walking every page of the
		// file: ~250 ms for 1M events with a warm page cache and 5-8 s cold
		// (random reads of the whole file), against ~1 ms with it. A file
		// written without a freelist gets one at its first Open.
		NoFreelistSync:  false,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: initialMmapSize,
		NoSync:          opts.NoSync,
		NoStatistics:    true,
	})
	if err != nil {
		return nil, err
	}
	if fresh {
		// Make the new directory entry durable too, or a crash could lose
		// the whole file after appends were acknowledged.
		syncDir(filepath.Dir(path))
	}

	l := &Log{
		path:     path,
		db:       db,
		readOnly: opts.ReadOnly,
		noSync:   opts.NoSync,
		clock:    opts.Clock,
		boottime: opts.Boottime,
		maxBatch: maxBatch,
		logger:   logger,
		notify:   make(chan struct{}),
		closed:   make(chan struct{}),
		failed:   make(chan struct{}),
	}
	st, err := l.load()
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	l.first.Store(st.first)
	l.last.Store(st.last)
	names := make([]string, len(st.pods))
	for pod, id := range st.pods {
		if id == 0 || int(id) > len(names) {
			_ = db.Close()
			return nil, fmt.Errorf("%s: truncated or corrupt (pod id %d out of range)", path, id)
		}
		names[id-1] = pod
	}
	l.names.Store(&names)
	if !opts.ReadOnly {
		l.w = newWriter(l, st)
		go l.w.run()
	}
	logger.Debug("event log opened", "path", path, "first", st.first, "last", st.last, "readOnly", opts.ReadOnly)
	return l, nil
}

// openBolt opens the bbolt file, turning its failure modes into one-line
// errors. A corrupt file could make bbolt panic or fault on a page of the
// mapping; both become errors here instead of killing the process.
func openBolt(path string, bo *bolt.Options) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%s: truncated or corrupt (%v)", path, oneLine(fmt.Sprint(r)))
		}
	}()
	db, err = bolt.Open(path, 0o600, bo)
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("%s: in use by a running agent (use the agent's socket, or `ledgerlet backup`)", path)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return nil, fmt.Errorf("%s: not a ledgerlet log", path)
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%s: no such file", path)
	default:
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
}

// loaded is what Open learns from the file.
type loaded struct {
	first, last uint64
	lastTime    int64
	dataBytes   uint64
	pods        map[string]uint32
	pend        pendingIndex // derived data of the unindexed tail
	markIndexed bool         // the file has no "indexed" record yet
}

// load checks that the file is a ledgerlet log of a schema we understand,
// initialises a new one, and reads the state the writer needs.
func (l *Log) load() (st loaded, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: truncated or corrupt (%v)", l.path, oneLine(fmt.Sprint(r)))
		}
	}()
	notLog := fmt.Errorf("%s: not a ledgerlet log", l.path)

	empty := false
	if err := l.db.View(func(tx *bolt.Tx) error {
		k, _ := tx.Cursor().First()
		empty = k == nil
		return nil
	}); err != nil {
		return st, fmt.Errorf("%s: truncated or corrupt (%v)", l.path, oneLine(err.Error()))
	}
	if empty {
		// A bbolt file without any bucket is one we created and crashed
		// before initialising (or a brand-new file).
		if l.readOnly {
			return st, notLog
		}
		if err := l.db.Update(initBuckets); err != nil {
			return st, fmt.Errorf("initialise %s: %w", l.path, err)
		}
	}

	err = l.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil || string(meta.Get(keyMagic)) != string(magicValue) {
			return notLog
		}
		schema := meta.Get(keySchema)
		if len(schema) != 4 {
			return fmt.Errorf("%s: truncated or corrupt (bad schema version record)", l.path)
		}
		if v := binary.BigEndian.Uint32(schema); v > SchemaVersion {
			return fmt.Errorf("%s: schema version %d is newer than this ledgerlet supports (%d)", l.path, v, SchemaVersion)
		}
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("%s: truncated or corrupt (bucket %q missing)", l.path, name)
			}
		}
		st.first = 1
		if v := meta.Get(keyFirstSeq); len(v) == 8 {
			st.first = binary.BigEndian.Uint64(v)
		}
		if v := meta.Get(keyDataBytes); len(v) == 8 {
			st.dataBytes = binary.BigEndian.Uint64(v)
		}
		st.last = st.first - 1
		if k, _ := tx.Bucket(bucketEvents).Cursor().Last(); k != nil {
			if len(k) != 8 {
				return fmt.Errorf("%s: truncated or corrupt (bad event key)", l.path)
			}
			st.last = binary.BigEndian.Uint64(k)
			if st.last < st.first {
				return fmt.Errorf("%s: truncated or corrupt (last seq %d below first seq %d)", l.path, st.last, st.first)
			}
		}
		if k, _ := tx.Bucket(bucketTime).Cursor().Last(); len(k) == 16 {
			st.lastTime = int64(binary.BigEndian.Uint64(k))
		}
		st.pods = make(map[string]uint32)
		if err := tx.Bucket(bucketPods).ForEach(func(k, v []byte) error {
			if len(v) != 4 {
				return fmt.Errorf("%s: truncated or corrupt (bad pod id)", l.path)
			}
			st.pods[string(k)] = binary.BigEndian.Uint32(v)
			return nil
		}); err != nil {
			return err
		}
		st.pend.pods = make(map[uint32][]uint64)
		if _, ok := unindexedFrom(tx); !ok {
			st.markIndexed = true // written before the unindexed tail existed
		}
		loadTail(tx, &st)
		return nil
	})
	if err == nil && st.markIndexed && !l.readOnly {
		// Everything in such a file is indexed; say so before the writer
		// starts leaving a tail, or readers would not look at it.
		err = l.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keyIndexed, u64(st.last))
		})
		if err != nil {
			err = fmt.Errorf("upgrade %s: %w", l.path, err)
		}
	}
	return st, err
}

func initBuckets(tx *bolt.Tx) error {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	meta := tx.Bucket(bucketMeta)
	if err := meta.Put(keyMagic, magicValue); err != nil {
		return err
	}
	if err := meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, SchemaVersion)); err != nil {
		return err
	}
	if err := meta.Put(keyFirstSeq, u64(1)); err != nil {
		return err
	}
	if err := meta.Put(keyIndexed, u64(0)); err != nil {
		return err
	}
	return meta.Put(keyDataBytes, u64(0))
}

// Close stops the writer after committing what is queued, then closes the file.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		close(l.closed)
		if l.w != nil {
			l.w.stop()
		}
		// bbolt's Close waits for open read transactions to end.
		if err := l.db.Close(); err != nil {
			l.closeErr = fmt.Errorf("close %s: %w", l.path, err)
		}
		l.logger.Debug("event log closed", "path", l.path)
	})
	return l.closeErr
}

// Err is nil while the log accepts writes. After a commit or fsync error it
// is that error, wrapped with ErrFailed, and every Append, SaveSnapshot and
// Compact returns it: the file may hold the failed transaction, so only
// reopening the file (restarting the agent) can continue the log. Reads go
// on serving what was acknowledged.
func (l *Log) Err() error {
	select {
	case <-l.failed:
		return l.failErr
	default:
		return nil
	}
}

// Failed is closed when the log stops accepting writes after a commit error
// (see Err), so that the agent can exit and restart from the file.
func (l *Log) Failed() <-chan struct{} { return l.failed }

// markFailed records the first commit failure and returns the error writes
// report from now on.
func (l *Log) markFailed(cause error) error {
	l.failOnce.Do(func() {
		l.failErr = fmt.Errorf("%w: %w", ErrFailed, cause)
		close(l.failed)
	})
	return l.failErr
}

// Path of the underlying file.
func (l *Log) Path() string { return l.path }

// FirstSeq is the lowest retained seq (1 for an uncompacted log; LastSeq+1 when empty).
func (l *Log) FirstSeq() uint64 { return l.first.Load() }

// LastSeq is the highest committed seq (0 when empty).
func (l *Log) LastSeq() uint64 { return l.last.Load() }

// Stats reports sizes and counts.
func (l *Log) Stats() (Stats, error) {
	var s Stats
	err := l.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		s.SchemaVersion = binary.BigEndian.Uint32(meta.Get(keySchema))
		s.FirstSeq = binary.BigEndian.Uint64(meta.Get(keyFirstSeq))
		s.DataBytes = int64(dataBytes(tx))
		s.LastSeq = s.FirstSeq - 1
		if k, _ := tx.Bucket(bucketEvents).Cursor().Last(); k != nil {
			s.LastSeq = binary.BigEndian.Uint64(k)
		}
		s.Events = s.LastSeq + 1 - s.FirstSeq
		s.Blobs = tx.Bucket(bucketBlobs).Stats().KeyN
		s.Snapshots = tx.Bucket(bucketSnapshots).Stats().KeyN
		return nil
	})
	if err != nil {
		return Stats{}, fmt.Errorf("stats: %w", err)
	}
	fi, err := os.Stat(l.path)
	if err != nil {
		return Stats{}, fmt.Errorf("stats: %w", err)
	}
	s.FileSize = fi.Size()
	return s, nil
}

// Backup writes a consistent copy of the log to w while appends continue.
func (l *Log) Backup(w io.Writer) (int64, error) {
	var n int64
	err := l.view(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("backup %s: %w", l.path, err)
	}
	return n, nil
}

// view runs fn in a read transaction, reporting ErrClosed after Close.
func (l *Log) view(fn func(tx *bolt.Tx) error) error {
	if l.isClosed() {
		return ErrClosed
	}
	err := l.db.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

func (l *Log) isClosed() bool {
	select {
	case <-l.closed:
		return true
	default:
		return false
	}
}

// published returns the committed range and the channel the writer closes
// at its next commit, read together so that a waiter cannot miss a commit.
func (l *Log) published() (last uint64, ch <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last.Load(), l.notify
}

// publish makes a commit visible: new range first, then wake waiters.
func (l *Log) publish(first, last uint64) {
	l.mu.Lock()
	l.first.Store(first)
	l.last.Store(last)
	close(l.notify)
	l.notify = make(chan struct{})
	l.mu.Unlock()
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v) }

func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}

// checkCtx returns ctx's error, if any, without blocking.
func checkCtx(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	default:
		return nil
	}
}
