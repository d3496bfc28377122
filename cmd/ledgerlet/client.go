package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ledgerlet/ledgerlet/eventlog"
	"github.com/ledgerlet/ledgerlet/projector"
	"github.com/ledgerlet/ledgerlet/replay"
)

// ledger is what the read commands need, whether from a running agent over
// its unix socket or from a log file opened read-only (--db).
type ledger interface {
	Pods(ctx context.Context) ([]projector.PodView, error)
	Events(ctx context.Context, f replay.Filter, follow bool, fn func(replay.Entry) error) error
	History(ctx context.Context, pod string) ([]replay.Entry, error)
	Close() error
}

// readFlags are shared by the read commands.
type readFlags struct {
	dataDir string
	db      string
	output  string
}

func (r *readFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&r.dataDir, "data-dir", "/var/lib/ledgerlet", "the agent's data directory (its socket is <data-dir>/ledgerlet.sock)")
	c.Flags().StringVar(&r.db, "db", "", "read this log file offline instead of asking the running agent (never modified)")
	c.Flags().StringVarP(&r.output, "output", "o", "table", "output format: table or json")
}

func (r *readFlags) check() error {
	if r.output != "table" && r.output != "json" {
		return usagef("--output: %q is not one of table, json", r.output)
	}
	return nil
}

func (r *readFlags) open() (ledger, error) {
	if r.db != "" {
		return openOffline(r.db)
	}
	return dialAgent(filepath.Join(r.dataDir, "ledgerlet.sock"))
}

// openOffline opens a log file read-only.
func openOffline(path string) (*offlineLedger, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, usagef("--db %s: %v", path, errors.Unwrap(err))
	}
	l, err := eventlog.Open(path, eventlog.Options{ReadOnly: true, LockTimeout: time.Second})
	if err != nil {
		return nil, usageError{err}
	}
	return &offlineLedger{log: l}, nil
}

type offlineLedger struct{ log *eventlog.Log }

func (o *offlineLedger) Pods(ctx context.Context) ([]projector.PodView, error) {
	s, err := replay.StateAt(ctx, o.log, o.log.LastSeq())
	if err != nil {
		return nil, err
	}
	return s.Views(), nil
}

func (o *offlineLedger) Events(ctx context.Context, f replay.Filter, follow bool, fn func(replay.Entry) error) error {
	if follow {
		return usagef("--follow needs a running agent; it cannot follow a file opened with --db")
	}
	return replay.Events(ctx, o.log, f, func(e eventlog.Event) error {
		return fn(replay.Entry{JSONEvent: replay.ToJSON(e), Summary: replay.Summary(e)})
	})
}

func (o *offlineLedger) History(ctx context.Context, pod string) ([]replay.Entry, error) {
	return replay.History(ctx, o.log, pod, replay.Filter{})
}

func (o *offlineLedger) Close() error { return o.log.Close() }

// agentClient talks HTTP to the agent over its unix socket.
type agentClient struct {
	sock string
	http *http.Client
}

func dialAgent(sock string) (*agentClient, error) {
	if _, err := os.Stat(sock); err != nil {
		return nil, usagef("no running agent at %s (start `ledgerlet run`, or read a log file with --db)", sock)
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	return &agentClient{sock: sock, http: &http.Client{Transport: tr}}, nil
}

func (a *agentClient) get(ctx context.Context, path string, q url.Values) (*http.Response, error) {
	u := "http://ledgerlet" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return nil, usagef("no running agent at %s (start `ledgerlet run`, or read a log file with --db)", a.sock)
		}
		return nil, fmt.Errorf("ask agent at %s: %w", a.sock, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			if resp.StatusCode == http.StatusBadRequest {
				return nil, usagef("%s", e.Error)
			}
			return nil, errors.New(e.Error)
		}
		return nil, fmt.Errorf("agent answered %s", resp.Status)
	}
	return resp, nil
}

func (a *agentClient) Pods(ctx context.Context) ([]projector.PodView, error) {
	resp, err := a.get(ctx, "/v1/pods", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out podsJSON
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("read pods from agent: %w", err)
	}
	return out.Pods, nil
}

func (a *agentClient) Events(ctx context.Context, f replay.Filter, follow bool, fn func(replay.Entry) error) error {
	q := filterQuery(f)
	if follow {
		q.Set("follow", "1")
	}
	resp, err := a.get(ctx, "/v1/events", q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return decodeEntries(ctx, resp.Body, fn)
}

func (a *agentClient) History(ctx context.Context, pod string) ([]replay.Entry, error) {
	resp, err := a.get(ctx, "/v1/history", url.Values{"pod": {pod}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []replay.Entry
	err = decodeEntries(ctx, resp.Body, func(e replay.Entry) error {
		out = append(out, e)
		return nil
	})
	return out, err
}

func (a *agentClient) Close() error {
	a.http.CloseIdleConnections()
	return nil
}

func decodeEntries(ctx context.Context, r io.Reader, fn func(replay.Entry) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 32<<20)
	for sc.Scan() {
		var e replay.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("read event from agent: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("read events from agent: %w", err)
	}
	return nil
}

func filterQuery(f replay.Filter) url.Values {
	q := url.Values{}
	if f.Pod != "" {
		q.Set("pod", f.Pod)
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.Format(time.RFC3339Nano))
	}
	return q
}

type podsJSON struct {
	Pods []projector.PodView `json:"pods"`
}
