// Package eventlog is ledgerlet's durable, append-only event log on bbolt.
//
// It owns the event envelope and its encoding, appends with group commit
// (an append returns only after the batch holding it is committed and
// fsynced), reads by sequence, time and pod, subscriptions that catch up and
// then tail with no gap, content-addressed blobs, opaque snapshots of
// projected state, retention, hot backup and integrity checks.
//
// It never interprets payloads beyond their type and never imports the
// projector, sources or runtime packages.
//
// # On disk (schema version 1)
//
//   - meta: "magic" = "ledgerlet", "schema" = uint32, "first" = first retained
//     seq, "indexed" = last seq covered by the time and pod indexes and by
//     "databytes" = bytes of event keys and values up to "indexed".
//   - events: seq (8 bytes big-endian, gapless from "first") → the event
//     (see codec.go: pod id, wall time, boottime, and the Record encoding
//     with lowercase hex runs packed). Pages are filled completely since
//     keys only grow. The wall time is the clock as read at the commit: it
//     steps with the clock (seq is the order); the boottime does not.
//   - time: time(8)+firstSeq(8) → empty, one entry per commit whose time
//     passes every earlier one (all events of a commit share its time), so
//     the keys' times and seqs both increase.
//   - pods: pod key → uint32 id. podidx: id(4)+firstSeq(8) → uvarint deltas
//     of the pod's following seqs (blocks of a few hundred seqs).
//   - blobs: sha256 hex → bytes, written in the commit of their event.
//   - snapshots: seq(8) → opaque state. Kept: the newest three, and in a
//     compacted log the one at exactly "first"-1, which replay starts from
//     (Compact writes it in the transaction that moves "first").
//
// The time and pod indexes and "databytes" are derived from the events and
// written only every few dozen commits (derived.go): most commits touch the
// events bucket alone. Readers scan the few events after "indexed"; Open
// rebuilds the writer's pending index entries from them, so a crash loses
// nothing. bbolt's freelist is stored in the file, so Open does not walk it.
//
// Only one goroutine writes: Append calls queue their events and the writer
// commits everything queued in one transaction, waiting briefly for
// concurrent appenders released by the previous commit to rejoin (adaptive
// group commit). Snapshots and compactions run on the same writer.
package eventlog
