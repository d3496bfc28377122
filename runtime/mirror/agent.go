package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector"
)

// Defaults for Config.
const (
	DefaultLeaseDuration    = 40 * time.Second
	DefaultRenewInterval    = 10 * time.Second
	DefaultNodeStatusReport = 5 * time.Minute
)

const (
	// requestTimeout bounds every request but the watch, so a hung
	// apiserver is noticed as one that does not answer.
	requestTimeout = 10 * time.Second
	clientQPS      = 50
	clientBurst    = 100

	// Reconnecting is a cheap request to a local or regional apiserver, and
	// mirrors must be right within a second of it answering again; the
	// delay is jittered so a fleet does not reconnect in step.
	connectRetryInitial = 250 * time.Millisecond
	connectRetryMax     = time.Second
	// lostAfter: the watch failing this long is an apiserver that is gone
	// (recorded, which stops the mirror lane) rather than a blip.
	lostAfter = 3 * time.Second

	annotationConfigMirror = "kubernetes.io/config.mirror"
	leaseNamespace         = "kube-node-lease"
)

// Recorder appends events durably (*eventlog.Log satisfies it). An error
// means the log is closed for good.
type Recorder interface {
	Append(ctx context.Context, evs ...eventlog.Event) ([]uint64, error)
}

// Config configures an Agent.
type Config struct {
	// Kubeconfig authenticates as system:node:<NodeName> (group system:nodes).
	Kubeconfig string
	NodeName   string
	// NodeIP is the node's InternalIP address (and status.hostIP of pods).
	NodeIP string
	// Version of the agent, for the user agent and the Node's kubeletVersion.
	Version  string
	Recorder Recorder
	// Known returns, by pod key, the mirrors as the ledger holds them; the
	// observer appends only what differs from it (and from what it appended
	// itself in this run). Called from Run's goroutines; must be safe for that.
	Known func() map[string]projector.Mirror
	// RuntimeReady reports whether the container runtime answers (the
	// Node's Ready condition). Nil means always ready.
	RuntimeReady func() bool
	// RuntimeVersion is the Node's containerRuntimeVersion, e.g.
	// "containerd://1.7.2"; optional.
	RuntimeVersion func() string
	// RegisterNode creates the Node when it does not exist (kubelet
	// --register-node); without it a missing Node keeps the agent unconnected.
	RegisterNode bool
	// Taints are registered with a Node this agent creates (kubelet
	// --register-with-taints). Nil registers StaticPodsOnlyTaint, since the
	// agent runs no scheduled pods; an empty slice registers none.
	Taints []corev1.Taint
	Logger *slog.Logger

	LeaseDuration    time.Duration // Lease spec.leaseDurationSeconds; default 40s
	RenewInterval    time.Duration // Lease renewal period; default 10s
	NodeStatusReport time.Duration // Node status is patched at least this often; default 5m
}

// StaticPodsOnlyTaint keeps the scheduler from placing pods on a node whose
// agent only runs static pods (they would stay Pending forever).
func StaticPodsOnlyTaint() corev1.Taint {
	return corev1.Taint{Key: "node.ledgerlet.io/static-pods-only", Value: "true", Effect: corev1.TaintEffectNoSchedule}
}

// Agent is a node's apiserver side: Run keeps the node registered, its lease
// renewed and its mirrors observed; Execute carries out mirror intents.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	host  string
	facts nodeFacts
	// client serves every request but the watch and has requestTimeout;
	// watcher has none, as a watch lasts minutes.
	client, watcher kubeAPI

	// conn is the connection made in this run, nil before the first: the
	// Node's UID that mirrors must name as their owner.
	conn atomic.Pointer[connection]

	// Run's own state; Run is not reentrant.
	running atomic.Bool
	// started and runtimeSeen decide whether the runtime's readiness is a
	// fact of this process yet (see statusReporter.sync).
	started     time.Time
	runtimeSeen atomic.Bool
	recorded    connState           // connection condition as last appended
	appended    map[string]observed // by pod key: the observer's last word in this run
}

type connection struct {
	nodeUID types.UID
}

type connState int

const (
	stateNone connState = iota
	stateConnected
	stateDisconnected
)

// New checks the configuration and builds the clients; it contacts nothing.
func New(ctx context.Context, cfg Config) (*Agent, error) {
	if cfg.Kubeconfig == "" {
		return nil, errors.New("mirror agent: no kubeconfig")
	}
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("mirror agent: load kubeconfig %s: %w", cfg.Kubeconfig, err)
	}
	rc.QPS, rc.Burst = clientQPS, clientBurst
	rc.UserAgent = "ledgerlet/" + versionOr(cfg.Version)
	watchConfig := *rc
	rc.Timeout = requestTimeout
	client, err := newRESTAPI(rc)
	if err != nil {
		return nil, fmt.Errorf("mirror agent: client for %s: %w", rc.Host, err)
	}
	watcher, err := newRESTAPI(&watchConfig)
	if err != nil {
		return nil, fmt.Errorf("mirror agent: watch client for %s: %w", rc.Host, err)
	}
	return newAgent(ctx, cfg, rc.Host, client, watcher, readNodeFacts())
}

func newAgent(_ context.Context, cfg Config, host string, client, watcher kubeAPI, facts nodeFacts) (*Agent, error) {
	if cfg.NodeName == "" {
		return nil, errors.New("mirror agent: no node name")
	}
	if cfg.Recorder == nil {
		return nil, errors.New("mirror agent: no recorder")
	}
	if cfg.Known == nil {
		return nil, errors.New("mirror agent: no Known function")
	}
	if cfg.RuntimeReady == nil {
		cfg.RuntimeReady = func() bool { return true }
	}
	if cfg.RuntimeVersion == nil {
		cfg.RuntimeVersion = func() string { return "" }
	}
	if cfg.Taints == nil {
		cfg.Taints = []corev1.Taint{StaticPodsOnlyTaint()}
	}
	if cfg.LeaseDuration <= 0 {
		cfg.LeaseDuration = DefaultLeaseDuration
	}
	if cfg.RenewInterval <= 0 {
		cfg.RenewInterval = DefaultRenewInterval
	}
	if cfg.NodeStatusReport <= 0 {
		cfg.NodeStatusReport = DefaultNodeStatusReport
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Agent{
		cfg: cfg, log: cfg.Logger.With("component", "mirror", "apiserver", host),
		host: host, facts: facts, client: client, watcher: watcher,
		appended: map[string]observed{}, started: time.Now(),
	}, nil
}

// fatalError ends Run: the log refused an append, so nothing more can be recorded.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

// lostError ends a connection: the apiserver stopped answering or refused
// the node. Run records it and connects again.
type lostError struct{ reason string }

func (e *lostError) Error() string { return e.reason }

func lost(format string, args ...any) error {
	return &lostError{reason: oneLine(fmt.Sprintf(format, args...))}
}

// Run connects to the apiserver and, while connected, renews the node's
// lease, reports its status and observes its mirror pods, all in goroutines
// that end before Run returns. When the apiserver stops answering it records
// ApiserverDisconnected once and connects again with back-off (250 ms
// doubling to 1 s, jittered). It returns nil when ctx ends, or an error when the log refuses an
// append. Run it once.
func (a *Agent) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("mirror agent: Run called twice")
	}
	delay := connectRetryInitial
	for {
		connected, err := a.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if fe := (*fatalError)(nil); errors.As(err, &fe) {
			return fmt.Errorf("mirror agent: %w", err)
		}
		if err := a.recordDisconnected(ctx, err); err != nil {
			return fmt.Errorf("mirror agent: %w", err)
		}
		if connected {
			delay = connectRetryInitial
		}
		a.log.Warn("apiserver connection lost; retrying", "in", delay, "err", err)
		t := time.NewTimer(delay/2 + rand.N(delay/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(2*delay, connectRetryMax)
	}
}

// session is one connection: it registers (or finds) the Node, records
// ApiserverConnected, and runs the lease, status and observer loops until
// one of them fails (or ctx ends). connected tells whether it got that far.
func (a *Agent) session(ctx context.Context) (connected bool, err error) {
	node, err := a.ensureNode(ctx)
	if err != nil {
		return false, err
	}
	version := a.serverVersion(ctx)
	a.conn.Store(&connection{nodeUID: node.UID})
	if err := a.record(ctx, eventlog.Event{Data: &pb.ApiserverConnected{
		Host: a.host, NodeUid: string(node.UID), ServerVersion: version,
	}}); err != nil {
		return true, err
	}
	a.recorded = stateConnected
	a.log.Info("connected to the apiserver", "node", a.cfg.NodeName, "nodeUID", node.UID, "serverVersion", version)

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	loops := []func(context.Context) error{
		newLeaser(a, node).run,
		newStatusReporter(a, node).run,
		a.observe,
	}
	errs := make(chan error, len(loops))
	var wg sync.WaitGroup
	for _, loop := range loops {
		wg.Go(func() { errs <- loop(sctx) })
	}
	// The first loop to end ends the connection; the others follow.
	err = <-errs
	cancel()
	wg.Wait()
	if err == nil && ctx.Err() == nil {
		err = lost("connection ended")
	}
	return true, err
}

// recordDisconnected appends ApiserverDisconnected unless the last thing
// recorded about the connection already was that.
func (a *Agent) recordDisconnected(ctx context.Context, cause error) error {
	if a.recorded == stateDisconnected {
		return nil
	}
	reason := "unknown"
	if cause != nil {
		reason = oneLine(cause.Error())
	}
	if err := a.record(ctx, eventlog.Event{Data: &pb.ApiserverDisconnected{Host: a.host, Reason: reason}}); err != nil {
		return err
	}
	a.recorded = stateDisconnected
	return nil
}

// record appends events; a failure is fatal (the log is closed for good).
func (a *Agent) record(ctx context.Context, evs ...eventlog.Event) error {
	if len(evs) == 0 {
		return nil
	}
	if _, err := a.cfg.Recorder.Append(ctx, evs...); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &fatalError{fmt.Errorf("append %s: %w", evs[0].Type(), err)}
	}
	return nil
}

// serverVersion is the apiserver's version, "" if it will not say. Right
// after an apiserver start /version may be refused for a moment (its RBAC
// caches fill after /readyz), so it is asked a few times.
func (a *Agent) serverVersion(ctx context.Context) string {
	var err error
	for try := range 3 {
		if try > 0 && !sleep(ctx, time.Duration(try)*500*time.Millisecond) {
			break
		}
		var v *version.Info
		if v, err = a.client.ServerVersion(ctx); err == nil {
			return v.GitVersion
		}
	}
	a.log.Debug("server version unknown", "err", err)
	return ""
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// oneLine makes an error text fit one line of the log.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func versionOr(v string) string {
	if v == "" {
		return "dev"
	}
	return v
}
