// Package replay reads a log offline or live: the projected state at a seq or
// an instant (latest snapshot plus the folded tail), diffs between two
// points, one pod's timeline with manifest diffs, and verification that the
// recorded history re-derives exactly. It only reads; it never appends.
package replay
