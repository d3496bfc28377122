package sources

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ledgerlet/ledgerlet/eventlog"
	"github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

// Defaults for HTTPConfig, as in the kubelet.
const (
	DefaultHTTPCheckFrequency = 20 * time.Second
	DefaultHTTPTimeout        = 10 * time.Second
)

// HTTPConfig configures an HTTPSource (--manifest-url).
type HTTPConfig struct {
	URL string // http or https; the body is a Pod or a PodList
	// Header is sent with every request (--manifest-url-header, see
	// ParseHeaderFlags). A "Host" entry sets the request's host.
	Header   http.Header
	NodeName string
	Recorder Recorder
	Known    []Known
	// CheckFrequency is the polling period (--http-check-frequency). Default 20s.
	CheckFrequency time.Duration
	// Timeout bounds one request, body included. Default 10s.
	Timeout time.Duration
	// Transport is for tests and special TLS setups. By default a private
	// transport with the system's CAs and proxy settings is used, and its
	// connections are closed when Run returns.
	Transport http.RoundTripper
	Logger    *slog.Logger
}

// HTTPSource polls a URL for pods and appends what changes. A failed fetch
// (error status, timeout, undecodable body) keeps the current pods: it is
// recorded as SourceUnavailable once, until a fetch succeeds again
// (SourceAvailable).
//
// Unlike the kubelet, an empty 200 body is a failed fetch, not "no pods": a
// misbehaving server must not stop every pod. Serve an empty PodList
// ({"kind":"PodList","items":[]}) to remove them all.
type HTTPSource struct {
	cfg    HTTPConfig
	log    *slog.Logger
	client *http.Client

	ledger   ledger
	etag     string // of the last body appended, for If-None-Match
	bodyHash string // sha256 of the last body appended
	down     bool   // SourceUnavailable appended and not yet followed by SourceAvailable
	synced   bool
}

// NewHTTPSource checks the configuration. Nothing is fetched until Run.
func NewHTTPSource(cfg HTTPConfig) (*HTTPSource, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("http source: manifest URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("http source: manifest URL %q: must be an http or https URL", cfg.URL)
	}
	if cfg.Recorder == nil {
		return nil, errors.New("http source: no recorder")
	}
	if err := checkNodeName(cfg.NodeName); err != nil {
		return nil, fmt.Errorf("http source: %w", err)
	}
	if cfg.CheckFrequency <= 0 {
		cfg.CheckFrequency = DefaultHTTPCheckFrequency
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultHTTPTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &HTTPSource{
		cfg:    cfg,
		log:    cfg.Logger.With("source", SourceHTTP, "url", cfg.URL),
		ledger: newLedger(SourceHTTP, cfg.Known, func(k Known) string { return k.ContentHash }),
	}, nil
}

// ParseHeaderFlags turns --manifest-url-header values into headers. Each
// value is "Key:Value" or, as the kubelet accepts, a comma-separated list
// of them ("a:hello,b:again"); repeated keys accumulate.
func ParseHeaderFlags(values []string) (http.Header, error) {
	h := http.Header{}
	for _, v := range values {
		for _, pair := range strings.Split(v, ",") {
			k, val, ok := strings.Cut(pair, ":")
			k = strings.TrimSpace(k)
			if !ok || k == "" {
				return nil, fmt.Errorf("manifest URL header %q: want KEY:VALUE", pair)
			}
			h.Add(k, strings.TrimSpace(val))
		}
	}
	return h, nil
}

// Run fetches at once and then every CheckFrequency until ctx is done. It
// returns nil when ctx ends, with its idle connections closed.
func (s *HTTPSource) Run(ctx context.Context) error {
	transport := s.cfg.Transport
	if transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		defer t.CloseIdleConnections()
		transport = t
	}
	s.client = &http.Client{Timeout: s.cfg.Timeout, Transport: transport}

	ticker := time.NewTicker(s.cfg.CheckFrequency)
	defer ticker.Stop()
	for {
		s.poll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

func (s *HTTPSource) poll(ctx context.Context) {
	body, etag, notModified, err := s.fetch(ctx)
	if ctx.Err() != nil {
		return // shutting down; not the source's fault
	}
	if err != nil {
		s.unavailable(ctx, err.Error())
		return
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	if notModified || (hash == s.bodyHash && s.bodyHash != "") {
		s.append(ctx, nil, s.etag, s.bodyHash)
		return
	}
	items, err := ParseList(body, ParseOptions{NodeName: s.cfg.NodeName, Source: SourceHTTP, Path: s.cfg.URL, Seen: time.Now()})
	if err != nil {
		s.unavailable(ctx, err.Error())
		return
	}
	evs, next := reconcileList(s.ledger, s.cfg.URL, items)
	if s.append(ctx, evs, etag, hash) {
		s.ledger = next
	}
}

// append records evs together with the availability and sync facts they
// imply, and remembers the body only once they are durable.
func (s *HTTPSource) append(ctx context.Context, evs []eventlog.Event, etag, bodyHash string) bool {
	var all []eventlog.Event
	if s.down {
		all = append(all, eventlog.Event{Data: &eventpb.SourceAvailable{Source: SourceHTTP, Location: s.cfg.URL}})
	}
	all = append(all, evs...)
	if !s.synced {
		all = append(all, eventlog.Event{Data: &eventpb.SourceSynced{Source: SourceHTTP, Location: s.cfg.URL, Manifests: uint32(len(providedAfter(evs, s.ledger)))}})
	}
	if len(all) > 0 {
		if _, err := s.cfg.Recorder.Append(ctx, all...); err != nil {
			if ctx.Err() == nil {
				s.log.Error("append manifest events; will retry at the next poll", "events", len(all), "err", err)
			}
			return false
		}
		for _, ev := range all {
			logEvent(s.log, ev)
		}
	}
	s.down, s.synced = false, true
	s.etag, s.bodyHash = etag, bodyHash
	return true
}

// providedAfter is the set of pods provided once evs are applied to l.
func providedAfter(evs []eventlog.Event, l ledger) map[string]bool {
	m := make(map[string]bool, len(l.pods))
	for k := range l.pods {
		m[k] = true
	}
	for _, ev := range evs {
		switch ev.Data.(type) {
		case *eventpb.ManifestAdded:
			m[ev.Pod] = true
		case *eventpb.ManifestRemoved:
			delete(m, ev.Pod)
		}
	}
	return m
}

func (s *HTTPSource) unavailable(ctx context.Context, reason string) {
	if s.down {
		s.log.Debug("manifest URL still unavailable", "reason", reason)
		return
	}
	ev := eventlog.Event{Data: &eventpb.SourceUnavailable{Source: SourceHTTP, Location: s.cfg.URL, Reason: reason}}
	if _, err := s.cfg.Recorder.Append(ctx, ev); err != nil {
		if ctx.Err() == nil {
			s.log.Error("append SourceUnavailable; will retry at the next poll", "err", err)
		}
		return
	}
	s.log.Warn("manifest URL unavailable; keeping current pods", "reason", reason)
	s.down = true
}

// fetch GETs the URL. notModified is true for a 304 to our If-None-Match.
func (s *HTTPSource) fetch(ctx context.Context) (body []byte, etag string, notModified bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.URL, nil)
	if err != nil {
		return nil, "", false, fmt.Errorf("GET %s: %w", s.cfg.URL, err)
	}
	req.Header = s.cfg.Header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if host := req.Header.Get("Host"); host != "" {
		req.Host = host
	}
	if s.etag != "" && s.bodyHash != "" {
		req.Header.Set("If-None-Match", s.etag)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, "", false, fmt.Errorf("GET %s: %w", s.cfg.URL, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && s.etag != "":
		return nil, s.etag, true, nil
	case resp.StatusCode != http.StatusOK:
		// Read a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, "", false, fmt.Errorf("GET %s: %s", s.cfg.URL, resp.Status)
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, MaxManifestBytes+1))
	if err != nil {
		return nil, "", false, fmt.Errorf("GET %s: read body: %w", s.cfg.URL, err)
	}
	if len(body) > MaxManifestBytes {
		return nil, "", false, fmt.Errorf("GET %s: body is larger than %d bytes", s.cfg.URL, MaxManifestBytes)
	}
	return body, resp.Header.Get("ETag"), false, nil
}

// reconcileList compares the pods of one successful fetch with what the log
// holds. The list is the whole truth for the URL, except that a pod named by
// an invalid item keeps its last good version, and when an item is too
// broken to name its pod no pod is removed (it might have been that one).
func reconcileList(l ledger, location string, list []ListItem) ([]eventlog.Event, ledger) {
	next := l.clone()
	owners := next.uidOwners()
	valid := map[string]*Result{}
	index := map[string]int{}
	var order []string
	named := map[string]bool{}
	unnamed := false
	type refusal struct {
		pod, reason string
		raw         []byte
	}
	var refused []refusal

	for i, it := range list {
		if it.Err != nil {
			var me *ManifestError
			pod := ""
			if errors.As(it.Err, &me) {
				pod = me.Pod
			}
			if pod == "" {
				unnamed = true
			} else {
				named[pod] = true
			}
			refused = append(refused, refusal{pod, it.Err.Error(), it.Raw})
			continue
		}
		k := it.Result.Key
		if j, dup := index[k]; dup {
			refused = append(refused, refusal{k, fmt.Sprintf("%s items[%d]: duplicate pod %s: items[%d] already provides it", location, i, k, j), it.Raw})
			continue
		}
		valid[k], index[k] = it.Result, i
		order = append(order, k)
	}

	var removed, updated []eventlog.Event
	for _, k := range sortedKeys(next.pods) {
		h := next.pods[k]
		r, ok := valid[k]
		if !ok {
			if named[k] || unnamed {
				continue // keep the last good version
			}
			removed = append(removed, removedEvent(SourceHTTP, k, h))
			delete(next.pods, k)
			if owners[h.uid] == k {
				delete(owners, h.uid)
			}
			continue
		}
		if r.ContentHash == h.hash {
			continue
		}
		if other, ok := owners[r.UID]; ok && other != k {
			refused = append(refused, refusal{k, fmt.Sprintf("%s: uid %s is already used by pod %s", location, r.UID, other), r.Raw})
			continue
		}
		updated = append(updated, changedEvent(SourceHTTP, location, r, h))
		delete(owners, h.uid)
		owners[r.UID] = k
		next.pods[k] = held{path: location, hash: r.ContentHash, uid: r.UID}
	}
	for _, k := range order {
		if _, ok := next.pods[k]; ok {
			continue
		}
		r := valid[k]
		if other, ok := owners[r.UID]; ok {
			refused = append(refused, refusal{k, fmt.Sprintf("%s: uid %s is already used by pod %s", location, r.UID, other), r.Raw})
			continue
		}
		updated = append(updated, addedEvent(SourceHTTP, location, r))
		owners[r.UID] = k
		next.pods[k] = held{path: location, hash: r.ContentHash, uid: r.UID}
	}

	// A rejection is recorded once while its content keeps being served.
	var rejected []eventlog.Event
	next.rejected = map[string]string{}
	for _, r := range refused {
		sum := sha256.Sum256(r.raw)
		hash := hex.EncodeToString(sum[:])
		key := hash
		if len(r.raw) == 0 {
			hash, key = "", "error: "+r.reason
		}
		if _, seen := next.rejected[key]; seen {
			continue
		}
		next.rejected[key] = hash
		if _, seen := l.rejected[key]; seen {
			continue
		}
		rejected = append(rejected, rejectedEvent(SourceHTTP, location, r.pod, hash, r.reason, r.raw))
	}

	evs := make([]eventlog.Event, 0, len(removed)+len(updated)+len(rejected))
	evs = append(evs, removed...)
	evs = append(evs, updated...)
	return append(evs, rejected...), next
}
