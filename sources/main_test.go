package sources

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ledgerlet/ledgerlet/eventlog"
	"github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recorder is a fake Recorder that keeps what was appended, one slice per
// Append call.
type recorder struct {
	mu      sync.Mutex
	batches [][]eventlog.Event
	fail    error
	signal  chan struct{}
}

func newRecorder() *recorder { return &recorder{signal: make(chan struct{}, 1)} }

func (r *recorder) Append(ctx context.Context, evs ...eventlog.Event) ([]uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return nil, r.fail
	}
	for _, ev := range evs {
		if _, err := eventlog.Encode(ev); err != nil {
			return nil, err
		}
	}
	r.batches = append(r.batches, slices.Clone(evs))
	select {
	case r.signal <- struct{}{}:
	default:
	}
	seqs := make([]uint64, len(evs))
	return seqs, nil
}

func (r *recorder) setFail(err error) {
	r.mu.Lock()
	r.fail = err
	r.mu.Unlock()
}

func (r *recorder) events() []eventlog.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []eventlog.Event
	for _, b := range r.batches {
		all = append(all, b...)
	}
	return all
}

func (r *recorder) calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.batches)
}

// summary renders events as "Type pod base(path)" lines for comparison.
func summary(evs []eventlog.Event) []string {
	out := make([]string, 0, len(evs))
	for _, ev := range evs {
		s := ev.Type()
		switch d := ev.Data.(type) {
		case *eventpb.ManifestAdded:
			s += " " + ev.Pod + " " + filepath.Base(d.Path)
		case *eventpb.ManifestChanged:
			s += " " + ev.Pod + " " + filepath.Base(d.Path)
		case *eventpb.ManifestRemoved:
			s += " " + ev.Pod + " " + filepath.Base(d.Path)
		case *eventpb.ManifestRejected:
			s += " " + ev.Pod + " " + filepath.Base(d.Path)
		}
		out = append(out, s)
	}
	return out
}

// waitFor polls the recorder until cond holds.
func (r *recorder) waitFor(t *testing.T, what string, cond func([]string) bool) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := summary(r.events())
		if cond(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; events:\n%s", what, strings.Join(got, "\n"))
		}
		select {
		case <-r.signal:
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func hasLine(line string) func([]string) bool {
	return func(got []string) bool { return slices.Contains(got, line) }
}

func countPrefix(got []string, prefix string) int {
	n := 0
	for _, g := range got {
		if strings.HasPrefix(g, prefix) {
			n++
		}
	}
	return n
}

// knownFrom derives Known from events the way the caller projects the log.
func knownFrom(evs []eventlog.Event) []Known {
	type pk struct{ source, pod string }
	type rk struct{ source, key string }
	pods := map[pk]Known{}
	rejected := map[rk]Known{}
	for _, ev := range evs {
		switch d := ev.Data.(type) {
		case *eventpb.ManifestAdded:
			pods[pk{d.Source, ev.Pod}] = Known{Source: d.Source, Path: d.Path, ContentHash: d.ContentHash, Pod: ev.Pod, UID: d.Uid}
			delete(rejected, rk{d.Source, d.Path})
		case *eventpb.ManifestChanged:
			pods[pk{d.Source, ev.Pod}] = Known{Source: d.Source, Path: d.Path, ContentHash: d.ContentHash, Pod: ev.Pod, UID: d.Uid}
			delete(rejected, rk{d.Source, d.Path})
		case *eventpb.ManifestRemoved:
			delete(pods, pk{d.Source, ev.Pod})
		case *eventpb.ManifestRejected:
			key := d.Path
			if d.Source == SourceHTTP {
				key = d.ContentHash
			}
			rejected[rk{d.Source, key}] = Known{Source: d.Source, Path: d.Path, ContentHash: d.ContentHash, Pod: ev.Pod, Rejected: true}
		}
	}
	var out []Known
	for _, k := range pods {
		out = append(out, k)
	}
	for _, k := range rejected {
		out = append(out, k)
	}
	return out
}

// testLogger writes to the test's output, shown only for failures and -v.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func podYAML(name, image string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\nspec:\n  containers:\n  - name: main\n    image: %s\n    command: [sleep, \"3600\"]\n", name, image)
}
