package main

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/ledgerlet/ledgerlet/cmd/ledgerlet/internal/kubeletconfig"
)

// applyKubeletConfig sets, from the kubelet's configuration file, every flag
// the command line did not give: flags override the file, as with the
// kubelet. The flags it sets are recorded in AgentStarted like given ones.
func applyKubeletConfig(path string, fs *pflag.FlagSet, logger *slog.Logger) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return usagef("--config: %v", err)
	}
	s, err := kubeletconfig.Parse(path, data)
	if err != nil {
		return usagef("--config %v", err)
	}
	set := func(flag string, v *string) error {
		if v == nil || fs.Changed(flag) {
			return nil
		}
		if err := fs.Set(flag, *v); err != nil {
			return usagef("--config %s: %s: %v", path, flag, err)
		}
		return nil
	}
	str := func(v fmt.Stringer) *string {
		s := v.String()
		return &s
	}
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(set("pod-manifest-path", s.StaticPodPath))
	add(set("manifest-url", s.StaticPodURL))
	if len(s.StaticPodURLHeaders) > 0 && !fs.Changed("manifest-url-header") {
		for _, h := range s.StaticPodURLHeaders {
			add(fs.Set("manifest-url-header", h))
		}
	}
	add(set("container-runtime-endpoint", s.RuntimeEndpoint))
	add(set("cgroup-driver", s.CgroupDriver))
	add(set("cgroup-root", s.CgroupRoot))
	add(set("pod-logs-dir", s.PodLogsDir))
	if s.FileCheckFrequency != nil {
		add(set("file-check-frequency", str(s.FileCheckFrequency)))
	}
	if s.HTTPCheckFrequency != nil {
		add(set("http-check-frequency", str(s.HTTPCheckFrequency)))
	}
	add(set("container-log-max-size", s.ContainerLogMaxSize))
	if s.ContainerLogMaxFiles != nil {
		v := strconv.Itoa(*s.ContainerLogMaxFiles)
		add(set("container-log-max-files", &v))
	}
	add(set("healthz-bind-address", s.HealthzBind))
	if s.RegisterNode != nil {
		v := strconv.FormatBool(*s.RegisterNode)
		add(set("register-node", &v))
	}
	if len(errs) > 0 {
		return errs[0]
	}
	if len(s.Ignored) > 0 {
		logger.Warn("--config: fields ledgerlet does not act on are ignored", "file", path, "fields", strings.Join(s.Ignored, ","))
	}
	if len(s.Unknown) > 0 {
		logger.Warn("--config: unknown fields (not a KubeletConfiguration field) are ignored", "file", path, "fields", strings.Join(s.Unknown, ","))
	}
	return nil
}
