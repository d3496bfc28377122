package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"

	agentpkg "github.com/ledgerlet/ledgerlet/cmd/ledgerlet/internal/agent"
)

// runFlags are the agent's flags, named as the kubelet's where the meaning is the same.
type runFlags struct {
	configFile         string
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
	containerLogMax    string
	containerLogFiles  int
	cgroupDriver       string
	seccompRoot        string
	cgroupRoot         string
	relistPeriod       time.Duration
	eventedRelist      time.Duration
	runtimeEvents      bool
	nodeIP             string
	snapshotEvery      uint64
	retentionAge       time.Duration
	retentionBytes     int64
	logLevel           string
	registerNode       bool
	strictPermissions  bool
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
	fl.StringVar(&f.configFile, "config", "", "the kubelet's configuration file (KubeletConfiguration, as kubeadm writes it); flags given on the command line override it")
	fl.StringVar(&f.podManifestPath, "pod-manifest-path", "", "directory (non-recursive) or file of static pod manifests")
	fl.StringVar(&f.manifestURL, "manifest-url", "", "URL serving a Pod or a PodList")
	fl.StringArrayVar(&f.manifestURLHeaders, "manifest-url-header", nil, "HTTP header for --manifest-url as 'Key:Value' (repeatable; 'a:x,b:y' also accepted)")
	fl.StringVar(&f.runtimeEndpoint, "container-runtime-endpoint", "unix:///run/containerd/containerd.sock", "CRI endpoint")
	fl.StringVar(&f.dataDir, "data-dir", "/var/lib/ledgerlet", "where the log (ledger.db) and the socket (ledgerlet.sock) live")
	fl.StringVar(&f.hostnameOverride, "hostname-override", "", "node name to use instead of the host name")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig of the apiserver to register the node and mirror pods into (optional)")
	fl.BoolVar(&f.strictPermissions, "strict-manifest-permissions", false, "refuse manifests (or manifest directories) writable by group/others or owned by another user, instead of warning")
	fl.BoolVar(&f.registerNode, "register-node", true, "with --kubeconfig, create the Node object if it is missing")
	fl.DurationVar(&f.fileCheckFrequency, "file-check-frequency", 20*time.Second, "how often to re-list --pod-manifest-path")
	fl.DurationVar(&f.httpCheckFrequency, "http-check-frequency", 20*time.Second, "how often to poll --manifest-url")
	fl.StringVar(&f.healthzBind, "healthz-bind-address", "127.0.0.1:10258", "address for /healthz and /metrics (empty: off)")
	fl.StringVar(&f.podLogsDir, "pod-logs-dir", "/var/log/pods", "root of container logs")
	fl.StringVar(&f.containerLogMax, "container-log-max-size", "10Mi", "rotate a container's log when it reaches this size (a quantity: 10Mi)")
	fl.IntVar(&f.containerLogFiles, "container-log-max-files", 5, "keep at most this many log files per container, the live one included (at least 2)")
	fl.StringVar(&f.seccompRoot, "seccomp-profile-root", "/var/lib/kubelet/seccomp", "where Localhost seccomp profiles are (localhostProfile is relative to it; the kubelet's <root-dir>/seccomp)")
	fl.StringVar(&f.cgroupDriver, "cgroup-driver", "cgroupfs", "cgroupfs or systemd; must match the runtime's")
	fl.StringVar(&f.cgroupRoot, "cgroup-root", "/ledgerlet", "parent cgroup of every pod's cgroup")
	fl.DurationVar(&f.relistPeriod, "relist-period", time.Second, "how often to re-list the container runtime while no runtime event stream flows")
	fl.BoolVar(&f.runtimeEvents, "runtime-events", true, "read a container as soon as the runtime reports a change (CRI container events, or containerd's events service), instead of only at the next re-list")
	fl.DurationVar(&f.eventedRelist, "evented-relist-period", 10*time.Second, "how often to re-list the container runtime while its event stream flows (a safety net; never less than --relist-period)")
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
	if q, err := resource.ParseQuantity(f.containerLogMax); err != nil || q.Sign() <= 0 {
		return usagef("--container-log-max-size %q: want a positive quantity such as 10Mi", f.containerLogMax)
	}
	if f.containerLogFiles < 2 {
		return usagef("--container-log-max-files %d: must be at least 2", f.containerLogFiles)
	}
	if f.relistPeriod <= 0 || f.eventedRelist <= 0 {
		return usagef("--relist-period and --evented-relist-period must be positive")
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

func (f *runFlags) run(ctx context.Context, fs *pflag.FlagSet) error {
	logger := newLogger(f.logLevel)
	if f.configFile != "" {
		if err := applyKubeletConfig(f.configFile, fs, logger); err != nil {
			return err
		}
	}
	if err := f.validate(); err != nil {
		return err
	}
	node, err := f.nodeName()
	if err != nil {
		return err
	}
	err = agentpkg.Run(ctx, agentpkg.Config{
		Version: version, Flags: setFlags(fs), NodeName: node, NodeIP: f.nodeIP,
		PodManifestPath: f.podManifestPath, StrictManifestPermissions: f.strictPermissions, ManifestURL: f.manifestURL, ManifestURLHeaders: f.manifestURLHeaders,
		FileCheckFrequency: f.fileCheckFrequency, HTTPCheckFrequency: f.httpCheckFrequency,
		RuntimeEndpoint: f.runtimeEndpoint, RelistPeriod: f.relistPeriod,
		RuntimeEvents: f.runtimeEvents, EventedRelistPeriod: f.eventedRelist, PodLogsDir: f.podLogsDir,
		ContainerLogMaxSize: logMaxBytes(f.containerLogMax), ContainerLogMaxFiles: f.containerLogFiles,
		CgroupDriver: f.cgroupDriver, SeccompRoot: f.seccompRoot, CgroupRoot: f.cgroupRoot,
		Kubeconfig: f.kubeconfig, RegisterNode: f.registerNode,
		DataDir: f.dataDir, HealthzBind: f.healthzBind, SnapshotEvery: f.snapshotEvery,
		RetentionAge: f.retentionAge, RetentionBytes: f.retentionBytes,
		Logger:    logger,
		WallClock: testWallClock(os.Getenv(testClockOffsetEnv)),
	})
	var ce agentpkg.ConfigError
	if errors.As(err, &ce) {
		return usageError{ce}
	}
	return err
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

// logMaxBytes is --container-log-max-size in bytes; validate has checked it.
func logMaxBytes(q string) int64 {
	v := resource.MustParse(q)
	return v.Value()
}

// testClockOffsetEnv names a file holding a duration (e.g. "-8h") added to
// the wall clock the agent stamps events and plans with. For the fault suite
// only (test/e2e): it steps the agent's clock without stepping the shared
// machine's. The monotonic clocks are not touched. Not a flag: no operator
// should ever set it.
const testClockOffsetEnv = "LEDGERLET_TEST_CLOCK_OFFSET_FILE"

// testWallClock is time.Now plus the offset in the file at path, read at
// most every 100 ms; nil (time.Now) when path is empty.
func testWallClock(path string) func() time.Time {
	if path == "" {
		return nil
	}
	var (
		mu     sync.Mutex
		offset time.Duration
		readAt time.Time
	)
	return func() time.Time {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if readAt.IsZero() || now.Sub(readAt) > 100*time.Millisecond {
			readAt = now
			if b, err := os.ReadFile(path); err == nil {
				if d, err := time.ParseDuration(strings.TrimSpace(string(b))); err == nil {
					offset = d
				}
			}
		}
		return now.Add(offset).Round(0)
	}
}
