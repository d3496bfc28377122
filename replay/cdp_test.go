package replay_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// chromiumPath is Debian's package; .ci/run installs it.
const chromiumPath = "/usr/bin/chromium"

// browser is a headless Chromium driven over the DevTools protocol: a
// small hand-written client (one websocket, flat sessions), enough to load
// a page, watch its console and network, query the DOM and take a
// screenshot.
type browser struct {
	t    *testing.T
	cmd  *exec.Cmd
	ws   *websocket.Conn
	done chan struct{} // closed when the reader ends

	mu      sync.Mutex
	nextID  int
	waiting map[int]chan cdpMessage
	events  []cdpMessage
	notify  chan struct{}
}

type cdpMessage struct {
	ID        int             `json:"id,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

func startBrowser(t *testing.T, width, height int) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("%s is absent: install Debian's chromium package (apt-get install -y chromium; .ci/run does) to run the browser test", chromiumPath)
	}
	cmd := exec.Command(chromiumPath, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
		"--user-data-dir="+t.TempDir(), fmt.Sprintf("--window-size=%d,%d", width, height), "--hide-scrollbars",
		"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--remote-allow-origins=http://127.0.0.1", "about:blank")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, cmd: cmd, done: make(chan struct{}), waiting: map[int]chan cdpMessage{}, notify: make(chan struct{}, 1)}
	t.Cleanup(b.close)
	urlc := make(chan string, 1)
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if i := strings.Index(line, "ws://"); i >= 0 && strings.Contains(line, "DevTools listening") {
				select {
				case urlc <- line[i:]:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() { <-logDone })
	var wsURL string
	select {
	case wsURL = <-urlc:
	case <-time.After(30 * time.Second):
		t.Fatal("chromium did not open its DevTools port within 30s")
	}
	cfg, err := websocket.NewConfig(wsURL, "http://127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Dialer = nil
	if b.ws, err = websocket.DialConfig(cfg); err != nil {
		t.Fatalf("dial DevTools at %s: %v", wsURL, err)
	}
	b.ws.MaxPayloadBytes = 64 << 20
	go b.read()
	return b
}

func (b *browser) read() {
	defer close(b.done)
	for {
		var m cdpMessage
		if err := websocket.JSON.Receive(b.ws, &m); err != nil {
			return
		}
		b.mu.Lock()
		if m.ID != 0 {
			if ch := b.waiting[m.ID]; ch != nil {
				ch <- m
				delete(b.waiting, m.ID)
			}
		} else {
			b.events = append(b.events, m)
			select {
			case b.notify <- struct{}{}:
			default:
			}
		}
		b.mu.Unlock()
	}
}

// call sends a command (in session, "" for the browser) and waits for its result.
func (b *browser) call(session, method string, params any, result any) {
	b.t.Helper()
	if params == nil {
		params = struct{}{}
	}
	p, err := json.Marshal(params)
	if err != nil {
		b.t.Fatal(err)
	}
	ch := make(chan cdpMessage, 1)
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	b.waiting[id] = ch
	b.mu.Unlock()
	if err := websocket.JSON.Send(b.ws, cdpMessage{ID: id, SessionID: session, Method: method, Params: p}); err != nil {
		b.t.Fatalf("%s: %v", method, err)
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			b.t.Fatalf("%s: %s", method, m.Error.Message)
		}
		if result != nil {
			if err := json.Unmarshal(m.Result, result); err != nil {
				b.t.Fatalf("%s: decode result: %v", method, err)
			}
		}
	case <-time.After(30 * time.Second):
		b.t.Fatalf("%s: no answer within 30s", method)
	}
}

// waitEvent waits for an event of method in session.
func (b *browser) waitEvent(ctx context.Context, session, method string) {
	b.t.Helper()
	for {
		b.mu.Lock()
		for _, e := range b.events {
			if e.Method == method && e.SessionID == session {
				b.mu.Unlock()
				return
			}
		}
		b.mu.Unlock()
		select {
		case <-b.notify:
		case <-ctx.Done():
			b.t.Fatalf("no %s event: %v", method, ctx.Err())
		}
	}
}

// eventsOf returns the events of one method so far.
func (b *browser) eventsOf(method string) []cdpMessage {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []cdpMessage
	for _, e := range b.events {
		if e.Method == method {
			out = append(out, e)
		}
	}
	return out
}

// eval evaluates a JavaScript expression in the page and decodes its value.
func (b *browser) eval(session, expr string, v any) {
	b.t.Helper()
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	b.call(session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &res)
	if res.ExceptionDetails != nil {
		b.t.Fatalf("evaluate %q: %s", expr, res.ExceptionDetails.Text)
	}
	if err := json.Unmarshal(res.Result.Value, v); err != nil {
		b.t.Fatalf("evaluate %q: %v (%s)", expr, err, res.Result.Value)
	}
}

func (b *browser) close() {
	if b.ws != nil {
		// Ask politely, then make sure.
		_ = websocket.JSON.Send(b.ws, cdpMessage{ID: 1 << 30, Method: "Browser.close", Params: json.RawMessage(`{}`)})
		b.ws.Close()
		<-b.done
		b.ws = nil
	}
	if b.cmd.Process != nil {
		exited := make(chan struct{})
		go func() { _ = b.cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = b.cmd.Process.Kill()
			<-exited
		}
		b.cmd.Process = nil
	}
}
