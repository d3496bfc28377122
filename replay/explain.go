package replay

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector"
)

// Explanation says why a pod is as it is at a point, from the ledger alone.
type Explanation struct {
	Pod     string    `json:"pod"`
	At      time.Time `json:"at"`
	Seq     uint64    `json:"seq"` // the last event folded
	Status  string    `json:"status"`
	Summary string    `json:"summary"` // one line: the state, and its nearest causes
	// Reasons are the summary's clauses, the pod's own state first.
	Reasons []string `json:"reasons"`
	// Facts are the recorded facts that led there, newest first.
	Facts []Fact            `json:"facts"`
	View  projector.PodView `json:"view"`
}

// Fact is one recorded fact of an explanation.
type Fact struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	Text string    `json:"text"`
	Diff string    `json:"diff,omitempty"`
}

// ErrUnknownPod: the log holds nothing of the pod up to the point asked.
var ErrUnknownPod = errors.New("unknown pod")

// ExplainOptions names the pod and the point.
type ExplainOptions struct {
	Pod string // "namespace/name"
	// At is the instant to explain; zero means the end of the log. Now is
	// the time back-offs are judged at (zero: At, or the last event's time):
	// the live agent passes the wall clock.
	At, Now time.Time
	// Boottime is CLOCK_BOOTTIME read with Now by the live agent (whose
	// log's last event is of this boot): with it, back-offs are judged on
	// the steady clock even after a wall clock step. Zero: Now's wall time
	// stands in (see projector.State.SteadyAt).
	Boottime int64
}

// Explain reads the state at the point and the pod's history up to it, and
// says why the pod is as it is, newest cause first.
func Explain(ctx context.Context, r Reader, opt ExplainOptions) (*Explanation, error) {
	upTo, err := Point{Time: opt.At}.Resolve(r)
	if err != nil {
		return nil, err
	}
	st, err := StateAt(ctx, r, upTo)
	if err != nil {
		return nil, err
	}
	now := opt.Now
	if now.IsZero() {
		now = opt.At
	}
	if now.IsZero() {
		now = time.Unix(0, st.Time).UTC()
	}
	h := &podHistory{pod: opt.Pod, exits: map[string][]exitFact{}, intents: map[uint64]intentFact{}}
	first := r.FirstSeq()
	if upTo >= first {
		if err := r.ReadPod(ctx, opt.Pod, first, upTo, func(e eventlog.Event) error {
			h.add(e)
			return nil
		}); err != nil {
			return nil, fmt.Errorf("explain %s: read its history: %w", opt.Pod, err)
		}
	}
	p := st.Pods[opt.Pod]
	if p == nil && len(h.versions) == 0 && len(h.rejections) == 0 {
		return nil, fmt.Errorf("%w %s: the log holds no event of it up to seq %d", ErrUnknownPod, opt.Pod, upTo)
	}
	c := &explainCase{st: st, pod: p, h: h, now: now, steady: st.SteadyAt(now.UnixNano(), opt.Boottime), x: &Explanation{Pod: opt.Pod, At: now, Seq: upTo}}
	if p == nil {
		c.gone()
	} else {
		views := st.ViewsAt(c.steady)
		for _, v := range views {
			if v.Namespace+"/"+v.Name == opt.Pod {
				c.view = v
			}
		}
		c.x.View, c.x.Status = c.view, c.view.Status
		for _, rule := range explainRules {
			rule(c)
		}
	}
	sort.SliceStable(c.x.Facts, func(i, j int) bool {
		if !c.x.Facts[i].Time.Equal(c.x.Facts[j].Time) {
			return c.x.Facts[i].Time.After(c.x.Facts[j].Time)
		}
		return c.x.Facts[i].Seq > c.x.Facts[j].Seq
	})
	c.x.Facts = dedupeFacts(c.x.Facts)
	c.x.Reasons = c.clauses
	if c.x.Reasons == nil {
		c.x.Reasons = []string{}
	}
	c.x.Summary = strings.Join(c.clauses, "; ")
	return c.x, nil
}

// explainRules each look at one aspect of the pod and add a clause to the
// summary and the facts behind it. The order is the summary's: the pod's
// own state first, then what surrounds it.
//
// A probe failure explains a restart (liveness, startup) or a container
// that runs but is not ready (readiness): see probes.
var explainRules = []func(*explainCase){
	(*explainCase).agentDown,
	(*explainCase).removal,
	(*explainCase).runtimeLost,
	(*explainCase).containers,
	(*explainCase).probes,
	(*explainCase).rejectedEdit,
	(*explainCase).lastChange,
	(*explainCase).mirror,
}

type explainCase struct {
	st      *projector.State
	pod     *projector.Pod
	view    projector.PodView
	h       *podHistory
	now     time.Time
	steady  int64 // now on the state's steady clock: what deadlines compare with
	x       *Explanation
	clauses []string
}

func (c *explainCase) say(format string, args ...any) {
	c.clauses = append(c.clauses, fmt.Sprintf(format, args...))
}

func (c *explainCase) fact(seq uint64, t time.Time, diff, format string, args ...any) {
	c.x.Facts = append(c.x.Facts, Fact{Seq: seq, Time: t, Text: fmt.Sprintf(format, args...), Diff: diff})
}

func dedupeFacts(fs []Fact) []Fact {
	seen := map[string]bool{}
	out := fs[:0]
	for _, f := range fs {
		k := fmt.Sprint(f.Seq, "|", f.Text)
		if !seen[k] {
			seen[k] = true
			out = append(out, f)
		}
	}
	if out == nil {
		return []Fact{}
	}
	return out
}

// --- the pod's history, as read from the log -------------------------------

type podHistory struct {
	pod        string
	versions   []versionFact
	rejections []rejectFact
	removed    *removeFact
	exits      map[string][]exitFact // by container name, oldest first
	intents    map[uint64]intentFact // by seq, until answered
	failures   []failFact            // failed outcomes, oldest first
	mirror     []failFact            // failed mirror outcomes
	// probed: the newest probe transition by container instance and kind.
	probed map[string]probeFact
}

type probeFact struct {
	seq    uint64
	at     time.Time
	result pb.ProbeResult
	output string
}

type versionFact struct {
	seq         uint64
	at          time.Time
	uid, path   string
	spec        []byte
	diffText    string
	changed     bool
	restarts    int // exits of this version
	firstExitAt time.Time
}

type rejectFact struct {
	seq          uint64
	at           time.Time
	path, reason string
}

type removeFact struct {
	seq  uint64
	at   time.Time
	path string
}

type exitFact struct {
	seq               uint64
	at                time.Time
	uid, id           string
	code              int32
	reason            string
	attempt           uint32
	started, finished int64
}

type intentFact struct {
	seq    uint64
	at     time.Time
	intent *pb.Intent
}

type failFact struct {
	seq    uint64
	at     time.Time
	intent intentFact
	reason string
	err    string
}

func (h *podHistory) add(e eventlog.Event) {
	switch d := e.Data.(type) {
	case *pb.ManifestAdded:
		h.version(e, d.Uid, d.Path, d.PodJson, false)
	case *pb.ManifestChanged:
		h.version(e, d.Uid, d.Path, d.PodJson, true)
	case *pb.ManifestRemoved:
		h.removed = &removeFact{seq: e.Seq, at: e.Time, path: d.Path}
	case *pb.ManifestRejected:
		h.rejections = append(h.rejections, rejectFact{seq: e.Seq, at: e.Time, path: d.Path, reason: d.Reason})
	case *pb.ContainerObserved:
		if d.State != pb.StateExited {
			return
		}
		ex := h.exits[d.Container]
		for _, x := range ex {
			if x.id == d.ContainerId {
				return // seen exited already (a relist repeating it)
			}
		}
		h.exits[d.Container] = append(ex, exitFact{seq: e.Seq, at: e.Time, uid: d.Uid, id: d.ContainerId, code: d.ExitCode,
			reason: d.Reason, attempt: d.Attempt, started: d.StartedUnixNano, finished: d.FinishedUnixNano})
		if n := len(h.versions); n > 0 && h.versions[n-1].uid == d.Uid && d.Reason != "Killed" {
			v := &h.versions[n-1]
			v.restarts++
			if v.firstExitAt.IsZero() {
				v.firstExitAt = e.Time
			}
		}
	case *pb.ContainerProbed:
		if h.probed == nil {
			h.probed = map[string]probeFact{}
		}
		h.probed[d.ContainerId+"/"+d.Probe] = probeFact{seq: e.Seq, at: e.Time, result: pb.ProbeResult(d.Result), output: d.Output}
	case *pb.Intent:
		h.intents[e.Seq] = intentFact{seq: e.Seq, at: e.Time, intent: d}
	case *pb.Outcome:
		in, ok := h.intents[d.IntentSeq]
		delete(h.intents, d.IntentSeq)
		if !ok || d.Ok || d.Reason == pb.ReasonReconciled {
			return
		}
		f := failFact{seq: e.Seq, at: e.Time, intent: in, reason: d.Reason, err: d.Error}
		if pb.Action(in.intent.Action).Lane() == pb.LaneMirror {
			h.mirror = append(h.mirror, f)
		} else {
			h.failures = append(h.failures, f)
		}
	}
}

func (h *podHistory) version(e eventlog.Event, uid, path string, spec []byte, changed bool) {
	var prev []byte
	if n := len(h.versions); n > 0 {
		prev = h.versions[n-1].spec
	}
	h.versions = append(h.versions, versionFact{seq: e.Seq, at: e.Time, uid: uid, path: path, spec: spec, changed: changed,
		diffText: ManifestDiff(prev, spec)})
	h.removed = nil
}

// --- rules -------------------------------------------------------------------

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func ns(n int64) time.Time { return time.Unix(0, n).UTC() }

// gone: the state no longer holds the pod (removed and torn down).
func (c *explainCase) gone() {
	c.x.Status = "Gone"
	if r := c.h.removed; r != nil {
		c.say("gone: its manifest %s was removed at %s and everything of it was torn down", r.path, ts(r.at))
		c.fact(r.seq, r.at, "", "manifest %s removed", r.path)
	} else {
		c.say("gone: nothing of it is desired or left on the node")
	}
	if n := len(c.h.versions); n > 0 {
		v := c.h.versions[n-1]
		c.fact(v.seq, v.at, v.diffText, "last version %s recorded from %s", shortUID(v.uid), v.path)
	}
}

func (c *explainCase) agentDown() {
	a := c.st.Agent
	if a.Running || a.Starts == 0 {
		return
	}
	c.say("the agent is not running (it stopped at %s: %s); this is the state it last recorded", ts(ns(a.StoppedAt)), a.StopReason)
	c.fact(0, ns(a.StoppedAt), "", "agent stopped: %s", a.StopReason)
}

func (c *explainCase) removal() {
	p := c.pod
	if !p.Removed {
		return
	}
	r := c.h.removed
	if r == nil {
		c.say("being removed: no configured source provides it any more")
	} else {
		c.say("being removed: its manifest %s was removed at %s", r.path, ts(r.at))
		c.fact(r.seq, r.at, "", "manifest %s removed: the pod is no longer desired", r.path)
	}
	// What the teardown waits for: a pending stop with its grace period,
	// or the next step.
	for _, seq := range sortedSeqs(c.st.Pending) {
		in := c.st.Pending[seq]
		if in.Pod != c.x.Pod {
			continue
		}
		switch in.Action {
		case pb.ActionStopContainer:
			deadline := ns(in.At).Add(time.Duration(in.Grace) * time.Second)
			if c.now.Before(deadline) {
				c.say("stopping container `%s` since %s: SIGTERM sent, grace period %ds, SIGKILL at %s (%s from now)",
					in.Container, ts(ns(in.At)), in.Grace, ts(deadline), roundDuration(deadline.Sub(c.now)))
			} else {
				c.say("stopping container `%s` since %s: its grace period of %ds ended at %s, SIGKILL due", in.Container, ts(ns(in.At)), in.Grace, ts(deadline))
			}
			c.fact(seq, ns(in.At), "", "intent StopContainer %s (grace %ds)", in.Container, in.Grace)
			return
		case pb.ActionStopSandbox, pb.ActionRemoveSandbox, pb.ActionRemoveContainer, pb.ActionCleanupPod:
			c.say("teardown step %s in progress since %s", in.Action, ts(ns(in.At)))
			c.fact(seq, ns(in.At), "", "intent %s", in.Action)
			return
		}
	}
	running := 0
	for _, ct := range p.Containers {
		if ct.State != pb.StateExited {
			running++
		}
	}
	switch {
	case running > 0:
		c.say("%d container(s) still to stop", running)
	case len(p.Containers) > 0 || len(p.Sandboxes) > 0:
		c.say("containers stopped; %d container(s) and %d sandbox(es) left to remove", len(p.Containers), len(p.Sandboxes))
	}
}

func sortedSeqs[V any](m map[uint64]V) []uint64 {
	out := make([]uint64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (c *explainCase) runtimeLost() {
	rt := c.st.Runtime
	if !c.st.Agent.Running || rt.Connected {
		return
	}
	if rt.Since == 0 {
		c.say("the container runtime has not answered yet in this run (started %s); nothing is started or stopped until it does", ts(ns(c.st.Agent.StartedAt)))
		return
	}
	c.say("the container runtime at %s is unreachable since %s (%s, %s ago): what it last said stands, nothing is started or stopped until it answers",
		rt.Endpoint, ts(ns(rt.Since)), rt.Reason, roundDuration(c.now.Sub(ns(rt.Since))))
	c.fact(0, ns(rt.Since), "", "runtime at %s lost: %s", rt.Endpoint, rt.Reason)
}

// containers explains each container that does not run; all running is
// said once.
func (c *explainCase) containers() {
	if c.pod.Removed {
		return
	}
	running, apps := 0, 0
	for _, cv := range c.view.Containers {
		if !cv.Init {
			apps++
		}
		if cv.State == pb.StateRunning {
			running++
			continue
		}
		c.container(cv)
	}
	if apps > 0 && running == len(c.view.Containers) {
		since := int64(0)
		for _, cv := range c.view.Containers {
			since = max(since, cv.StartedAt)
		}
		what := fmt.Sprintf("all %d containers run", apps)
		if apps == 1 {
			what = fmt.Sprintf("container `%s` runs", c.view.Containers[0].Name)
		}
		if !c.st.Runtime.Connected {
			what += " as the runtime last showed it"
		}
		if since > 0 {
			what += fmt.Sprintf(", started at %s (%s ago)", ts(ns(since)), roundDuration(c.now.Sub(ns(since))))
		}
		if c.view.Restarts > 0 {
			what += fmt.Sprintf(", %s in all", plural(int(c.view.Restarts), "restart"))
		}
		c.say("running: %s", what)
	}
}

func ordinal(n int) string {
	suffix := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suffix = "st"
	case n%10 == 2:
		suffix = "nd"
	case n%10 == 3:
		suffix = "rd"
	}
	return fmt.Sprintf("%d%s", n, suffix)
}

func (c *explainCase) container(cv projector.ContainerView) {
	p := c.pod
	name := cv.Name
	switch {
	case cv.Reason == "CrashLoopBackOff" || (cv.State == pb.StateExited && p.Backoff[name] != nil):
		exits := c.exitsOfCurrent(name)
		if len(exits) == 0 {
			c.say("not running: container `%s` is in back-off", name)
			return
		}
		last := exits[len(exits)-1]
		window := 5 * time.Minute
		recent := 0
		for _, x := range exits {
			if !x.at.Before(last.at.Add(-window)) {
				recent++
			}
		}
		clause := fmt.Sprintf("not running: container `%s` exited %d at %s (%s time in %s)", name, last.code, ts(last.at), ordinal(recent), roundDuration(window))
		if recent == 1 {
			clause = fmt.Sprintf("not running: container `%s` exited %d at %s", name, last.code, ts(last.at))
		}
		if b := p.Backoff[name]; b != nil && cv.Reason == "CrashLoopBackOff" {
			clause += fmt.Sprintf(", in back-off until %s (%s after the exit, %s from now)", ts(ns(c.st.WallOf(b.NextStart))), roundDuration(time.Duration(b.Delay)),
				roundDuration(time.Duration(b.NextStart-c.steady)))
		} else if cv.State == pb.StateExited {
			clause += ", restart due now"
		}
		c.say("%s", clause)
		for i := len(exits) - 1; i >= 0 && i >= len(exits)-5; i-- {
			x := exits[i]
			ran := ""
			if x.started > 0 && x.finished >= x.started {
				ran = fmt.Sprintf(" after running %s", roundDuration(time.Duration(x.finished-x.started)))
			}
			c.fact(x.seq, x.at, "", "container %s (restart %d) exited %d%s%s", name, x.attempt, x.code, reasonSuffix(x.reason), ran)
		}
		if len(exits) > 5 {
			c.fact(exits[0].seq, exits[0].at, "", "first exit of this version (%d in all)", len(exits))
		}
	case cv.State == "waiting" && cv.Reason != "":
		f := p.Failures[name]
		fails := c.failuresOf(name)
		what := ""
		if f != nil {
			what = f.Message
		}
		switch cv.Reason {
		case "ImagePullBackOff", "ErrImagePull", "ErrImageNeverPull":
			image := ""
			if n := len(fails); n > 0 {
				image = fails[n-1].intent.intent.Image
			}
			clause := fmt.Sprintf("not running: the image `%s` of container `%s` cannot be pulled (%s): %s", image, name, cv.Reason, what)
			if f != nil {
				clause += fmt.Sprintf("; %d attempts since %s", f.Count, ts(firstFailure(fails)))
				if f.NextTry > c.steady {
					clause += fmt.Sprintf(", next at %s", ts(ns(c.st.WallOf(f.NextTry))))
				}
			}
			c.say("%s", clause)
		default:
			clause := fmt.Sprintf("not running: container `%s` cannot start (%s): %s", name, cv.Reason, what)
			if f != nil && f.NextTry > c.steady {
				clause += fmt.Sprintf("; retried at %s", ts(ns(c.st.WallOf(f.NextTry))))
			}
			c.say("%s", clause)
		}
		for i := len(fails) - 1; i >= 0 && i >= len(fails)-5; i-- {
			x := fails[i]
			c.fact(x.seq, x.at, "", "%s %s failed: %s: %s", x.intent.intent.Action, name, x.reason, x.err)
		}
	case cv.State == pb.StateExited:
		exits := c.exitsOfCurrent(name)
		clause := fmt.Sprintf("container `%s` exited %d%s", name, cv.ExitCode, reasonSuffix(cv.Reason))
		if n := len(exits); n > 0 {
			clause = fmt.Sprintf("container `%s` exited %d%s at %s", name, cv.ExitCode, reasonSuffix(cv.Reason), ts(exits[n-1].at))
			c.fact(exits[n-1].seq, exits[n-1].at, "", "container %s exited %d%s", name, cv.ExitCode, reasonSuffix(cv.Reason))
		}
		if cv.Init {
			clause += " (init container, done)"
		} else if spec := p.DecodeSpec(); spec != nil && spec.Spec.RestartPolicy != "" && spec.Spec.RestartPolicy != "Always" {
			clause += fmt.Sprintf(" and is not restarted (restartPolicy %s)", spec.Spec.RestartPolicy)
		}
		if !cv.Init {
			c.say("%s", clause)
		}
	default:
		clause := fmt.Sprintf("not running: container `%s` has not started", name)
		if la := p.LastAction; la != nil && la.Container == name && !la.Done {
			clause += fmt.Sprintf(" (%s planned at %s, no outcome yet)", la.Action, ts(ns(la.At)))
		} else if p.LastAction != nil && !p.LastAction.Done {
			clause += fmt.Sprintf(" (waiting for %s %s, planned at %s)", p.LastAction.Action, p.LastAction.Container, ts(ns(p.LastAction.At)))
		}
		c.say("%s", clause)
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return " (" + r + ")"
}

func firstFailure(fs []failFact) time.Time {
	// The failures of the current streak: after the newest success nothing
	// is recorded here, so the oldest of the trailing run with no gap.
	if len(fs) == 0 {
		return time.Time{}
	}
	return fs[0].at
}

// exitsOfCurrent are the exits of the pod's current version of a container.
func (c *explainCase) exitsOfCurrent(name string) []exitFact {
	var out []exitFact
	for _, x := range c.h.exits[name] {
		if x.uid == c.pod.UID {
			out = append(out, x)
		}
	}
	return out
}

func (c *explainCase) failuresOf(name string) []failFact {
	var out []failFact
	for _, f := range c.h.failures {
		if f.intent.intent.Container == name && f.intent.intent.Uid == c.pod.UID {
			out = append(out, f)
		}
	}
	return out
}

// rejectedEdit: the newest edit was refused and an older version runs.
func (c *explainCase) rejectedEdit() {
	p := c.pod
	if p.LastRejection == "" || len(c.h.rejections) == 0 {
		return
	}
	r := c.h.rejections[len(c.h.rejections)-1]
	keeps := "no version of it was ever accepted"
	if n := len(c.h.versions); n > 0 && p.Spec != nil {
		v := c.h.versions[n-1]
		keeps = fmt.Sprintf("version %s (accepted at %s) keeps running", shortUID(v.uid), ts(v.at))
	}
	c.say("the edit of %s at %s was rejected: %s; %s", r.path, ts(r.at), r.reason, keeps)
	c.fact(r.seq, r.at, "", "manifest %s rejected: %s", r.path, r.reason)
}

// lastChange: when the current version was accepted, its diff, and how
// the previous version fared.
func (c *explainCase) lastChange() {
	n := len(c.h.versions)
	if n == 0 || c.pod.Removed {
		return
	}
	v := c.h.versions[n-1]
	verb := "added"
	if v.changed {
		verb = "changed"
	}
	diff := ""
	if v.changed {
		diff = v.diffText // an addition's diff is the whole manifest: noise here
	}
	c.fact(v.seq, v.at, diff, "manifest %s %s: version %s", v.path, verb, shortUID(v.uid))
	if !v.changed {
		c.say("the manifest was added at %s (%s ago) and not changed since", ts(v.at), roundDuration(c.now.Sub(v.at)))
		return
	}
	c.say("the manifest was last changed at %s (%s ago, diff below)", ts(v.at), roundDuration(c.now.Sub(v.at)))
	if n >= 2 {
		prev := c.h.versions[n-2]
		ran := v.at.Sub(prev.at)
		switch prev.restarts {
		case 0:
			c.say("the previous version (%s) ran %s without a restart", shortUID(prev.uid), roundDuration(ran))
		default:
			c.say("the previous version (%s) ran %s with %s", shortUID(prev.uid), roundDuration(ran), plural(prev.restarts, "restart"))
		}
		c.fact(prev.seq, prev.at, "", "previous version %s accepted", shortUID(prev.uid))
	}
}

// mirror: whether the pod's mirror in the apiserver is in sync, or why not.
func (c *explainCase) mirror() {
	m := c.view.Mirror
	if !c.st.Agent.Apiserver || m == nil || m.State == "synced" {
		return
	}
	as := c.st.Apiserver
	if !as.Connected {
		if as.Since > 0 {
			c.say("mirror pod not in sync: the apiserver %s is unreachable since %s (%s); the pod runs on regardless and the mirror catches up when it answers",
				as.Host, ts(ns(as.Since)), as.Reason)
			c.fact(0, ns(as.Since), "", "apiserver %s lost: %s", as.Host, as.Reason)
		} else {
			c.say("mirror pod not in sync: the apiserver has not answered in this run yet; the pod runs on regardless")
		}
		return
	}
	clause := "mirror pod " + m.State
	if n := len(c.h.mirror); n > 0 {
		f := c.h.mirror[n-1]
		clause += fmt.Sprintf(": the last %s failed at %s (%s: %s)", f.intent.intent.Action, ts(f.at), f.reason, f.err)
		c.fact(f.seq, f.at, "", "%s failed: %s: %s", f.intent.intent.Action, f.reason, f.err)
	}
	c.say("%s", clause)
}

// WriteText renders the explanation for a person.
func (x *Explanation) WriteText(w interface{ Write([]byte) (int, error) }) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s at %s (seq %d): %s\n\n", x.Pod, ts(x.At), x.Seq, x.Status)
	for _, cl := range x.Reasons {
		fmt.Fprintf(&b, "  %s\n", cl)
	}
	if len(x.Facts) > 0 {
		b.WriteString("\nrecorded facts, newest first:\n")
	}
	for _, f := range x.Facts {
		seq := "      "
		if f.Seq > 0 {
			seq = fmt.Sprintf("#%-5d", f.Seq)
		}
		fmt.Fprintf(&b, "  %s %s  %s\n", ts(f.Time), seq, f.Text)
		if f.Diff != "" {
			for _, l := range strings.Split(f.Diff, "\n") {
				fmt.Fprintf(&b, "        %s\n", l)
			}
		}
	}
	_, err := w.Write([]byte(b.String()))
	return err
}

// probes explains what the container probes did: the newest instance that
// ended because its liveness or startup probe failed, and a running
// container whose readiness probe fails.
func (c *explainCase) probes() {
	if c.pod.Removed {
		return
	}
	for _, cv := range c.view.Containers {
		name := cv.Name
		if exits := c.exitsOfCurrent(name); len(exits) > 0 {
			last := exits[len(exits)-1]
			for _, kind := range []pb.ProbeKind{pb.ProbeLiveness, pb.ProbeStartup} {
				f, ok := c.h.probed[last.id+"/"+string(kind)]
				if !ok || f.result != pb.ProbeFailure || f.at.After(last.at) {
					continue
				}
				c.say("container `%s` was killed by its %s probe at %s (%s), then restarted under its back-off",
					name, kind, ts(f.at), oneLineOutput(f.output))
				c.fact(f.seq, f.at, "", "%s probe of container %s failed: %s", kind, name, oneLineOutput(f.output))
				break
			}
		}
		if cv.State != pb.StateRunning || cv.ContainerID == "" {
			continue
		}
		if f, ok := c.h.probed[cv.ContainerID+"/"+string(pb.ProbeReadiness)]; ok && f.result == pb.ProbeFailure {
			c.say("not ready: the readiness probe of container `%s` fails since %s (%s)", name, ts(f.at), oneLineOutput(f.output))
			c.fact(f.seq, f.at, "", "readiness probe of container %s failed: %s", name, oneLineOutput(f.output))
		}
	}
}

func oneLineOutput(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	if s == "" {
		return "no output"
	}
	return s
}
