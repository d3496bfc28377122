package main

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
	"github.com/ledgerlet/ledgerlet/replay"
)

// api serves the read commands over the agent's unix socket.
type api struct {
	log    *eventlog.Log
	proj   *projection
	logger *slog.Logger
}

func (a *api) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/pods", a.pods)
	mux.HandleFunc("GET /v1/events", a.events)
	mux.HandleFunc("GET /v1/history", a.history)
	mux.HandleFunc("GET /v1/backup", a.backup)
	return mux
}

func (a *api) pods(w http.ResponseWriter, r *http.Request) {
	// Answer with everything committed when the request arrived.
	if err := a.proj.WaitFor(r.Context(), a.log.LastSeq()); err != nil {
		httpError(w, http.StatusServiceUnavailable, err)
		return
	}
	writeJSON(w, podsJSON{Pods: a.proj.Views(time.Now())})
}

func (a *api) filter(r *http.Request) (replay.Filter, error) {
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
	return f, nil
}

func (a *api) events(w http.ResponseWriter, r *http.Request) {
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
		if err := replay.Events(r.Context(), a.log, f, emit); err != nil {
			a.logger.Warn("serve events", "err", err)
		}
		return
	}
	from, _, err := f.Range(a.log)
	if err != nil {
		from = a.log.LastSeq() + 1
	}
	sub := a.log.Subscribe(from)
	defer sub.Close()
	flusher, _ := w.(http.Flusher)
	for {
		e, err := sub.Next(r.Context())
		if err != nil {
			return
		}
		if f.Pod != "" && e.Pod != f.Pod {
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

func (a *api) history(w http.ResponseWriter, r *http.Request) {
	pod := r.URL.Query().Get("pod")
	if pod == "" {
		httpError(w, http.StatusBadRequest, errors.New("pod is required"))
		return
	}
	entries, err := replay.History(r.Context(), a.log, pod, replay.Filter{})
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

func (a *api) backup(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	if _, err := a.log.Backup(w); err != nil {
		a.logger.Warn("backup failed", "err", err)
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

// listenUnix listens on path with mode 0600, replacing a stale socket left by
// a crashed agent but refusing to steal one that answers.
func listenUnix(path string) (net.Listener, error) {
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

// serveHTTP runs srv on l until ctx is done, then shuts it down.
func serveHTTP(ctx context.Context, srv *http.Server, l net.Listener) error {
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
