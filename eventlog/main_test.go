package eventlog_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The crash test re-executes this binary as the appending child.
	if os.Getenv(crashChildEnv) != "" {
		os.Exit(crashChild(os.Getenv(crashChildEnv)))
	}
	goleak.VerifyTestMain(m)
}
