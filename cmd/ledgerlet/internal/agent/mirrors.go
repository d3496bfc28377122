package agent

import (
	"context"
	"log/slog"

	"github.com/ledgerlet/ledgerlet/projector"
	"github.com/ledgerlet/ledgerlet/runtime"
	"github.com/ledgerlet/ledgerlet/runtime/mirror"
)

// mirrorAgent is the apiserver side: an actor (node, lease, watch) and the
// mirror lane's effector.
type mirrorAgent interface {
	runtime.Effector
	Run(ctx context.Context) error
}

// newMirrors builds the apiserver side when a kubeconfig is given (nil
// otherwise: no mirror lane in this run).
func newMirrors(ctx context.Context, cfg Config, nodeIP string, rec runtime.Recorder, proj *projection, logger *slog.Logger) (mirrorAgent, error) {
	if cfg.Kubeconfig == "" {
		return nil, nil
	}
	a, err := mirror.New(ctx, mirror.Config{
		Kubeconfig: cfg.Kubeconfig, NodeName: cfg.NodeName, NodeIP: nodeIP, Version: cfg.Version,
		Recorder: rec, RegisterNode: cfg.RegisterNode, Logger: logger.With("component", "apiserver"),
		Known: func() map[string]projector.Mirror {
			out := map[string]projector.Mirror{}
			proj.Read(func(s *projector.State) {
				for key, p := range s.Pods {
					if p.Mirror != nil {
						out[key] = *p.Mirror
					}
				}
			})
			return out
		},
		RuntimeReady: func() (ok bool) {
			proj.Read(func(s *projector.State) { ok = s.Runtime.Connected })
			return ok
		},
		RuntimeVersion: func() (v string) {
			proj.Read(func(s *projector.State) {
				if s.Runtime.Name != "" {
					v = s.Runtime.Name + "://" + s.Runtime.Version
				}
			})
			return v
		},
	})
	if err != nil {
		return nil, configErrorf("--kubeconfig: %v", err)
	}
	return a, nil
}
