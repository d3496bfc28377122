package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/ledgerlet/ledgerlet/replay"
)

// Timeline is the window's timeline, reduced to buckets columns.
func (a *Client) Timeline(ctx context.Context, opt replay.TimelineOptions) (*replay.Timeline, error) {
	q := filterQuery(opt.Filter)
	if opt.Buckets > 0 {
		q.Set("buckets", strconv.Itoa(opt.Buckets))
	}
	if opt.MaxMarkers > 0 {
		q.Set("maxMarkers", strconv.Itoa(opt.MaxMarkers))
	}
	resp, err := a.get(ctx, "/v1/timeline", q)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var tl replay.Timeline
	if err := json.NewDecoder(resp.Body).Decode(&tl); err != nil {
		return nil, fmt.Errorf("read timeline from agent: %w", err)
	}
	return &tl, nil
}

// Explain is why the pod is as it is, now or at opt.At.
func (a *Client) Explain(ctx context.Context, opt replay.ExplainOptions) (*replay.Explanation, error) {
	q := url.Values{"pod": {opt.Pod}}
	if !opt.At.IsZero() {
		q.Set("at", opt.At.Format(time.RFC3339Nano))
	}
	resp, err := a.get(ctx, "/v1/explain", q)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var x replay.Explanation
	if err := json.NewDecoder(resp.Body).Decode(&x); err != nil {
		return nil, fmt.Errorf("read explanation from agent: %w", err)
	}
	return &x, nil
}

// Export streams the records from seq from (0: the first retained) to
// emit; following, until ctx ends. A record is "more" while the next line
// is already buffered, so the caller commits when the stream pauses.
func (a *Client) Export(ctx context.Context, from uint64, follow bool, emit replay.EmitFunc) error {
	q := url.Values{"from": {strconv.FormatUint(from, 10)}}
	if follow {
		q.Set("follow", "1")
	}
	resp, err := a.get(ctx, "/v1/export", q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	br := bufio.NewReaderSize(resp.Body, 1<<20)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			var rec replay.ExportRecord
			if jerr := json.Unmarshal(line, &rec); jerr != nil {
				return fmt.Errorf("read export from agent: %w", jerr)
			}
			if eerr := emit(rec, br.Buffered() > 0); eerr != nil {
				return eerr
			}
		}
		if err != nil {
			if len(line) > 0 && line[len(line)-1] != '\n' && ctx.Err() == nil {
				return fmt.Errorf("read export from agent: the stream ended in the middle of a line: %w", err)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if follow {
				return fmt.Errorf("agent closed the export stream: %w", err)
			}
			return nil
		}
	}
}
