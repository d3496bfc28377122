package sources

import (
	"context"
	"maps"
	"slices"

	"github.com/ledgerlet/ledgerlet/eventlog"
	"github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

// Recorder is where sources put facts; *eventlog.Log satisfies it. Append
// returns once the events are durable, so a source commits its in-memory
// view only after Append succeeds and retries otherwise.
type Recorder interface {
	Append(ctx context.Context, evs ...eventlog.Event) ([]uint64, error)
}

// Known is what the log already says a source provides, so that a restart
// over unchanged manifests appends nothing. The caller derives it from the
// projected state:
//
//   - one entry per pod the source provides (Rejected false): Path,
//     ContentHash, Pod and UID of its last ManifestAdded or ManifestChanged;
//   - one entry per path whose latest manifest was rejected (Rejected true):
//     Path and ContentHash of that ManifestRejected (Pod and UID may be
//     empty). A path may have both: a pod kept at its last good version and
//     a rejected newer edit. For the URL source, whose items share one path,
//     list every rejected item's ContentHash since the last fetch that
//     changed the pods.
//
// Entries of another source are ignored, so the whole list can be passed to
// every source.
type Known struct {
	Source      string // SourceFile or SourceHTTP
	Path        string // file path or URL
	ContentHash string
	Pod         string // "namespace/name"
	UID         string
	Rejected    bool
}

// held is a pod a source provides, as recorded in the log.
type held struct {
	path, hash, uid string
}

// ledger is a source's view of what it has recorded: the pods it provides
// (by key) and the rejections it has recorded (by location, with the content
// hash or error that was rejected), so that it never records a fact twice.
type ledger struct {
	pods     map[string]held   // pod key → holder
	rejected map[string]string // path (file) or content hash (http) → rejection key
}

func newLedger(source string, known []Known, rejectKey func(Known) string) ledger {
	l := ledger{pods: map[string]held{}, rejected: map[string]string{}}
	for _, k := range known {
		if k.Source != source {
			continue
		}
		if k.Rejected {
			l.rejected[rejectKey(k)] = k.ContentHash
			continue
		}
		if k.Pod != "" {
			l.pods[k.Pod] = held{path: k.Path, hash: k.ContentHash, uid: k.UID}
		}
	}
	return l
}

func (l ledger) clone() ledger {
	return ledger{pods: maps.Clone(l.pods), rejected: maps.Clone(l.rejected)}
}

// uidOwners maps each provided UID to its pod key. Two pods with one UID
// would share log directories and CRI labels, so a second one is refused.
func (l ledger) uidOwners() map[string]string {
	m := make(map[string]string, len(l.pods))
	for k, h := range l.pods {
		m[h.uid] = k
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

func addedEvent(source, path string, r *Result) eventlog.Event {
	return eventlog.Event{
		Pod: r.Key,
		Data: &eventpb.ManifestAdded{
			Source:       source,
			Path:         path,
			ContentHash:  r.ContentHash,
			Uid:          r.UID,
			ConfigHash:   r.ConfigHash,
			PodJson:      r.PodJSON,
			Warnings:     r.Warnings,
			UidAlgorithm: r.UIDAlgorithm,
		},
		Blobs: [][]byte{r.Raw},
	}
}

func changedEvent(source, path string, r *Result, prev held) eventlog.Event {
	return eventlog.Event{
		Pod: r.Key,
		Data: &eventpb.ManifestChanged{
			Source:              source,
			Path:                path,
			ContentHash:         r.ContentHash,
			Uid:                 r.UID,
			ConfigHash:          r.ConfigHash,
			PodJson:             r.PodJSON,
			Warnings:            r.Warnings,
			UidAlgorithm:        r.UIDAlgorithm,
			PreviousContentHash: prev.hash,
			PreviousUid:         prev.uid,
		},
		Blobs: [][]byte{r.Raw},
	}
}

func removedEvent(source, key string, h held) eventlog.Event {
	return eventlog.Event{
		Pod:  key,
		Data: &eventpb.ManifestRemoved{Source: source, Path: h.path, Uid: h.uid},
	}
}

// rejectedEvent files the rejection under the pod it names, when known, so
// `ledgerlet history NS/NAME` shows why an edit did not take.
func rejectedEvent(source, path, pod, hash, reason string, raw []byte) eventlog.Event {
	ev := eventlog.Event{
		Pod:  pod,
		Data: &eventpb.ManifestRejected{Source: source, Path: path, ContentHash: hash, Reason: reason},
	}
	if hash != "" && len(raw) > 0 {
		ev.Blobs = [][]byte{raw}
	}
	return ev
}
