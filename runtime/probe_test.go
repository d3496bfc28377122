package runtime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// fakeExec answers ExecSync from a function and counts the calls.
type fakeExec struct {
	mu    sync.Mutex
	calls map[string]int // by the command's first word
	fn    func(cmd []string) (ExecResult, error)
}

func (f *fakeExec) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (ExecResult, error) {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[cmd[0]]++
	fn := f.fn
	f.mu.Unlock()
	return fn(cmd)
}

func (f *fakeExec) count(word string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[word]
}

func TestExecProbeResults(t *testing.T) {
	tests := []struct {
		name   string
		res    ExecResult
		err    error
		want   probeResult
		output string
	}{
		{"exit 0 succeeds", ExecResult{ExitCode: 0, Stdout: []byte("fine")}, nil, probeSuccess, ""},
		{"exit 1 fails with its output", ExecResult{ExitCode: 1, Stdout: []byte("not "), Stderr: []byte("healthy\n")}, nil, probeFailure, "not healthy"},
		{"silent failure names the exit code", ExecResult{ExitCode: 2}, nil, probeFailure, `command "check b" exited with 2`},
		{"timeout fails", ExecResult{}, fmt.Errorf("exec: %w", ErrExecTimeout), probeFailure, `command "check b" timed out after 1s`},
		{"a runtime error is thrown away", ExecResult{}, errors.New("container not running"), probeUnknown, "container not running"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			r := newProbeRunner(&fakeExec{fn: func(cmd []string) (ExecResult, error) { got = cmd; return tt.res, tt.err }})
			// $(A) expands from plain values only, as the kubelet's.
			p := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"check", "$(A)"}}}, TimeoutSeconds: 1}
			env := []corev1.EnvVar{{Name: "A", Value: "b"}, {Name: "C", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}
			res, out := r.run(context.Background(), p, probeTarget{containerID: "c1", env: env})
			if res != tt.want || out != tt.output {
				t.Fatalf("got %s %q, want %s %q", res, out, tt.want, tt.output)
			}
			if strings.Join(got, " ") != "check b" {
				t.Fatalf("ran %q, want %q", got, "check b")
			}
		})
	}
}

func TestExecProbeOutputIsBounded(t *testing.T) {
	r := newProbeRunner(&fakeExec{fn: func([]string) (ExecResult, error) {
		return ExecResult{ExitCode: 1, Stdout: []byte(strings.Repeat("é", 4096))}, nil
	}})
	p := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"x"}}}}
	_, out := r.run(context.Background(), p, probeTarget{})
	if len(out) > maxProbeOutput+len("…") || !strings.HasSuffix(out, "…") || !strings.HasPrefix(out, "éé") {
		t.Fatalf("output of %d bytes: %q…", len(out), out[:20])
	}
}

func hostPort(t testing.TB, rawURL string) (string, int) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(u.Host)
	n, _ := strconv.Atoi(port)
	return host, n
}

func TestHTTPGetProbeResults(t *testing.T) {
	defer goleak.VerifyNone(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/unavailable", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	mux.HandleFunc("/here", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/unavailable", http.StatusFound) })
	mux.HandleFunc("/away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://elsewhere.invalid/", http.StatusFound)
	})
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Probe") != "yes" || r.Host != "svc.local" || !strings.HasPrefix(r.UserAgent(), "kube-probe/") {
			w.WriteHeader(http.StatusBadRequest)
		}
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	tlsSrv := httptest.NewTLSServer(mux)
	defer tlsSrv.Close()
	host, port := hostPort(t, srv.URL)
	_, tlsPort := hostPort(t, tlsSrv.URL)
	closed := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}()

	get := func(path string, port intstr.IntOrString) *corev1.HTTPGetAction {
		return &corev1.HTTPGetAction{Path: path, Port: port, Scheme: corev1.URISchemeHTTP}
	}
	tests := []struct {
		name   string
		get    *corev1.HTTPGetAction
		want   probeResult
		output string
	}{
		{"2xx succeeds", get("/ok", intstr.FromInt32(int32(port))), probeSuccess, ""},
		{"5xx fails with the status", get("/unavailable", intstr.FromInt32(int32(port))), probeFailure, "HTTP probe failed with statuscode: 503"},
		{"local redirects are followed", get("/here", intstr.FromInt32(int32(port))), probeFailure, "HTTP probe failed with statuscode: 503"},
		{"a redirect elsewhere is not followed and succeeds", get("/away", intstr.FromInt32(int32(port))), probeSuccess, ""},
		{"headers and Host are sent", func() *corev1.HTTPGetAction {
			g := get("/headers", intstr.FromInt32(int32(port)))
			g.HTTPHeaders = []corev1.HTTPHeader{{Name: "X-Probe", Value: "yes"}, {Name: "Host", Value: "svc.local"}}
			return g
		}(), probeSuccess, ""},
		{"named port from the container's ports", get("/ok", intstr.FromString("web")), probeSuccess, ""},
		{"undeclared named port is thrown away", get("/ok", intstr.FromString("nope")), probeUnknown, `port "nope": the container declares no port of that name`},
		{"HTTPS without verification", func() *corev1.HTTPGetAction {
			g := get("/ok", intstr.FromInt32(int32(tlsPort)))
			g.Scheme = corev1.URISchemeHTTPS
			return g
		}(), probeSuccess, ""},
		{"timeout fails", get("/slow", intstr.FromInt32(int32(port))), probeFailure, "timed out after 200ms"},
		{"refused fails", get("/ok", intstr.FromInt32(int32(closed))), probeFailure, "connection refused"},
	}
	r := newProbeRunner(nil)
	defer r.close()
	r.second = 200 * time.Millisecond
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: tt.get}, TimeoutSeconds: 1}
			res, out := r.run(context.Background(), p, probeTarget{host: host, ports: []corev1.ContainerPort{{Name: "web", ContainerPort: int32(port)}}})
			if res != tt.want || !strings.Contains(out, tt.output) || (tt.output == "" && out != "") {
				t.Fatalf("got %s %q, want %s %q", res, out, tt.want, tt.output)
			}
		})
	}
}

func TestTCPSocketProbeResults(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	open := l.Addr().(*net.TCPAddr).Port
	closedL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := closedL.Addr().(*net.TCPAddr).Port
	closedL.Close()
	defer l.Close()
	r := newProbeRunner(nil)
	for _, tt := range []struct {
		name string
		port int
		want probeResult
	}{{"listening succeeds", open, probeSuccess}, {"closed fails", closed, probeFailure}} {
		t.Run(tt.name, func(t *testing.T) {
			p := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(int32(tt.port))}}, TimeoutSeconds: 1}
			if res, out := r.run(context.Background(), p, probeTarget{host: "127.0.0.1"}); res != tt.want {
				t.Fatalf("got %s %q, want %s", res, out, tt.want)
			}
		})
	}
}

func TestGRPCProbeResults(t *testing.T) {
	defer goleak.VerifyNone(t)
	serve := func(withHealth bool) (int, func()) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := grpc.NewServer()
		if withHealth {
			h := health.NewServer()
			h.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
			h.SetServingStatus("db", healthpb.HealthCheckResponse_NOT_SERVING)
			healthpb.RegisterHealthServer(s, h)
		}
		go func() { _ = s.Serve(l) }()
		return l.Addr().(*net.TCPAddr).Port, s.Stop
	}
	healthy, stop1 := serve(true)
	defer stop1()
	bare, stop2 := serve(false)
	defer stop2()
	db := "db"
	r := newProbeRunner(nil)
	r.second = 200 * time.Millisecond
	closedL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := closedL.Addr().(*net.TCPAddr).Port
	closedL.Close()
	for _, tt := range []struct {
		name    string
		port    int
		service *string
		want    probeResult
		output  string
	}{
		{"serving succeeds", healthy, nil, probeSuccess, ""},
		{"not serving fails", healthy, &db, probeFailure, `service unhealthy (responded with "NOT_SERVING")`},
		{"no health service fails", bare, nil, probeFailure, "does not implement the grpc health protocol"},
		{"nothing listening fails", closed, nil, probeFailure, "connection refused"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: int32(tt.port), Service: tt.service}}, TimeoutSeconds: 1}
			res, out := r.run(context.Background(), p, probeTarget{host: "127.0.0.1"})
			if res != tt.want || !strings.Contains(out, tt.output) {
				t.Fatalf("got %s %q, want %s %q", res, out, tt.want, tt.output)
			}
		})
	}
}
