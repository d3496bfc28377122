package sources

import (
	"errors"
	"fmt"
	"time"

	"github.com/ledgerlet/ledgerlet/eventlog"
)

// observation is what one manifest file holds right now.
type observation struct {
	hash string  // sha256 hex of the bytes; "" when they could not be read
	res  *Result // nil when err is set
	err  error   // read, parse or validation error
	raw  []byte  // the bytes, kept for the rejection's blob
	// unavailable says why the manifest cannot be read although its name
	// is there (a symlink to nothing): not gone, so whatever it provides
	// stays, and not rejected. The other fields are unset.
	unavailable string
	// stamp is the file's stat before it was read. When trusted, a re-list
	// that finds the same stamp skips reading the file.
	stamp   fileStamp
	trusted bool
}

// fileStamp is what changes whenever a file's content may have: a rewrite
// moves mtime and ctime (ctime cannot be set back), a rename over it changes
// the inode.
type fileStamp struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64 // unix nanoseconds
}

// settledBefore reports whether the file last changed well before t. A
// stamp taken while the file was being changed in the same timestamp tick
// would not move with the rest of the write, so only stamps older than the
// read by a margin far above any filesystem's timestamp granularity are
// trusted (git's "racy clean" rule).
func (s fileStamp) settledBefore(t time.Time) bool {
	limit := t.Add(-time.Second).UnixNano()
	return s.mtime < limit && s.ctime < limit
}

// rejectKey identifies a rejection so it is recorded once: the content, or
// for unreadable files the error.
func (o *observation) rejectKey() string {
	if o.hash != "" {
		return o.hash
	}
	return "error: " + o.err.Error()
}

// reconcileFiles compares the files of a complete listing with what the log
// holds and returns the events that bring the log up to date, and the ledger
// as it will be once they are appended. It is pure: no I/O, no clock, and
// sorted iteration, so the same inputs give the same events.
//
// Rules:
//   - a pod stays with the file that provides it as long as that file exists
//     and does not name another pod — an invalid edit only adds a rejection
//     (the last good spec is kept), and an unreadable one (a symlink to
//     nothing) changes nothing;
//   - a free pod name goes to the first file in lexical path order; other
//     files naming it are rejected as duplicates, and take over, in lexical
//     order, when the holder goes (ManifestRemoved, then ManifestAdded);
//   - a rejection is recorded once per path and content.
func reconcileFiles(l ledger, files map[string]*observation) ([]eventlog.Event, ledger) {
	next := l.clone()
	owners := next.uidOwners()
	var removed, updated, rejected []eventlog.Event
	refuse := map[string]eventlog.Event{} // path → its rejection this round

	reject := func(path, pod string, o *observation, reason string) {
		refuse[path] = rejectedEvent(SourceFile, path, pod, o.hash, reason, o.raw)
	}

	// Holders first: removals free names before anyone claims them.
	for _, key := range sortedKeys(next.pods) {
		h := next.pods[key]
		o := files[h.path]
		switch {
		case o != nil && o.unavailable != "":
			// Unreadable, not gone: the pod stays as it is.
		case o == nil || (o.res != nil && o.res.Key != key):
			removed = append(removed, removedEvent(SourceFile, key, h))
			delete(next.pods, key)
			if owners[h.uid] == key {
				delete(owners, h.uid)
			}
		case o.res != nil && o.res.ContentHash != h.hash:
			if other, ok := owners[o.res.UID]; ok && other != key {
				reject(h.path, key, o, fmt.Sprintf("uid %s is already used by pod %s from %s", o.res.UID, other, next.pods[other].path))
				continue
			}
			updated = append(updated, changedEvent(SourceFile, h.path, o.res, h))
			delete(owners, h.uid)
			owners[o.res.UID] = key
			next.pods[key] = held{path: h.path, hash: o.res.ContentHash, uid: o.res.UID}
		}
	}

	holds := make(map[string]string, len(next.pods)) // path → the pod it keeps
	for key, h := range next.pods {
		holds[h.path] = key
	}
	for _, path := range sortedKeys(files) {
		o := files[path]
		if o.unavailable != "" {
			continue
		}
		if o.res == nil {
			// File the rejection under the pod whose last good spec this
			// path keeps, else under the pod the manifest names, if any.
			pod := holds[path]
			var me *ManifestError
			if pod == "" && errors.As(o.err, &me) {
				pod = me.Pod
			}
			reject(path, pod, o, o.err.Error())
			continue
		}
		key := o.res.Key
		if h, ok := next.pods[key]; ok {
			if h.path != path {
				reject(path, key, o, fmt.Sprintf("duplicate pod %s: %s is ignored because %s already provides it", key, path, h.path))
			}
			continue
		}
		if other, ok := owners[o.res.UID]; ok {
			reject(path, key, o, fmt.Sprintf("uid %s is already used by pod %s from %s", o.res.UID, other, next.pods[other].path))
			continue
		}
		updated = append(updated, addedEvent(SourceFile, path, o.res))
		owners[o.res.UID] = key
		next.pods[key] = held{path: path, hash: o.res.ContentHash, uid: o.res.UID}
	}

	for _, path := range sortedKeys(next.rejected) {
		if o := files[path]; o != nil && o.unavailable != "" {
			continue // unreadable for now: its last rejection stands
		}
		if _, ok := refuse[path]; !ok {
			// Gone, or accepted again: a later rejection of the same
			// content is news again.
			delete(next.rejected, path)
		}
	}
	for _, path := range sortedKeys(refuse) {
		key := files[path].rejectKey()
		if next.rejected[path] == key {
			continue
		}
		next.rejected[path] = key
		rejected = append(rejected, refuse[path])
	}

	evs := make([]eventlog.Event, 0, len(removed)+len(updated)+len(rejected))
	evs = append(evs, removed...)
	evs = append(evs, updated...)
	return append(evs, rejected...), next
}
