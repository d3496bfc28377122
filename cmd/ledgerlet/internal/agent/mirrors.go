package agent

import (
	"context"
	"log/slog"

	"github.com/ledgerlet/ledgerlet/runtime"
)

// mirrorAgent is the apiserver side: an actor (node, lease, watch) and the
// mirror lane's effector.
type mirrorAgent interface {
	runtime.Effector
	Run(ctx context.Context) error
}

func newMirrors(_ context.Context, cfg Config, _ string, _ runtime.Recorder, _ *projection, _ *slog.Logger) (mirrorAgent, error) {
	if cfg.Kubeconfig == "" {
		return nil, nil
	}
	return nil, configErrorf("--kubeconfig: mirror pods are not supported yet")
}
