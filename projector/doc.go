// Package projector holds ledgerlet's pure core: folds from log events to
// state (desired pods, observed sandboxes and containers, mirrors, agent and
// source conditions) and, later, the planner that turns state into actions.
//
// Everything here is a function of the events alone. It must never do I/O,
// read a clock, use randomness or depend on map iteration order: time is the
// timestamp of the event being folded. That is what makes a replay of the same
// events byte-identical and lets `replay verify` re-derive every decision.
package projector
