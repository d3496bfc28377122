package replay

import (
	"context"
	"log/slog"
	"time"
)

// NewOTLPSinkWith is NewOTLPSink with the environment taken from env and
// the waits between attempts made by sleep, so the tests in replay_test
// neither touch the process environment nor wait out a back-off.
func NewOTLPSinkWith(endpoint string, logger *slog.Logger, env map[string]string,
	sleep func(context.Context, time.Duration) error) (*OTLPSink, error) {
	s, err := newOTLPSink(endpoint, logger, func(k string) string { return env[k] })
	if err == nil && sleep != nil {
		s.sleep = sleep
	}
	return s, err
}
