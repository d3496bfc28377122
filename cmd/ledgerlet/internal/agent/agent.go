// Package agent is the ledgerlet process: Run builds every long-running
// actor of `ledgerlet run` into one oklog/run group, so reading Run lists
// everything that runs. It owns the live projection cache and its snapshot
// policy, retention, metrics, node facts and the data-dir layout; it decides
// nothing about pods (that is the projector's planner).
package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ledgerlet/ledgerlet/cmd/ledgerlet/internal/api"
	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/replay"
	"github.com/ledgerlet/ledgerlet/runtime"
	"github.com/ledgerlet/ledgerlet/runtime/containerlogs"
)

// Config is everything `ledgerlet run` was told.
type Config struct {
	Version  string
	Flags    []string // the command line's flags, recorded in AgentStarted
	NodeName string   // lower-cased
	NodeIP   string   // the node's address (status.hostIP); empty: detected

	PodManifestPath string
	// StrictManifestPermissions refuses manifests others could have written.
	StrictManifestPermissions bool
	ManifestURL               string
	ManifestURLHeaders        []string
	FileCheckFrequency        time.Duration
	HTTPCheckFrequency        time.Duration

	RuntimeEndpoint string
	RelistPeriod    time.Duration
	// RuntimeEvents reads an object as soon as the runtime reports a change;
	// the relist then runs every EventedRelistPeriod as a safety net.
	RuntimeEvents       bool
	EventedRelistPeriod time.Duration
	PodLogsDir          string
	// ContainerLogMaxSize and ContainerLogMaxFiles bound each container's
	// log under PodLogsDir (the kubelet's containerLogMaxSize/Files).
	ContainerLogMaxSize  int64
	ContainerLogMaxFiles int
	CgroupDriver         string
	// SeccompRoot holds Localhost seccomp profiles (the kubelet's <root-dir>/seccomp).
	SeccompRoot string
	CgroupRoot  string

	Kubeconfig   string
	RegisterNode bool

	DataDir        string
	HealthzBind    string // empty: no health server
	SnapshotEvery  uint64
	RetentionAge   time.Duration
	RetentionBytes int64

	Logger *slog.Logger
	// WallClock is the wall clock events are stamped and intents planned
	// with; nil means time.Now. The fault suite steps it (see run.go);
	// deadlines never depend on it.
	WallClock func() time.Time
}

// ConfigError is a configuration the agent cannot start with: a usage error
// (exit 2), as opposed to a failure while running.
type ConfigError struct{ Err error }

func (e ConfigError) Error() string { return e.Err.Error() }
func (e ConfigError) Unwrap() error { return e.Err }

func configErrorf(format string, args ...any) error {
	return ConfigError{fmt.Errorf(format, args...)}
}

// Paths in the data dir.
const (
	ledgerFile = "ledger.db"
	socketFile = "ledgerlet.sock"
)

// Run runs the agent until ctx ends (a signal) or an actor fails, then
// records the stop. Every long-running actor is added below.
func Run(ctx context.Context, cfg Config) (err error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if err := prepareDataDir(cfg.DataDir); err != nil {
		return err
	}
	log, err := eventlog.Open(filepath.Join(cfg.DataDir, ledgerFile), eventlog.Options{Logger: logger, LockTimeout: 2 * time.Second,
		Clock: cfg.WallClock, Boottime: eventlog.Boottime})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := log.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close log: %w", cerr)
		}
	}()

	started := time.Now()
	st, err := replay.StateAt(ctx, log, log.LastSeq())
	if err != nil {
		return fmt.Errorf("rebuild state from %s: %w", log.Path(), err)
	}
	logger.Info("state rebuilt from log", "seq", st.Seq, "pods", len(st.Pods), "took", time.Since(started))
	// After the rebuild, whose garbage the default target clears faster.
	defer setRunningGCPercent(os.Getenv)()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rec := newMeteredLog(log, reg)
	proj := newProjection(log, st, cfg.SnapshotEvery, logger, reg)

	srcs, err := newSources(cfg, rec, proj.Known(), logger)
	if err != nil {
		return err
	}
	nodeIP := cfg.NodeIP
	if nodeIP == "" {
		nodeIP = detectHostIP()
	}
	rt, err := runtime.New(runtime.Config{
		Endpoint: cfg.RuntimeEndpoint, LogRoot: cfg.PodLogsDir, DataDir: cfg.DataDir,
		CgroupRoot: cfg.CgroupRoot, CgroupDriver: cfg.CgroupDriver, ManagedBy: cfg.NodeName, SeccompRoot: cfg.SeccompRoot,
		HostIP: nodeIP, Logger: logger,
	})
	if err != nil {
		return configErrorf("--container-runtime-endpoint: %v", err)
	}
	defer rt.Close()
	effectors := map[pb.Lane]runtime.Effector{pb.LaneRuntime: rt}
	mirrors, err := newMirrors(ctx, cfg, nodeIP, rec, proj, logger)
	if err != nil {
		return err
	}
	if mirrors != nil {
		effectors[pb.LaneMirror] = mirrors
	}

	startSeqs, err := rec.Append(ctx, eventlog.Event{Data: &pb.AgentStarted{
		Version: cfg.Version, NodeName: cfg.NodeName, Flags: cfg.Flags, BootTimeUnix: bootTime(),
		Pid: int64(os.Getpid()), BootId: bootID(), Sources: srcs.configured(), NodeIp: nodeIP,
		Apiserver: mirrors != nil,
	}})
	if err != nil {
		return fmt.Errorf("record agent start: %w", err)
	}

	sockPath := filepath.Join(cfg.DataDir, socketFile)
	sock, err := api.Listen(sockPath)
	if err != nil {
		return err
	}
	defer os.Remove(sockPath)

	var g run.Group
	actor := func(name string, fn func(context.Context) error) {
		actx, cancel := context.WithCancel(ctx)
		g.Add(func() error {
			if err := fn(actx); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		}, func(error) { cancel() })
	}

	// The process's lifetime: a signal (ctx) ends the group.
	stopReason := "stopped"
	actor("signals", func(actx context.Context) error {
		<-actx.Done()
		if ctx.Err() != nil {
			stopReason = "signal"
		}
		return nil
	})
	// A log that failed a commit refuses every append: the agent exits and
	// the next run recovers from the file.
	actor("log", func(actx context.Context) error {
		select {
		case <-log.Failed():
			return fmt.Errorf("the log failed and refuses appends: %w", log.Err())
		case <-actx.Done():
			return nil
		}
	})
	actor("projection", proj.Run)
	actor("api", (&api.Server{Log: log, State: proj, Logger: logger}).Serve(sock))
	if cfg.HealthzBind != "" {
		// Bound now when it can be, so /healthz answers once the socket does.
		hs := &healthServer{addr: cfg.HealthzBind, reg: reg, logger: logger}
		hs.l, _ = net.Listen("tcp", cfg.HealthzBind)
		actor("healthz", hs.Run)
	}
	actor("retention", (&retention{log: log, policy: eventlog.Retention{MaxAge: cfg.RetentionAge, MaxBytes: cfg.RetentionBytes}, logger: logger}).Run)
	for _, s := range srcs.actors {
		actor(s.name, s.run)
	}
	observer := &runtime.Observer{Runtime: rt, Endpoint: cfg.RuntimeEndpoint, Log: rec, Projection: proj,
		Logger: logger.With("component", "observer"), Period: cfg.RelistPeriod, EventedPeriod: cfg.EventedRelistPeriod}
	if cfg.RuntimeEvents {
		observer.Changes = rt
	}
	actor("runtime observer", observer.Run)
	actor("log rotation", (&containerlogs.Rotator{Runtime: rt, State: proj, Root: rt.LogRoot(), MaxSize: cfg.ContainerLogMaxSize,
		MaxFiles: cfg.ContainerLogMaxFiles, Logger: logger.With("component", "logrotate")}).Run)
	actor("prober", (&runtime.Prober{Exec: rt, Log: rec, Projection: proj, StartSeq: startSeqs[0],
		Logger: logger.With("component", "prober")}).Run)
	if mirrors != nil {
		actor("apiserver", mirrors.Run)
	}
	actor("planner", (&runtime.Loop{Log: rec, Projection: proj, Effectors: effectors, StartSeq: startSeqs[0], Now: cfg.WallClock,
		Logger: logger.With("component", "planner")}).Run)

	logger.Info("ledgerlet running", "node", cfg.NodeName, "data-dir", cfg.DataDir, "seq", log.LastSeq())
	runErr := g.Run()
	if runErr != nil {
		stopReason = "error: " + oneLine(runErr.Error())
		logger.Error("agent stopping", "err", runErr)
	}
	// Record the clean stop; a crash leaves none, which is how replay tells
	// them apart. A log that failed refuses it, and the stop stays unclean.
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := log.Append(sctx, eventlog.Event{Data: &pb.AgentStopped{Reason: stopReason}}); err != nil {
		logger.Error("record agent stop", "err", err)
	}
	logger.Info("ledgerlet stopped", "reason", stopReason)
	return runErr
}

// prepareDataDir creates the data dir private to root, and tightens one that
// exists: the socket in it answers every read command, and the log holds
// every manifest.
func prepareDataDir(dir string) error {
	if dir == "" {
		return configErrorf("--data-dir must not be empty")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return configErrorf("--data-dir %s: %v", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return configErrorf("--data-dir %s: %v", dir, err)
	}
	return nil
}

// healthServer serves /healthz and /metrics. Pods come first: a port that is
// taken never stops the agent; the bind is retried and the failure logged.
type healthServer struct {
	addr   string
	reg    *prometheus.Registry
	logger *slog.Logger
	l      net.Listener // bound at start, or nil: Run retries
}

func (h *healthServer) Run(ctx context.Context) error {
	backoff := time.Second
	for {
		l, err := h.l, error(nil)
		if l == nil {
			l, err = net.Listen("tcp", h.addr)
		}
		h.l = nil
		if err == nil {
			srv := &http.Server{Handler: healthMux(h.reg), ReadHeaderTimeout: 5 * time.Second,
				BaseContext: func(net.Listener) context.Context { return ctx }}
			return api.ServeHTTP(ctx, srv, l)
		}
		h.logger.Warn("health server cannot listen; retrying", "addr", h.addr, "err", err, "retry", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// oneLine keeps the first line of an error for the stop reason.
func oneLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	return s
}
