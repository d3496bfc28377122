package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/replay"
	"github.com/ledgerlet/ledgerlet/runtime"
)

// runFlags are the agent's flags, named as the kubelet's where the meaning is the same.
type runFlags struct {
	podManifestPath    string
	manifestURL        string
	manifestURLHeaders []string
	runtimeEndpoint    string
	dataDir            string
	hostnameOverride   string
	kubeconfig         string
	fileCheckFrequency time.Duration
	httpCheckFrequency time.Duration
	healthzBind        string
	podLogsDir         string
	cgroupDriver       string
	cgroupRoot         string
	relistPeriod       time.Duration
	nodeIP             string
	snapshotEvery      uint64
	retentionAge       time.Duration
	retentionBytes     int64
	logLevel           string
}

func newRunCmd() *cobra.Command {
	f := &runFlags{}
	c := &cobra.Command{
		Use:   "run",
		Short: "Run the agent: read manifests, run pods, record everything",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd.Context(), cmd.Flags())
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.podManifestPath, "pod-manifest-path", "", "directory (non-recursive) or file of static pod manifests")
	fl.StringVar(&f.manifestURL, "manifest-url", "", "URL serving a Pod or a PodList")
	fl.StringArrayVar(&f.manifestURLHeaders, "manifest-url-header", nil, "HTTP header for --manifest-url as 'Key:Value' (repeatable; 'a:x,b:y' also accepted)")
	fl.StringVar(&f.runtimeEndpoint, "container-runtime-endpoint", "unix:///run/containerd/containerd.sock", "CRI endpoint")
	fl.StringVar(&f.dataDir, "data-dir", "/var/lib/ledgerlet", "where the log (ledger.db) and the socket (ledgerlet.sock) live")
	fl.StringVar(&f.hostnameOverride, "hostname-override", "", "node name to use instead of the host name")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig of the apiserver to mirror pods into (optional)")
	fl.DurationVar(&f.fileCheckFrequency, "file-check-frequency", 20*time.Second, "how often to re-list --pod-manifest-path")
	fl.DurationVar(&f.httpCheckFrequency, "http-check-frequency", 20*time.Second, "how often to poll --manifest-url")
	fl.StringVar(&f.healthzBind, "healthz-bind-address", "127.0.0.1:10258", "address for /healthz and /metrics (empty: off)")
	fl.StringVar(&f.podLogsDir, "pod-logs-dir", "/var/log/pods", "root of container logs")
	fl.StringVar(&f.cgroupDriver, "cgroup-driver", "cgroupfs", "cgroupfs or systemd; must match the runtime's")
	fl.StringVar(&f.cgroupRoot, "cgroup-root", "/ledgerlet", "parent cgroup of every pod's cgroup")
	fl.DurationVar(&f.relistPeriod, "relist-period", time.Second, "how often to re-list the container runtime")
	fl.StringVar(&f.nodeIP, "node-ip", "", "the node's IP address, for status.hostIP (default: the first global unicast address found)")
	fl.Uint64Var(&f.snapshotEvery, "snapshot-every", 10000, "store a snapshot of projected state every N events")
	fl.DurationVar(&f.retentionAge, "retention-age", 45*24*time.Hour, "drop events older than this (0: keep all)")
	fl.Int64Var(&f.retentionBytes, "retention-bytes", 1<<30, "drop the oldest events beyond this many bytes of event data (0: no limit)")
	fl.StringVar(&f.logLevel, "v", "info", "log level: debug, info, warn, error")
	return c
}

func (f *runFlags) validate() error {
	if f.podManifestPath == "" && f.manifestURL == "" {
		return usagef("give --pod-manifest-path DIR|FILE and/or --manifest-url URL")
	}
	if f.dataDir == "" {
		return usagef("--data-dir must not be empty")
	}
	for _, h := range f.manifestURLHeaders {
		for _, kv := range strings.Split(h, ",") {
			if k, _, ok := strings.Cut(kv, ":"); !ok || strings.TrimSpace(k) == "" {
				return usagef("--manifest-url-header %q: want Key:Value", h)
			}
		}
	}
	if f.nodeIP != "" && net.ParseIP(f.nodeIP) == nil {
		return usagef("--node-ip %q: not an IP address", f.nodeIP)
	}
	if f.fileCheckFrequency <= 0 || f.httpCheckFrequency <= 0 {
		return usagef("--file-check-frequency and --http-check-frequency must be positive")
	}
	return nil
}

func (f *runFlags) nodeName() (string, error) {
	name := f.hostnameOverride
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return "", fmt.Errorf("read host name (set --hostname-override): %w", err)
		}
		name = h
	}
	return strings.ToLower(strings.TrimSpace(name)), nil
}

func (f *runFlags) run(ctx context.Context, fs *pflag.FlagSet) (err error) {
	if err := f.validate(); err != nil {
		return err
	}
	logger := newLogger(f.logLevel)
	node, err := f.nodeName()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return usagef("--data-dir %s: %v", f.dataDir, err)
	}
	log, err := eventlog.Open(filepath.Join(f.dataDir, "ledger.db"), eventlog.Options{Logger: logger, LockTimeout: 2 * time.Second})
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

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rec := newMeteredLog(log, reg)
	proj := newProjection(log, st, f.snapshotEvery, logger, reg)

	if _, err := rec.Append(ctx, eventlog.Event{Data: &pb.AgentStarted{
		Version: version, NodeName: node, Flags: setFlags(fs), BootTimeUnix: bootTime(),
		Pid: int64(os.Getpid()), BootId: bootID(),
	}}); err != nil {
		return fmt.Errorf("record agent start: %w", err)
	}

	sockPath := filepath.Join(f.dataDir, "ledgerlet.sock")
	sock, err := listenUnix(sockPath)
	if err != nil {
		return err
	}
	defer os.Remove(sockPath)

	var g run.Group
	actor := func(name string, fn func(context.Context) error) {
		actx, cancel := context.WithCancel(ctx)
		g.Add(func() error {
			err := fn(actx)
			if err != nil {
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
	actor("projection", proj.Run)
	actor("api", func(actx context.Context) error {
		a := &api{log: log, proj: proj, logger: logger}
		srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 5 * time.Second,
			BaseContext: func(net.Listener) context.Context { return actx }}
		return serveHTTP(actx, srv, sock)
	})
	if f.healthzBind != "" {
		hl, err := net.Listen("tcp", f.healthzBind)
		if err != nil {
			return usagef("--healthz-bind-address %s: %v", f.healthzBind, err)
		}
		actor("healthz", func(actx context.Context) error {
			mux := http.NewServeMux()
			mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
			mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
			srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second,
				BaseContext: func(net.Listener) context.Context { return actx }}
			return serveHTTP(actx, srv, hl)
		})
	}
	ret := &retention{log: log, policy: eventlog.Retention{MaxAge: f.retentionAge, MaxBytes: f.retentionBytes}, logger: logger}
	actor("retention", ret.Run)
	if err := f.addSources(&g, actor, rec, proj, node, logger); err != nil {
		return err
	}
	rt, err := runtime.New(runtime.Config{
		Endpoint: f.runtimeEndpoint, LogRoot: f.podLogsDir, DataDir: f.dataDir,
		CgroupRoot: f.cgroupRoot, CgroupDriver: f.cgroupDriver, ManagedBy: node, Logger: logger,
	})
	if err != nil {
		return usagef("--container-runtime-endpoint: %v", err)
	}
	defer rt.Close()
	rec2 := &runtime.Reconciler{Runtime: rt, Endpoint: f.runtimeEndpoint, Log: rec, Projection: proj,
		Logger: logger.With("component", "reconciler"), RelistPeriod: f.relistPeriod, HostIP: f.hostIP()}
	actor("reconciler", rec2.Run)

	logger.Info("ledgerlet running", "node", node, "data-dir", f.dataDir, "seq", log.LastSeq())
	runErr := g.Run()
	if runErr != nil {
		stopReason = "error: " + oneLine(runErr.Error())
		logger.Error("agent stopping", "err", runErr)
	}
	// Record the clean stop; a crash leaves none, which is how replay tells them apart.
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := log.Append(sctx, eventlog.Event{Data: &pb.AgentStopped{Reason: stopReason}}); err != nil {
		logger.Error("record agent stop", "err", err)
	}
	logger.Info("ledgerlet stopped", "reason", stopReason)
	return runErr
}

// setFlags lists the flags given on the command line, in a stable order.
func setFlags(fs *pflag.FlagSet) []string {
	var out []string
	fs.Visit(func(fl *pflag.Flag) {
		out = append(out, "--"+fl.Name+"="+fl.Value.String())
	})
	return out
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func bootTime() int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			var t int64
			fmt.Sscan(v, &t)
			return t
		}
	}
	return 0
}

// meteredLog is the log as sources and effectors see it: Append, timed.
type meteredLog struct {
	log     *eventlog.Log
	latency prometheus.Histogram
}

func newMeteredLog(l *eventlog.Log, reg prometheus.Registerer) *meteredLog {
	m := &meteredLog{log: l, latency: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "ledgerlet_append_duration_seconds", Help: "Durable append latency (commit + fsync).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})}
	reg.MustRegister(m.latency)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ledgerlet_log_last_seq", Help: "Highest committed seq.",
	}, func() float64 { return float64(l.LastSeq()) }))
	return m
}

func (m *meteredLog) Append(ctx context.Context, evs ...eventlog.Event) ([]uint64, error) {
	t := time.Now()
	seqs, err := m.log.Append(ctx, evs...)
	m.latency.Observe(time.Since(t).Seconds())
	return seqs, err
}

// retention compacts the log hourly under its policy.
type retention struct {
	log    *eventlog.Log
	policy eventlog.Retention
	logger *slog.Logger
}

func (r *retention) Run(ctx context.Context) error {
	if r.policy.MaxAge == 0 && r.policy.MaxBytes == 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if err := r.once(ctx, time.Now()); err != nil {
			r.logger.Warn("retention", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (r *retention) once(ctx context.Context, now time.Time) error {
	cut, err := r.log.RetentionCut(r.policy, now)
	if err != nil || cut <= r.log.FirstSeq() {
		return err
	}
	st, err := replay.StateAt(ctx, r.log, cut-1)
	if err != nil {
		return fmt.Errorf("state at cut %d: %w", cut, err)
	}
	b, err := st.Canonical()
	if err != nil {
		return err
	}
	if err := r.log.Compact(ctx, cut, eventlog.Snapshot{Seq: cut - 1, State: b}); err != nil {
		return fmt.Errorf("compact before %d: %w", cut, err)
	}
	r.logger.Info("log compacted", "first-seq", cut)
	return nil
}

// hostIP is --node-ip, or the first global unicast IPv4 address of an
// interface that is up and not a container bridge or veth.
func (f *runFlags) hostIP() string {
	if f.nodeIP != "" {
		return f.nodeIP
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return ""
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 ||
			strings.HasPrefix(ifc.Name, "veth") || strings.HasPrefix(ifc.Name, "cni") || strings.HasPrefix(ifc.Name, "llbr") {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && ipn.IP.IsGlobalUnicast() {
				return ipn.IP.String()
			}
		}
	}
	return ""
}
