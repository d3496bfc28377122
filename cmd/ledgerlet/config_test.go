package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestConfigFileFlagsOverrideIt: the kubelet's configuration file sets what
// the command line does not give; flags given win, as with the kubelet; what
// came from the file is recorded like a flag.
func TestConfigFileFlagsOverrideIt(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: /etc/kubernetes/manifests
containerRuntimeEndpoint: unix:///run/x.sock
healthzBindAddress: 127.0.0.1
healthzPort: 10248
fileCheckFrequency: 0s
httpCheckFrequency: 7s
containerLogMaxSize: 1Mi
containerLogMaxFiles: 3
staticPodURL: http://127.0.0.1:1/pods
staticPodURLHeader: {X-A: [one]}
clusterDNS: [10.96.0.10]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newRunCmd()
	if err := c.ParseFlags([]string{"--config", cfg, "--healthz-bind-address", "127.0.0.1:10300"}); err != nil {
		t.Fatal(err)
	}
	f := c.Flags()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := applyKubeletConfig(cfg, f, logger); err != nil {
		t.Fatal(err)
	}
	for flag, want := range map[string]string{
		"pod-manifest-path":          "/etc/kubernetes/manifests",
		"container-runtime-endpoint": "unix:///run/x.sock",
		"healthz-bind-address":       "127.0.0.1:10300", // the flag wins
		"file-check-frequency":       "20s",             // 0s: the default
		"http-check-frequency":       "7s",
		"container-log-max-size":     "1Mi",
		"container-log-max-files":    "3",
		"manifest-url":               "http://127.0.0.1:1/pods",
		"manifest-url-header":        "[X-A:one]",
	} {
		if got := f.Lookup(flag).Value.String(); got != want {
			t.Errorf("--%s = %q, want %q", flag, got, want)
		}
	}
	rec := setFlags(f)
	if !slices.Contains(rec, "--pod-manifest-path=/etc/kubernetes/manifests") {
		t.Errorf("flags recorded in AgentStarted lack the file's values: %v", rec)
	}
}

func TestConfigFileErrorsNameTheField(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nhealthzPort: many\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newRunCmd()
	if err := c.ParseFlags([]string{"--config", cfg}); err != nil {
		t.Fatal(err)
	}
	err := applyKubeletConfig(cfg, c.Flags(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "healthzPort") || !strings.Contains(err.Error(), cfg) {
		t.Fatalf("err = %v, want one naming %s and healthzPort", err, cfg)
	}
	if _, ok := err.(usageError); !ok {
		t.Errorf("err is %T, want a usage error (exit 2)", err)
	}
	if err := applyKubeletConfig(filepath.Join(dir, "missing.yaml"), c.Flags(), slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
		t.Fatal("a missing config file was accepted")
	}
}
