package sources

// The file source watches directories through dirWatcher. It needs two things
// a portable file-watching library does not give: whether a new name was
// created (its content may still be being written) or renamed into place
// (complete), and the cookie that pairs the two halves of one rename, so
// that `mv a.yaml b.yaml` is one move rather than a removal and an unrelated
// addition. On Linux that is inotify (watch_linux.go); elsewhere there is no
// watcher and the periodic re-list does the work.

// watchOp says what happened to a name.
type watchOp uint16

const (
	opCreate    watchOp = 1 << iota // a new name, possibly still being written (IN_CREATE)
	opMovedTo                       // a name renamed into place: its content is complete (IN_MOVED_TO)
	opMovedFrom                     // a name renamed away (IN_MOVED_FROM)
	opWrite                         // content written (IN_MODIFY)
	opAttrib                        // metadata changed, e.g. mode (IN_ATTRIB)
	opRemove                        // a name deleted (IN_DELETE)
	opGone                          // the watched directory itself was deleted or moved away; name is the directory
	opOverflow                      // the kernel dropped events: only a full listing is trustworthy
)

// watchEvent is one change in a watched directory.
type watchEvent struct {
	name   string // the full path of the entry (the directory itself for opGone)
	op     watchOp
	cookie uint32 // the same for an opMovedFrom and the opMovedTo of one rename; 0 otherwise
	isDir  bool   // the entry is a directory
	err    error  // the watcher failed and stopped; nothing else is set
}

// dirWatcher reports changes in the directories added to it, non-recursively.
type dirWatcher interface {
	// Add starts watching dir (again: a directory replaced by a new one at
	// the same path must be added again).
	Add(dir string) error
	// Events delivers events in the order they happened, in batches.
	Events() <-chan []watchEvent
	// Close stops the watcher; its goroutine has exited when Close returns.
	Close() error
}
