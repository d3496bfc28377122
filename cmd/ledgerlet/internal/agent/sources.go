package agent

import (
	"context"
	"log/slog"
	"sort"

	"github.com/ledgerlet/ledgerlet/projector"
	"github.com/ledgerlet/ledgerlet/sources"
)

// sourceSet is the manifest sources configured in this run.
type sourceSet struct {
	names  []string // "<source> <location>", as AgentStarted records them
	actors []sourceActor
}

type sourceActor struct {
	name string
	run  func(context.Context) error
}

func (s sourceSet) configured() []string { return s.names }

// newSources builds the configured manifest sources. Each starts from what
// the log already says it provides, so a restart over unchanged manifests
// appends nothing.
func newSources(cfg Config, rec sources.Recorder, known []sources.Known, logger *slog.Logger) (sourceSet, error) {
	var set sourceSet
	if cfg.PodManifestPath == "" && cfg.ManifestURL == "" {
		return set, configErrorf("give --pod-manifest-path DIR|FILE and/or --manifest-url URL")
	}
	if cfg.PodManifestPath != "" {
		src, err := sources.NewFileSource(sources.FileConfig{
			Path: cfg.PodManifestPath, NodeName: cfg.NodeName, Recorder: rec, Known: known,
			CheckFrequency: cfg.FileCheckFrequency, StrictPermissions: cfg.StrictManifestPermissions,
			Logger: logger.With("source", "file"),
		})
		if err != nil {
			return set, configErrorf("--pod-manifest-path: %v", err)
		}
		set.names = append(set.names, sources.SourceFile+" "+src.Location())
		set.actors = append(set.actors, sourceActor{"file source", src.Run})
	}
	if cfg.ManifestURL != "" {
		header, err := sources.ParseHeaderFlags(cfg.ManifestURLHeaders)
		if err != nil {
			return set, configErrorf("--manifest-url-header: %v", err)
		}
		src, err := sources.NewHTTPSource(sources.HTTPConfig{
			URL: cfg.ManifestURL, Header: header, NodeName: cfg.NodeName, Recorder: rec, Known: known,
			CheckFrequency: cfg.HTTPCheckFrequency, Logger: logger.With("source", "http"),
		})
		if err != nil {
			return set, configErrorf("--manifest-url: %v", err)
		}
		set.names = append(set.names, sources.SourceHTTP+" "+src.Location())
		set.actors = append(set.actors, sourceActor{"http source", src.Run})
	}
	return set, nil
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
