// Package api is the agent's local API on its unix socket <data-dir>/ledgerlet.sock:
// the server the agent runs, the client the read commands use, and the wire
// types between them. It serves only reads of the ledger and the projection.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/ledgerlet/ledgerlet/eventlog"
	"github.com/ledgerlet/ledgerlet/projector"
	"github.com/ledgerlet/ledgerlet/replay"
)

// StateReader is the agent's live projection as the API reads it.
type StateReader interface {
	// WaitFor returns once event seq has been folded.
	WaitFor(ctx context.Context, seq uint64) error
	// Views renders the pods as of now.
	Views(now time.Time) []projector.PodView
}

// Server serves the read commands over the agent's unix socket.
type Server struct {
	Log    *eventlog.Log
	State  StateReader
	Logger *slog.Logger
}

// Serve returns an actor serving on l until its ctx ends.
func (a *Server) Serve(l net.Listener) func(context.Context) error {
	return func(ctx context.Context) error {
		srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 5 * time.Second,
			BaseContext: func(net.Listener) context.Context { return ctx }}
		return ServeHTTP(ctx, srv, l)
	}
}

func (a *Server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/pods", a.pods)
	mux.HandleFunc("GET /v1/events", a.events)
	mux.HandleFunc("GET /v1/history", a.history)
	mux.HandleFunc("GET /v1/backup", a.backup)
	a.registerAudit(mux)
	return mux
}

func (a *Server) pods(w http.ResponseWriter, r *http.Request) {
	// Answer with everything committed when the request arrived.
	if err := a.State.WaitFor(r.Context(), a.Log.LastSeq()); err != nil {
		httpError(w, http.StatusServiceUnavailable, err)
		return
	}
	writeJSON(w, PodsResponse{Pods: a.State.Views(time.Now())})
}

func (a *Server) filter(r *http.Request) (replay.Filter, error) {
	q := r.URL.Query()
	f := replay.Filter{Pod: q.Get("pod")}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return f, fmt.Errorf("%s %q: want an RFC3339 time", p.name, v)
			}
			*p.t = t
		}
	}
	f.Types = q["type"]
	return f, nil
}

func (a *Server) events(w http.ResponseWriter, r *http.Request) {
	f, err := a.filter(r)
	if err != nil {
		httpError(w, http.StatusBadRequest, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	emit := func(e eventlog.Event) error {
		return enc.Encode(replay.Entry{JSONEvent: replay.ToJSON(e), Summary: replay.Summary(e)})
	}
	if r.URL.Query().Get("follow") == "" {
		if err := replay.Events(r.Context(), a.Log, f, emit); err != nil {
			a.Logger.Warn("serve events", "err", err)
		}
		return
	}
	from, _, err := f.Range(a.Log)
	if err != nil {
		from = a.Log.LastSeq() + 1
	}
	sub := a.Log.Subscribe(from)
	defer sub.Close()
	flusher, _ := w.(http.Flusher)
	for {
		e, err := sub.Next(r.Context())
		if err != nil {
			return
		}
		if (f.Pod != "" && e.Pod != f.Pod) || !f.MatchType(e) {
			continue
		}
		if !f.Until.IsZero() && e.Time.After(f.Until) {
			return
		}
		if err := emit(e); err != nil {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
}

func (a *Server) history(w http.ResponseWriter, r *http.Request) {
	pod := r.URL.Query().Get("pod")
	if pod == "" {
		httpError(w, http.StatusBadRequest, errors.New("pod is required"))
		return
	}
	f, err := a.filter(r)
	if err != nil {
		httpError(w, http.StatusBadRequest, err)
		return
	}
	entries, err := replay.History(r.Context(), a.Log, pod, f)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	for _, e := range entries {
		if err := enc.Encode(e); err != nil {
			return
		}
	}
}

func (a *Server) backup(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	if _, err := a.Log.Backup(w); err != nil {
		a.Logger.Warn("backup failed", "err", err)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func httpError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

// Listen listens on the unix socket path with mode 0600, replacing a stale
// socket left by a crashed agent but refusing to steal one that answers. The
// socket lives in the data dir, which is 0700, so it is never reachable by
// others, not even between its creation and the chmod.
func Listen(path string) (net.Listener, error) {
	if _, err := os.Stat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen on %s: another agent is running with this data dir", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	return l, nil
}

// ServeHTTP runs srv on l until ctx is done, then shuts it down.
func ServeHTTP(ctx context.Context, srv *http.Server, l net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
		<-errc
		return nil
	}
}
