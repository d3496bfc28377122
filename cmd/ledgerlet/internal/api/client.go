package api

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
	"syscall"
	"time"

	"github.com/ledgerlet/ledgerlet/projector"
	"github.com/ledgerlet/ledgerlet/replay"
)

// Client talks HTTP to the agent over its unix socket.
type Client struct {
	sock string
	http *http.Client
}

// Dial prepares a client of the agent listening on sock.
func Dial(sock string) (*Client, error) {
	if _, err := os.Stat(sock); err != nil {
		return nil, fmt.Errorf("%w at %s (start `ledgerlet run`, or read a log file with --db)", ErrNoAgent, sock)
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	return &Client{sock: sock, http: &http.Client{Transport: tr}}, nil
}

func (a *Client) get(ctx context.Context, path string, q url.Values) (*http.Response, error) {
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
			return nil, fmt.Errorf("%w at %s (start `ledgerlet run`, or read a log file with --db)", ErrNoAgent, a.sock)
		}
		return nil, fmt.Errorf("ask agent at %s: %w", a.sock, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			if resp.StatusCode == http.StatusBadRequest {
				return nil, BadRequest{e.Error}
			}
			return nil, errors.New(e.Error)
		}
		return nil, fmt.Errorf("agent answered %s", resp.Status)
	}
	return resp, nil
}

// Pods is what runs now.
func (a *Client) Pods(ctx context.Context) ([]projector.PodView, error) {
	resp, err := a.get(ctx, "/v1/pods", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out PodsResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("read pods from agent: %w", err)
	}
	return out.Pods, nil
}

// Events streams the log's events (following it when follow is set).
func (a *Client) Events(ctx context.Context, f replay.Filter, follow bool, fn func(replay.Entry) error) error {
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

// History is one pod's timeline (the filter's times and types apply).
func (a *Client) History(ctx context.Context, pod string, f replay.Filter) ([]replay.Entry, error) {
	q := filterQuery(f)
	q.Set("pod", pod)
	resp, err := a.get(ctx, "/v1/history", q)
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

// Backup streams a consistent copy of the live log; the caller closes it.
func (a *Client) Backup(ctx context.Context) (io.ReadCloser, error) {
	resp, err := a.get(ctx, "/v1/backup", nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Close releases idle connections.
func (a *Client) Close() error {
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
	for _, t := range f.Types {
		q.Add("type", t)
	}
	return q
}

// PodsResponse is GET /v1/pods: the shape of `pods -o json`.
type PodsResponse struct {
	Pods []projector.PodView `json:"pods"`
}

// ErrNoAgent: nothing answers on the socket.
var ErrNoAgent = errors.New("no running agent")

// BadRequest is the agent refusing a request as malformed.
type BadRequest struct{ Msg string }

func (b BadRequest) Error() string { return b.Msg }
