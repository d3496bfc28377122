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

	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// parseByKubeletDecode is the former Parse: its decode and checks, then the
// same Settings mapping as Parse.
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
	var unknown []string
	for _, e := range strict {
		var fe sigsjson.FieldError
		if errors.As(e, &fe) {
			unknown = append(unknown, fe.FieldPath())
		} else {
			return nil, fmt.Errorf("%s: %v", name, e)
		}
	}
	// From here the former Parse and Parse are one: the oracle is about
	// what a decode into the kubelet's type accepts and reports unknown.
	return settings(name, top, &usedFields{
		StaticPodPath: kc.StaticPodPath, StaticPodURL: kc.StaticPodURL, StaticPodURLHeader: kc.StaticPodURLHeader,
		ContainerRuntimeEndpoint: kc.ContainerRuntimeEndpoint, CgroupDriver: kc.CgroupDriver, CgroupRoot: kc.CgroupRoot,
		PodLogsDir: kc.PodLogsDir, FileCheckFrequency: kc.FileCheckFrequency, HTTPCheckFrequency: kc.HTTPCheckFrequency,
		ContainerLogMaxSize: kc.ContainerLogMaxSize, ContainerLogMaxFiles: kc.ContainerLogMaxFiles,
		HealthzBindAddress: kc.HealthzBindAddress, HealthzPort: kc.HealthzPort, RegisterNode: kc.RegisterNode,
	}, unknown)
}

// decodeFieldError shortens a decoding error to the field and what is wrong.
func decodeFieldError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("%s: want %s, got %s", te.Field, te.Type, te.Value)
	}
	return oneLine(err.Error())
}
