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
package eventlog
