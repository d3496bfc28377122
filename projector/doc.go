// Package projector is ledgerlet's pure core: folds from log events to state
// (desired pods, observed sandboxes and containers with their probe results
// and hooks, mirrors, agent, source, runtime and apiserver conditions,
// back-off and failures) and the planner,
// which turns state and a time into decisions, per pod and per lane (runtime,
// mirror), each recorded as an Intent.
//
// Everything here is a function of the events alone. It must never do I/O,
// read a clock, use randomness or depend on map iteration order: time is the
// timestamp of the event being folded, or the time a plan is made at, passed
// in. That is what makes a replay of the same events byte-identical and lets
// `replay verify` re-derive every decision.
//
// Files: state.go (the state and its canonical encoding), fold.go (Apply:
// one arm per event type), planner.go (Plan: teardown, init containers and
// sidecars, probe kills, hooks, restarts), view.go (what `pods` shows, and
// whether a container is started and ready), qos.go (the QoS class),
// podstatus.go (the status a mirror pod publishes).
package projector
