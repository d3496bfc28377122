// Package kubeletconfig reads the kubelet's configuration file
// (KubeletConfiguration, kubelet.config.k8s.io/v1beta1), as kubeadm's
// kubelet-start phase writes it, into the settings ledgerlet has flags for.
//
// It checks the whole file against the kubelet's own type (a schema
// generated from it, see schema.go), so a field of the wrong type is refused
// whether or not ledgerlet uses it; every field that is set and that
// ledgerlet does not act on is named in Ignored, never dropped silently.
package kubeletconfig

import (
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const (
	apiVersion = "kubelet.config.k8s.io/v1beta1"
	kind       = "KubeletConfiguration"
)

// Settings are the fields of a KubeletConfiguration that ledgerlet acts on,
// each nil when the file does not set it (the flag's default then applies).
type Settings struct {
	StaticPodPath        *string
	StaticPodURL         *string
	StaticPodURLHeaders  []string // "Key:Value", one per value, keys sorted
	RuntimeEndpoint      *string
	CgroupDriver         *string
	CgroupRoot           *string
	PodLogsDir           *string
	FileCheckFrequency   *time.Duration
	HTTPCheckFrequency   *time.Duration
	ContainerLogMaxSize  *string // a quantity, validated here
	ContainerLogMaxFiles *int
	// HealthzBind is healthzBindAddress:healthzPort; "" when healthzPort is 0
	// (the kubelet's "disabled").
	HealthzBind  *string
	RegisterNode *bool

	// Ignored names, sorted, every field the file sets that ledgerlet does
	// not act on (a warning for the operator, once).
	Ignored []string
	// Unknown names fields the kubelet itself would not know (decoded
	// leniently, as the kubelet does, with a warning), as sigs.k8s.io/json
	// names them (a.b, a.key.b, a[0].b), the first 100 like the kubelet.
	Unknown []string
}

// used are the top-level fields ledgerlet acts on; apiVersion and kind are
// the file's header.
var used = []string{
	"apiVersion", "kind",
	"staticPodPath", "staticPodURL", "staticPodURLHeader", "containerRuntimeEndpoint",
	"cgroupDriver", "cgroupRoot", "podLogsDir", "fileCheckFrequency", "httpCheckFrequency",
	"containerLogMaxSize", "containerLogMaxFiles", "healthzBindAddress", "healthzPort", "registerNode",
}

// usedFields are the KubeletConfiguration fields ledgerlet acts on, with the
// kubelet's own Go types (TestUsedFieldsAreKubelets holds them to it), so
// that null, a missing field and a zero decode as they do in the kubelet.
type usedFields struct {
	StaticPodPath            string              `json:"staticPodPath"`
	StaticPodURL             string              `json:"staticPodURL"`
	StaticPodURLHeader       map[string][]string `json:"staticPodURLHeader"`
	ContainerRuntimeEndpoint string              `json:"containerRuntimeEndpoint"`
	CgroupDriver             string              `json:"cgroupDriver"`
	CgroupRoot               string              `json:"cgroupRoot"`
	PodLogsDir               string              `json:"podLogsDir"`
	FileCheckFrequency       metav1.Duration     `json:"fileCheckFrequency"`
	HTTPCheckFrequency       metav1.Duration     `json:"httpCheckFrequency"`
	ContainerLogMaxSize      string              `json:"containerLogMaxSize"`
	ContainerLogMaxFiles     *int32              `json:"containerLogMaxFiles"`
	HealthzBindAddress       string              `json:"healthzBindAddress"`
	HealthzPort              *int32              `json:"healthzPort"`
	RegisterNode             *bool               `json:"registerNode"`
}

// Parse reads one KubeletConfiguration document. name is the file's name,
// for errors; every error names the field it is about.
func Parse(name string, data []byte) (*Settings, error) {
	js, err := yaml.YAMLToJSONStrict(data) // a key given twice is a mistake to refuse, not to pick from
	if err != nil {
		return nil, fmt.Errorf("%s: not YAML: %s", name, oneLine(err.Error()))
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(js, &top); err != nil || top == nil {
		return nil, fmt.Errorf("%s: want a %s object", name, kind)
	}
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	_ = json.Unmarshal(js, &tm)
	if tm.Kind != kind || tm.APIVersion != apiVersion {
		return nil, fmt.Errorf("%s: apiVersion/kind %q/%q: want %s/%s", name, tm.APIVersion, tm.Kind, apiVersion, kind)
	}

	unknown, err := check(js)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	// The kubelet's decoder matches keys case-sensitively, as this one does;
	// encoding/json would also fill a field from a key the kubelet ignores.
	var kc usedFields
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(js, &kc); err != nil {
		return nil, fmt.Errorf("%s: reading the fields ledgerlet uses: %s", name, oneLine(err.Error()))
	}
	return settings(name, top, &kc, unknown)
}

// settings are what the document top (its fields as given) with the fields
// ledgerlet acts on decoded into kc sets; unknown are the fields the
// kubelet would not know.
func settings(name string, top map[string]json.RawMessage, kc *usedFields, unknown []string) (*Settings, error) {
	s := &Settings{Unknown: unknown}
	for k := range top {
		if !slices.Contains(used, k) && !slices.ContainsFunc(s.Unknown, func(u string) bool { return u == k || strings.HasPrefix(u, k+".") }) {
			s.Ignored = append(s.Ignored, k)
		}
	}
	slices.Sort(s.Ignored)
	slices.Sort(s.Unknown)

	set := func(k string) bool { _, ok := top[k]; return ok }
	str := func(k, v string) *string {
		if !set(k) {
			return nil
		}
		return &v
	}
	s.StaticPodPath = str("staticPodPath", kc.StaticPodPath)
	s.StaticPodURL = str("staticPodURL", kc.StaticPodURL)
	s.RuntimeEndpoint = str("containerRuntimeEndpoint", kc.ContainerRuntimeEndpoint)
	s.CgroupRoot = str("cgroupRoot", kc.CgroupRoot)
	s.PodLogsDir = str("podLogsDir", kc.PodLogsDir)
	if set("cgroupDriver") {
		if kc.CgroupDriver != "cgroupfs" && kc.CgroupDriver != "systemd" {
			return nil, fmt.Errorf("%s: cgroupDriver %q: want cgroupfs or systemd", name, kc.CgroupDriver)
		}
		s.CgroupDriver = &kc.CgroupDriver
	}
	for _, k := range sortedKeys(kc.StaticPodURLHeader) {
		if strings.TrimSpace(k) == "" || strings.ContainsAny(k, ":,") {
			return nil, fmt.Errorf("%s: staticPodURLHeader: bad header name %q", name, k)
		}
		for _, v := range kc.StaticPodURLHeader[k] {
			if strings.Contains(v, ",") {
				// The header flag splits on commas; a value holding one
				// cannot be passed through it unchanged.
				return nil, fmt.Errorf("%s: %s: a value with a comma is not supported", name, showPath("staticPodURLHeader."+k))
			}
			s.StaticPodURLHeaders = append(s.StaticPodURLHeaders, k+":"+v)
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
		to  **time.Duration
	}{
		{"fileCheckFrequency", kc.FileCheckFrequency.Duration, &s.FileCheckFrequency},
		{"httpCheckFrequency", kc.HTTPCheckFrequency.Duration, &s.HTTPCheckFrequency},
	} {
		// 0s is the kubelet's "default" (kubeadm writes it): leave the flag's.
		if !set(d.key) || d.v == 0 {
			continue
		}
		if d.v < 0 {
			return nil, fmt.Errorf("%s: %s %v: must not be negative", name, d.key, d.v)
		}
		v := d.v
		*d.to = &v
	}
	if set("containerLogMaxSize") {
		q, err := resource.ParseQuantity(kc.ContainerLogMaxSize)
		if err != nil || q.Sign() <= 0 {
			return nil, fmt.Errorf("%s: containerLogMaxSize %q: want a positive quantity such as 10Mi", name, kc.ContainerLogMaxSize)
		}
		s.ContainerLogMaxSize = &kc.ContainerLogMaxSize
	}
	if set("containerLogMaxFiles") && kc.ContainerLogMaxFiles != nil {
		n := int(*kc.ContainerLogMaxFiles)
		if n < 2 {
			return nil, fmt.Errorf("%s: containerLogMaxFiles %d: must be at least 2", name, n)
		}
		s.ContainerLogMaxFiles = &n
	}
	if set("healthzBindAddress") || set("healthzPort") {
		addr, port := "127.0.0.1", int32(10248) // the kubelet's defaults
		if set("healthzBindAddress") {
			addr = kc.HealthzBindAddress
			if net.ParseIP(addr) == nil {
				return nil, fmt.Errorf("%s: healthzBindAddress %q: not an IP address", name, addr)
			}
		}
		if set("healthzPort") && kc.HealthzPort != nil {
			port = *kc.HealthzPort
		}
		if port < 0 || port > 65535 {
			return nil, fmt.Errorf("%s: healthzPort %d: out of range", name, port)
		}
		bind := ""
		if port != 0 {
			bind = net.JoinHostPort(addr, strconv.Itoa(int(port)))
		}
		s.HealthzBind = &bind
	}
	if set("registerNode") && kc.RegisterNode != nil {
		s.RegisterNode = kc.RegisterNode
	}
	return s, nil
}

// oneLine joins a multi-line message (YAML lists each problem on a line).
func oneLine(s string) string {
	f := strings.Fields(strings.ReplaceAll(s, "\n", " "))
	return strings.Join(f, " ")
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
