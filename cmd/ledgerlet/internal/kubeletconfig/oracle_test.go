package kubeletconfig

// The oracle: Parse as it was when it decoded into the kubelet's own type
// with the kubelet's strict options (sigs.k8s.io/json, case-sensitive,
// unknown and duplicate fields collected). The differential test and
// FuzzParseKubeletConfig hold Parse to it: the same documents accepted, and
// the same Settings (Unknown and Ignored included) from each.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// parseByKubeletDecode is the former Parse, unchanged but for its name.
func parseByKubeletDecode(name string, data []byte) (*Settings, error) {
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

	var kc kubeletv1beta1.KubeletConfiguration
	strict, err := sigsjson.UnmarshalStrict(js, &kc, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", name, decodeFieldError(err))
	}
	s := &Settings{}
	for _, e := range strict {
		var fe sigsjson.FieldError
		if errors.As(e, &fe) {
			s.Unknown = append(s.Unknown, fe.FieldPath())
		} else {
			return nil, fmt.Errorf("%s: %v", name, e)
		}
	}
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
				return nil, fmt.Errorf("%s: staticPodURLHeader.%s: a value with a comma is not supported", name, k)
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

// decodeFieldError shortens a decoding error to the field and what is wrong.
func decodeFieldError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("%s: want %s, got %s", te.Field, te.Type, te.Value)
	}
	return oneLine(err.Error())
}
