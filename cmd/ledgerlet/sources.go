package main

import (
	"context"
	"log/slog"
	"sort"

	"github.com/oklog/run"

	"github.com/ledgerlet/ledgerlet/projector"
	"github.com/ledgerlet/ledgerlet/sources"
)

// addSources adds the configured manifest sources as actors. Each starts
// from what the log already says it provides, so a restart over unchanged
// manifests appends nothing.
func (f *runFlags) addSources(_ *run.Group, actor func(string, func(context.Context) error), rec sources.Recorder, proj *projection, node string, logger *slog.Logger) error {
	known := proj.Known()
	if f.podManifestPath != "" {
		src, err := sources.NewFileSource(sources.FileConfig{
			Path: f.podManifestPath, NodeName: node, Recorder: rec, Known: known,
			CheckFrequency: f.fileCheckFrequency, Logger: logger.With("source", "file"),
		})
		if err != nil {
			return usagef("--pod-manifest-path: %v", err)
		}
		actor("file source", src.Run)
	}
	if f.manifestURL != "" {
		header, err := sources.ParseHeaderFlags(f.manifestURLHeaders)
		if err != nil {
			return usagef("--manifest-url-header: %v", err)
		}
		src, err := sources.NewHTTPSource(sources.HTTPConfig{
			URL: f.manifestURL, Header: header, NodeName: node, Recorder: rec, Known: known,
			CheckFrequency: f.httpCheckFrequency, Logger: logger.With("source", "http"),
		})
		if err != nil {
			return usagef("--manifest-url: %v", err)
		}
		actor("http source", src.Run)
	}
	return nil
}

// Known derives, from the projected state, what each source has recorded.
func (p *projection) Known() []sources.Known {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return knownFromState(p.state)
}

func knownFromState(s *projector.State) []sources.Known {
	var out []sources.Known
	for key, pod := range s.Pods {
		if pod.Removed || pod.Spec == nil {
			continue
		}
		out = append(out, sources.Known{Source: pod.Source, Path: pod.Path, ContentHash: pod.ContentHash, Pod: key, UID: pod.UID})
	}
	for _, m := range s.Manifests {
		if m.Rejected {
			out = append(out, sources.Known{Source: m.Source, Path: m.Path, ContentHash: m.ContentHash, Rejected: true})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Pod < out[j].Pod
	})
	return out
}
