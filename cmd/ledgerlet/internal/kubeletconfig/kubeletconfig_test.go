package kubeletconfig

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	head := "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
	tests := []struct {
		name    string
		in      string
		check   func(t *testing.T, s *Settings)
		wantErr string // substring; the field must be named
	}{
		{name: "empty config sets nothing", in: head, check: func(t *testing.T, s *Settings) {
			if s.StaticPodPath != nil || s.HealthzBind != nil || len(s.Ignored) != 0 {
				t.Errorf("got %+v", s)
			}
		}},
		{name: "used fields", in: head + `staticPodPath: /etc/kubernetes/manifests
staticPodURL: http://x/pods
staticPodURLHeader: {B: [two], A: [one, also]}
containerRuntimeEndpoint: unix:///run/c.sock
cgroupDriver: systemd
cgroupRoot: /pods
podLogsDir: /var/log/pods
fileCheckFrequency: 5s
httpCheckFrequency: 1m
containerLogMaxSize: 5Mi
containerLogMaxFiles: 3
healthzBindAddress: 127.0.0.1
healthzPort: 10248
registerNode: false
`, check: func(t *testing.T, s *Settings) {
			if *s.StaticPodPath != "/etc/kubernetes/manifests" || *s.StaticPodURL != "http://x/pods" ||
				*s.RuntimeEndpoint != "unix:///run/c.sock" || *s.CgroupDriver != "systemd" || *s.CgroupRoot != "/pods" ||
				*s.PodLogsDir != "/var/log/pods" || *s.FileCheckFrequency != 5*time.Second || *s.HTTPCheckFrequency != time.Minute ||
				*s.ContainerLogMaxSize != "5Mi" || *s.ContainerLogMaxFiles != 3 || *s.HealthzBind != "127.0.0.1:10248" || *s.RegisterNode {
				t.Errorf("got %+v", s)
			}
			if got := strings.Join(s.StaticPodURLHeaders, ";"); got != "A:one;A:also;B:two" {
				t.Errorf("headers %q", got)
			}
			if len(s.Ignored) != 0 || len(s.Unknown) != 0 {
				t.Errorf("ignored %v unknown %v", s.Ignored, s.Unknown)
			}
		}},
		{name: "healthzPort 0 turns the health server off", in: head + "healthzPort: 0\n", check: func(t *testing.T, s *Settings) {
			if s.HealthzBind == nil || *s.HealthzBind != "" {
				t.Errorf("got %v", s.HealthzBind)
			}
		}},
		{name: "healthzPort alone keeps the kubelet's default address", in: head + "healthzPort: 10300\n", check: func(t *testing.T, s *Settings) {
			if *s.HealthzBind != "127.0.0.1:10300" {
				t.Errorf("got %v", *s.HealthzBind)
			}
		}},
		{name: "fields not acted on are named", in: head + "clusterDNS: [10.96.0.10]\nrotateCertificates: true\nauthentication: {anonymous: {enabled: false}}\n", check: func(t *testing.T, s *Settings) {
			if got := strings.Join(s.Ignored, ","); got != "authentication,clusterDNS,rotateCertificates" {
				t.Errorf("ignored %q", got)
			}
		}},
		{name: "unknown fields are named, not fatal (the kubelet decodes leniently)", in: head + "noSuchField: 1\nauthentication: {bogus: true}\n", check: func(t *testing.T, s *Settings) {
			if got := strings.Join(s.Unknown, ","); got != "authentication.bogus,noSuchField" {
				t.Errorf("unknown %q", got)
			}
			if len(s.Ignored) != 0 {
				t.Errorf("ignored %v", s.Ignored)
			}
		}},
		{name: "wrong kind", in: "apiVersion: v1\nkind: Pod\n", wantErr: "apiVersion/kind"},
		{name: "not an object", in: "- a\n", wantErr: "want a KubeletConfiguration"},
		{name: "not YAML", in: "a: [", wantErr: "not YAML"},
		{name: "wrong type names the field", in: head + "staticPodPath: [a]\n", wantErr: "staticPodPath"},
		{name: "wrong type in an unused field names it", in: head + "maxPods: lots\n", wantErr: "maxPods"},
		{name: "bad duration", in: head + "fileCheckFrequency: soon\n", wantErr: "soon"},
		{name: "negative duration", in: head + "httpCheckFrequency: -1s\n", wantErr: "httpCheckFrequency"},
		{name: "zero duration is the kubelet's default", in: head + "fileCheckFrequency: 0s\n", check: func(t *testing.T, s *Settings) {
			if s.FileCheckFrequency != nil {
				t.Errorf("got %v", *s.FileCheckFrequency)
			}
		}},
		{name: "bad cgroup driver", in: head + "cgroupDriver: none\n", wantErr: "cgroupDriver"},
		{name: "bad log size", in: head + "containerLogMaxSize: big\n", wantErr: "containerLogMaxSize"},
		{name: "too few log files", in: head + "containerLogMaxFiles: 1\n", wantErr: "containerLogMaxFiles"},
		{name: "bad healthz address", in: head + "healthzBindAddress: localhost\n", wantErr: "healthzBindAddress"},
		{name: "healthz port out of range", in: head + "healthzPort: 70000\n", wantErr: "healthzPort"},
		{name: "duplicate field", in: head + "staticPodPath: /a\nstaticPodPath: /b\n", wantErr: "staticPodPath"},
		{name: "header with a comma", in: head + "staticPodURLHeader: {A: ['x,y']}\n", wantErr: "staticPodURLHeader.A"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse("kc.yaml", []byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "kc.yaml: ") {
					t.Fatalf("err = %v, want one naming the file and %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is not one line: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s)
		})
	}
}

// TestParseKubeadmOutput reads the KubeletConfiguration that kubeadm's
// kubelet-start phase wrote (v1.37.2, testdata), as `ledgerlet run --config`
// meets it on a kubeadm node.
func TestParseKubeadmOutput(t *testing.T) {
	data, err := os.ReadFile("testdata/kubeadm-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse("config.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if s.StaticPodPath == nil || *s.StaticPodPath != "/etc/kubernetes/manifests" {
		t.Errorf("staticPodPath = %v", s.StaticPodPath)
	}
	if s.HealthzBind == nil || *s.HealthzBind != "127.0.0.1:10248" {
		t.Errorf("healthz = %v", s.HealthzBind)
	}
	if len(s.Unknown) != 0 {
		t.Errorf("unknown fields in kubeadm's own output: %v", s.Unknown)
	}
	if len(s.Ignored) == 0 {
		t.Errorf("kubeadm sets fields ledgerlet does not use; none named")
	}
	t.Logf("ignored: %v", s.Ignored)
}
