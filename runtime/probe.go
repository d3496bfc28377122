package runtime

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// One probe, run once, as the kubelet's pkg/probe does: exec (CRI
// ExecSync), httpGet (HTTP, or HTTPS without verification), tcpSocket and
// grpc (grpc.health.v1). The worker (prober.go) applies timing and
// thresholds; this file only says what one attempt found.

// probeResult is what one attempt found.
type probeResult int

const (
	// probeUnknown: the probe could not be run (the runtime did not answer,
	// a named port is not declared). As with the kubelet, the attempt is
	// thrown away: it counts neither way.
	probeUnknown probeResult = iota
	probeSuccess
	probeFailure
)

func (r probeResult) String() string {
	switch r {
	case probeSuccess:
		return "success"
	case probeFailure:
		return "failure"
	}
	return "unknown"
}

// maxProbeOutput bounds the output kept from a failed probe: it goes into
// the log, which must not grow with a chatty health check.
const maxProbeOutput = 512

// probeUserAgent is sent by HTTP and gRPC probes; applications that
// recognise the kubelet's probes match the "kube-probe/" prefix.
const probeUserAgent = "kube-probe/ledgerlet"

// Execer runs a command in a container: the CRI's ExecSync (*Runtime).
type Execer interface {
	ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (ExecResult, error)
}

// probeTarget is where a probe reaches its container instance.
type probeTarget struct {
	containerID string
	// host is the pod's IP, or 127.0.0.1 for a pod on the host's network.
	host string
	// ports are the container's declared ports, for named probe ports.
	ports []corev1.ContainerPort
	// env is the container's static environment ($(VAR) in exec commands).
	env []corev1.EnvVar
}

// probeRunner runs single probe attempts.
type probeRunner struct {
	exec Execer
	// second is the unit of timeoutSeconds (tests shorten it).
	second time.Duration
	// http follows redirects only to the same host and never verifies
	// certificates, as the kubelet's prober.
	http *http.Client
}

func newProbeRunner(exec Execer) *probeRunner {
	// The kubelet does not verify probe certificates, nor use a proxy (the
	// zero Proxy), nor keep connections between probes.
	tr := &http.Transport{
		TLSClientConfig:    &tls.Config{InsecureSkipVerify: true},
		DisableKeepAlives:  true,
		DisableCompression: true,
		DialContext:        probeDialer().DialContext,
	}
	return &probeRunner{exec: exec, second: time.Second, http: &http.Client{Transport: tr, CheckRedirect: localRedirectsOnly}}
}

// close releases idle connections (there are none: keep-alives are off).
func (r *probeRunner) close() { r.http.CloseIdleConnections() }

// probeDialer closes probe connections with SO_LINGER 1 s, as the kubelet
// does, so that probing every second does not fill the node with TIME-WAIT
// sockets.
func probeDialer() *net.Dialer {
	return &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			_ = syscall.SetsockoptLinger(int(fd), syscall.SOL_SOCKET, syscall.SO_LINGER, &syscall.Linger{Onoff: 1, Linger: 1})
		})
	}}
}

func localRedirectsOnly(req *http.Request, via []*http.Request) error {
	if req.URL.Hostname() != via[0].URL.Hostname() {
		return http.ErrUseLastResponse
	}
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	return nil
}

// run makes one attempt of probe p on t and says what it found; output
// explains a failure (or why the attempt could not be made).
func (r *probeRunner) run(ctx context.Context, p *corev1.Probe, t probeTarget) (probeResult, string) {
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * r.second
	switch {
	case p.Exec != nil:
		return r.runExec(ctx, p.Exec, t, timeout)
	case p.HTTPGet != nil:
		return r.runHTTP(ctx, p.HTTPGet, t, timeout)
	case p.TCPSocket != nil:
		return runTCP(ctx, p.TCPSocket, t, timeout)
	case p.GRPC != nil:
		return runGRPC(ctx, p.GRPC, t, timeout)
	}
	return probeUnknown, "the probe has no handler"
}

func (r *probeRunner) runExec(ctx context.Context, e *corev1.ExecAction, t probeTarget, timeout time.Duration) (probeResult, string) {
	// As the kubelet: $(VAR) expands from the container's plain values only.
	vars := map[string]string{}
	for _, ev := range t.env {
		if ev.ValueFrom == nil {
			vars[ev.Name] = expand(ev.Value, vars)
		}
	}
	cmd := make([]string, len(e.Command))
	for i, a := range e.Command {
		cmd[i] = expand(a, vars)
	}
	res, err := r.exec.ExecSync(ctx, t.containerID, cmd, timeout)
	switch {
	case errors.Is(err, ErrExecTimeout):
		return probeFailure, fmt.Sprintf("command %q timed out after %s", strings.Join(cmd, " "), timeout)
	case err != nil:
		return probeUnknown, err.Error()
	case res.ExitCode == 0:
		return probeSuccess, ""
	}
	out := strings.TrimSpace(string(res.Stdout) + string(res.Stderr))
	if out == "" {
		out = fmt.Sprintf("command %q exited with %d", strings.Join(cmd, " "), res.ExitCode)
	}
	return probeFailure, truncate(out)
}

func (r *probeRunner) runHTTP(ctx context.Context, g *corev1.HTTPGetAction, t probeTarget, timeout time.Duration) (probeResult, string) {
	port, err := resolvePort(g.Port, t.ports)
	if err != nil {
		return probeUnknown, err.Error()
	}
	host := g.Host
	if host == "" {
		host = t.host
	}
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	path := g.Path
	if path == "" {
		path = "/"
	}
	u, err := url.Parse(path)
	if err != nil {
		return probeUnknown, fmt.Sprintf("httpGet path %q: %v", path, err)
	}
	u.Scheme, u.Host = scheme, net.JoinHostPort(host, strconv.Itoa(port))
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return probeUnknown, err.Error()
	}
	req.Header.Set("User-Agent", probeUserAgent)
	req.Header.Set("Accept", "*/*")
	for _, h := range g.HTTPHeaders {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
			continue
		}
		req.Header.Add(h.Name, h.Value)
	}
	resp, err := r.http.Do(req)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
			return probeFailure, truncate(fmt.Sprintf("Get %q: timed out after %s", u.String(), timeout))
		}
		return probeFailure, truncate(err.Error())
	}
	defer resp.Body.Close()
	// Read a little, as the kubelet does, so the server sees a client.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	if resp.StatusCode >= http.StatusOK && resp.StatusCode < http.StatusBadRequest {
		return probeSuccess, ""
	}
	return probeFailure, fmt.Sprintf("HTTP probe failed with statuscode: %d", resp.StatusCode)
}

func runTCP(ctx context.Context, s *corev1.TCPSocketAction, t probeTarget, timeout time.Duration) (probeResult, string) {
	port, err := resolvePort(s.Port, t.ports)
	if err != nil {
		return probeUnknown, err.Error()
	}
	host := s.Host
	if host == "" {
		host = t.host
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := probeDialer().DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return probeFailure, truncate(err.Error())
	}
	_ = conn.Close()
	return probeSuccess, ""
}

func runGRPC(ctx context.Context, g *corev1.GRPCAction, t probeTarget, timeout time.Duration) (probeResult, string) {
	addr := net.JoinHostPort(t.host, strconv.Itoa(int(g.Port)))
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUserAgent(probeUserAgent),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			return probeDialer().DialContext(ctx, "tcp", a)
		}))
	if err != nil {
		return probeUnknown, err.Error()
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	service := ""
	if g.Service != nil {
		service = *g.Service
	}
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		st := status.Convert(err)
		switch st.Code() {
		case codes.Unimplemented:
			return probeFailure, truncate("this server does not implement the grpc health protocol (grpc.health.v1.Health): " + st.Message())
		case codes.DeadlineExceeded:
			return probeFailure, fmt.Sprintf("timeout: health rpc to %s did not complete within %s", addr, timeout)
		}
		return probeFailure, truncate(fmt.Sprintf("error: health rpc to %s failed: %s", addr, st.Message()))
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return probeFailure, fmt.Sprintf("service unhealthy (responded with %q)", resp.GetStatus().String())
	}
	return probeSuccess, ""
}

// resolvePort is the kubelet's ResolveContainerPort: a number, or the name
// of one of the container's ports.
func resolvePort(p intstr.IntOrString, ports []corev1.ContainerPort) (int, error) {
	port := -1
	switch p.Type {
	case intstr.Int:
		port = p.IntValue()
	case intstr.String:
		for _, cp := range ports {
			if cp.Name == p.StrVal {
				port = int(cp.ContainerPort)
			}
		}
		if port < 0 {
			n, err := strconv.Atoi(p.StrVal)
			if err != nil {
				return -1, fmt.Errorf("port %q: the container declares no port of that name", p.StrVal)
			}
			port = n
		}
	}
	if port <= 0 || port >= 65536 {
		return -1, fmt.Errorf("invalid port number %d", port)
	}
	return port, nil
}

func truncate(s string) string {
	if len(s) <= maxProbeOutput {
		return s
	}
	// Cut on a rune boundary.
	cut := maxProbeOutput
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
