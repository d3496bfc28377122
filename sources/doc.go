// Package sources turns pod manifests into facts in the event log.
//
// It owns the manifest sources of a node — a file or directory
// (--pod-manifest-path, watched with inotify and re-listed periodically)
// and a URL (--manifest-url, polled) — and the parsing, defaulting,
// validation and identity (name suffix, namespace, UID, config annotations)
// of static pods, compatible with the kubelet.
//
// A source only appends facts: ManifestAdded, ManifestChanged,
// ManifestRemoved, ManifestRejected, SourceSynced, SourceUnavailable and
// SourceAvailable, with the raw manifest bytes as a content-addressed blob.
// It never touches the container runtime or the apiserver, never decides
// what runs, and never removes a pod because its manifest became invalid or
// its URL became unreachable: bad input is recorded as rejected, and the last
// good version stays desired. A manifest path that does not exist or cannot
// be listed is unavailable, not empty: only a listing that happened removes
// pods. Sources keep no state that matters across a
// restart: they start from [Known], which the caller derives from the log, so
// a restart over unchanged manifests appends nothing.
package sources
