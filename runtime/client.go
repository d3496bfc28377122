package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	criv1 "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Config says where the runtime is and where this agent keeps the files it owns around pods.
type Config struct {
	// Endpoint is the CRI socket, e.g. unix:///run/containerd/containerd.sock.
	Endpoint string
	// LogRoot holds pod log directories, <LogRoot>/<ns>_<name>_<uid>. Default /var/log/pods.
	LogRoot string
	// DataDir holds per-pod data such as emptyDir volumes, <DataDir>/pods/<uid>.
	// Default /var/lib/ledgerlet.
	DataDir string
	// CgroupRoot is the parent of every pod cgroup, e.g. /ledgerlet gives /ledgerlet/pod<uid>.
	CgroupRoot string
	// CgroupDriver is "cgroupfs" (default) or "systemd" and must match the runtime's setting.
	CgroupDriver string
	// CgroupFS is where cgroup hierarchies are mounted. Default /sys/fs/cgroup.
	CgroupFS string
	// SeccompRoot holds Localhost seccomp profiles (the kubelet's
	// <root-dir>/seccomp). Default /var/lib/kubelet/seccomp.
	SeccompRoot string
	// RequestTimeout bounds each CRI call that has no longer natural bound. Default 2m.
	RequestTimeout time.Duration
	// PullTimeout bounds one image pull. Default 10m.
	PullTimeout time.Duration
	// ManagedBy is the value of the ledgerlet.io/managed label on everything
	// this agent creates, and the only value it lists: agents sharing one
	// runtime (or tests) never see each other's pods. The agent uses its node
	// name. Default "true".
	ManagedBy string
	// HostIP is the node's address, for status.hostIP in env fieldRefs.
	HostIP string
	// Logger receives one line per action. Default slog.Default().
	Logger *slog.Logger
}

// Runtime drives one CRI runtime. It is safe for concurrent use.
type Runtime struct {
	cfg    Config
	conn   *grpc.ClientConn
	rs     criv1.RuntimeServiceClient
	is     criv1.ImageServiceClient
	log    *slog.Logger
	driver cgroupDriver
}

// VersionInfo is what the runtime says about itself.
type VersionInfo struct {
	RuntimeName       string
	RuntimeVersion    string
	RuntimeAPIVersion string
}

// New prepares a client for cfg.Endpoint. It does not wait for the runtime: the connection is
// made on first use and re-made by gRPC whenever the runtime restarts, so an agent can start
// before containerd and survive containerd restarts. Call Version to check the runtime now.
func New(cfg Config) (*Runtime, error) {
	if !strings.HasPrefix(cfg.Endpoint, "unix://") {
		return nil, fmt.Errorf("runtime endpoint %q: only unix:// endpoints are supported", cfg.Endpoint)
	}
	if cfg.LogRoot == "" {
		cfg.LogRoot = "/var/log/pods"
	}
	if cfg.ManagedBy == "" {
		cfg.ManagedBy = managedValue
	}
	if cfg.DataDir == "" {
		cfg.DataDir = "/var/lib/ledgerlet"
	}
	if cfg.CgroupRoot == "" {
		cfg.CgroupRoot = "/ledgerlet"
	}
	if !path.IsAbs(cfg.CgroupRoot) {
		return nil, fmt.Errorf("cgroup root %q: must be absolute", cfg.CgroupRoot)
	}
	if cfg.SeccompRoot == "" {
		cfg.SeccompRoot = "/var/lib/kubelet/seccomp"
	}
	if cfg.CgroupFS == "" {
		cfg.CgroupFS = "/sys/fs/cgroup"
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 2 * time.Minute
	}
	if cfg.PullTimeout == 0 {
		cfg.PullTimeout = 10 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	driver, err := parseCgroupDriver(cfg.CgroupDriver)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(cfg.Endpoint,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// The kubelet's limit: ListContainers on a busy node exceeds the 4MiB default.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)),
		// A local socket comes back within seconds of a runtime restart; the default backoff
		// (up to 120s) would leave us disconnected long after it is back.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 2 * time.Second,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("create CRI client for %s: %w", cfg.Endpoint, err)
	}
	// Connect now rather than on the first call: the handshake then overlaps
	// the agent's own start-up instead of delaying the first relist, which a
	// restart's reconcile waits for.
	conn.Connect()
	return &Runtime{
		cfg:    cfg,
		conn:   conn,
		rs:     criv1.NewRuntimeServiceClient(conn),
		is:     criv1.NewImageServiceClient(conn),
		log:    cfg.Logger.With("component", "runtime"),
		driver: driver,
	}, nil
}

// Close releases the connection. Containers keep running.
func (r *Runtime) Close() error { return r.conn.Close() }

// Version asks the runtime who it is; it fails when the runtime is unreachable or does not
// speak CRI v1.
func (r *Runtime) Version(ctx context.Context) (VersionInfo, error) {
	ctx, cancel := r.callCtx(ctx)
	defer cancel()
	resp, err := r.rs.Version(ctx, &criv1.VersionRequest{})
	if err != nil {
		return VersionInfo{}, fmt.Errorf("get CRI version from %s: %w", r.cfg.Endpoint, err)
	}
	return VersionInfo{
		RuntimeName:       resp.GetRuntimeName(),
		RuntimeVersion:    resp.GetRuntimeVersion(),
		RuntimeAPIVersion: resp.GetRuntimeApiVersion(),
	}, nil
}

// callCtx bounds a call by RequestTimeout unless the caller's deadline is sooner.
func (r *Runtime) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.cfg.RequestTimeout)
}

// isNotFound reports a CRI "no such sandbox/container/image" answer, which callers of
// idempotent operations (stop, remove) treat as done.
func isNotFound(err error) bool {
	return status.Code(err) == codes.NotFound
}
