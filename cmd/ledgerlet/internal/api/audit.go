package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/ledgerlet/ledgerlet/eventlog"
	"github.com/ledgerlet/ledgerlet/replay"
)

// The audit endpoints: a timeline of a window, an explanation of one pod,
// and the export stream. They read the log as replay does offline; the
// live agent only adds the wall clock ("now") and following.

func (a *Server) registerAudit(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/timeline", a.timeline)
	mux.HandleFunc("GET /v1/explain", a.explain)
	mux.HandleFunc("GET /v1/export", a.export)
}

func queryInt(r *http.Request, name string) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s %q: want a number", name, v)
	}
	return n, nil
}

// timeline answers GET /v1/timeline?pod&since&until&buckets&maxMarkers
// with the Timeline as JSON; the window ends now unless until says.
func (a *Server) timeline(w http.ResponseWriter, r *http.Request) {
	f, err := a.filter(r)
	if err != nil {
		httpError(w, http.StatusBadRequest, err)
		return
	}
	buckets, err := queryInt(r, "buckets")
	if err != nil {
		httpError(w, http.StatusBadRequest, err)
		return
	}
	maxMarkers, err := queryInt(r, "maxMarkers")
	if err != nil {
		httpError(w, http.StatusBadRequest, err)
		return
	}
	if f.Until.IsZero() {
		f.Until = time.Now()
	}
	tl, err := replay.BuildTimeline(r.Context(), a.Log, replay.TimelineOptions{Filter: f, Buckets: buckets, MaxMarkers: maxMarkers})
	if err != nil {
		httpError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, tl)
}

// explain answers GET /v1/explain?pod&at with the Explanation as JSON.
func (a *Server) explain(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	opt := replay.ExplainOptions{Pod: q.Get("pod"), Now: time.Now(), Boottime: eventlog.Boottime()}
	if opt.Pod == "" {
		httpError(w, http.StatusBadRequest, errors.New("pod is required"))
		return
	}
	if v := q.Get("at"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			httpError(w, http.StatusBadRequest, fmt.Errorf("at %q: want an RFC3339 time", v))
			return
		}
		opt.At, opt.Now, opt.Boottime = t, t, 0
	}
	x, err := replay.Explain(r.Context(), a.Log, opt)
	switch {
	case errors.Is(err, replay.ErrUnknownPod):
		httpError(w, http.StatusBadRequest, err)
		return
	case err != nil:
		httpError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, x)
}

// export answers GET /v1/export?from=N[&follow=1]: the records from seq N
// (0: the first retained) as JSON lines, a Gap line where retention
// dropped what was asked for; following, each new event as it commits.
// Lines are flushed whenever no further event is ready.
func (a *Server) export(w http.ResponseWriter, r *http.Request) {
	from, err := strconv.ParseUint(r.URL.Query().Get("from"), 10, 64)
	if r.URL.Query().Get("from") == "" {
		from, err = 0, nil
	}
	if err != nil {
		httpError(w, http.StatusBadRequest, fmt.Errorf("from %q: want a seq", r.URL.Query().Get("from")))
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	emit := func(rec replay.ExportRecord, more bool) error {
		if err := enc.Encode(rec); err != nil {
			return err
		}
		if !more && flusher != nil {
			flusher.Flush()
		}
		return nil
	}
	if r.URL.Query().Get("follow") == "" {
		err = replay.ExportLog(r.Context(), a.Log, from, time.Now(), emit)
	} else {
		err = replay.FollowLog(r.Context(), a.Log, from, emit)
	}
	if err != nil && r.Context().Err() == nil {
		a.Logger.Warn("serve export", "err", err)
	}
}
