package sources

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Source names, as in the kubernetes.io/config.source annotation.
const (
	SourceFile = "file"
	SourceHTTP = "http"
)

// Annotations stamped on every static pod, named as the kubelet names them.
const (
	AnnotationConfigSource = "kubernetes.io/config.source"
	AnnotationConfigHash   = "kubernetes.io/config.hash"
	AnnotationConfigSeen   = "kubernetes.io/config.seen"
)

// MaxManifestBytes caps a manifest file or URL body, as the kubelet does.
const MaxManifestBytes = 10 << 20

// ParseOptions say where a manifest came from; they feed the pod's identity.
type ParseOptions struct {
	NodeName string // as given; the name suffix and spec.nodeName use it lower-cased
	Source   string // SourceFile or SourceHTTP
	Path     string // absolute file path, or the URL
	// Seen is stamped as kubernetes.io/config.seen (RFC3339Nano). It is the
	// only input that is not a function of the manifest, so it is a parameter:
	// the zero time leaves the annotation out and makes PodJSON deterministic.
	Seen time.Time
}

// Result is a manifest that parsed and validated into a static pod.
type Result struct {
	Pod          *v1.Pod // defaulted and identity-stamped
	Key          string  // "namespace/name", the name with the node suffix
	UID          string
	UIDAlgorithm string // UIDAlgorithm, or "" when metadata.uid was set
	ConfigHash   string // kubernetes.io/config.hash: the content-derived UID, also when metadata.uid is pinned
	ContentHash  string // sha256 hex of Raw
	Raw          []byte // the manifest bytes (for a PodList item: its canonical JSON)
	PodJSON      []byte // canonical JSON of Pod
	Warnings     []string
}

// ManifestError is a manifest that was read but not accepted.
type ManifestError struct {
	Path string // file path or URL, with " items[i]" for a list item
	// Pod is the "namespace/name" the manifest names, when it got that far,
	// so a rejection can be filed under the pod whose last good spec it keeps.
	Pod string
	Err error
}

func (e *ManifestError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *ManifestError) Unwrap() error { return e.Err }

// ListItem is one pod of a URL body.
type ListItem struct {
	Raw    []byte  // what the blob holds: the body for a single Pod, else the item's canonical JSON
	Result *Result // nil when Err is set
	Err    error   // a *ManifestError
}

// Parse reads one manifest file: a single Pod in YAML or JSON, apiVersion
// and kind optional (but v1 and Pod when present). Unknown fields are
// warnings, not rejections, so a manifest written for a newer Kubernetes
// still runs.
func Parse(data []byte, opts ParseOptions) (*Result, error) {
	obj, j, warnings, err := decodeDocument(data, opts)
	if err != nil {
		return nil, err
	}
	if kind := stringField(obj, "kind"); kind != "" && kind != "Pod" {
		return nil, manifestErr(opts.Path, "", fmt.Errorf("kind: Unsupported value: %q: a manifest file holds one Pod", kind))
	}
	return parsePod(obj, j, data, opts, opts.Path, warnings)
}

// ParseList reads a URL body: a Pod or a PodList (kind may be omitted; then
// a top-level "items" array makes it a list). The error is for the body as a
// whole; each item carries its own outcome, so one bad pod does not hide the
// others.
func ParseList(data []byte, opts ParseOptions) ([]ListItem, error) {
	obj, j, warnings, err := decodeDocument(data, opts)
	if err != nil {
		return nil, err
	}
	kind := stringField(obj, "kind")
	_, hasItems := obj["items"]
	if kind == "Pod" || (kind == "" && !hasItems) {
		res, err := parsePod(obj, j, data, opts, opts.Path, warnings)
		return []ListItem{{Raw: data, Result: res, Err: err}}, nil
	}
	if kind != "PodList" && kind != "" {
		return nil, manifestErr(opts.Path, "", fmt.Errorf("kind: Unsupported value: %q: supported values: \"Pod\", \"PodList\"", kind))
	}
	items, ok := obj["items"].([]any)
	if !ok && obj["items"] != nil {
		return nil, manifestErr(opts.Path, "", errors.New("items: Invalid value: must be a list of pods"))
	}
	out := make([]ListItem, 0, len(items))
	for i, it := range items {
		where := fmt.Sprintf("%s items[%d]", opts.Path, i)
		raw, err := canonicalJSON(it)
		if err != nil {
			out = append(out, ListItem{Err: manifestErr(where, "", err)})
			continue
		}
		item, isObj := it.(map[string]any)
		if !isObj {
			out = append(out, ListItem{Raw: raw, Err: manifestErr(where, "", errors.New("must be a pod object"))})
			continue
		}
		if k := stringField(item, "kind"); k != "" && k != "Pod" {
			out = append(out, ListItem{Raw: raw, Err: manifestErr(where, "", fmt.Errorf("kind: Unsupported value: %q: supported values: \"Pod\"", k))})
			continue
		}
		if v := stringField(item, "apiVersion"); v != "" && v != "v1" {
			out = append(out, ListItem{Raw: raw, Err: manifestErr(where, "", fmt.Errorf("apiVersion: Unsupported value: %q: supported values: \"v1\"", v))})
			continue
		}
		res, err := parsePod(item, raw, raw, opts, where, nil)
		out = append(out, ListItem{Raw: raw, Result: res, Err: err})
	}
	return out, nil
}

// decodeDocument checks size and shape and converts YAML to JSON. It returns
// the generic form (json.Number numbers), the JSON bytes and warnings.
func decodeDocument(data []byte, opts ParseOptions) (map[string]any, []byte, []string, error) {
	where := opts.Path
	if opts.NodeName == "" || (opts.Source != SourceFile && opts.Source != SourceHTTP) {
		return nil, nil, nil, fmt.Errorf("parse %s: ParseOptions need a node name and a source of %q or %q", where, SourceFile, SourceHTTP)
	}
	if len(data) > MaxManifestBytes {
		return nil, nil, nil, manifestErr(where, "", fmt.Errorf("manifest is larger than %d bytes", MaxManifestBytes))
	}
	docs := yamlDocuments(data)
	if docs == 0 {
		return nil, nil, nil, manifestErr(where, "", errors.New("empty manifest"))
	}
	if docs > 1 {
		// The kubelet silently reads only the first document; a second pod
		// that never runs is worse than a clear rejection.
		return nil, nil, nil, manifestErr(where, "", fmt.Errorf("%d YAML documents: a manifest holds exactly one", docs))
	}
	var warnings []string
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		// Duplicate keys are the usual reason; the kubelet accepts them
		// (last one wins), so do we, with a warning.
		j2, err2 := yaml.YAMLToJSON(data)
		if err2 != nil {
			return nil, nil, nil, manifestErr(where, "", fmt.Errorf("not valid YAML or JSON: %s", cleanYAMLError(err2)))
		}
		j = j2
		warnings = append(warnings, cleanYAMLError(err))
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, nil, nil, manifestErr(where, "", fmt.Errorf("not valid YAML or JSON: %w", err))
	}
	obj, ok := v.(map[string]any)
	if !ok {
		if v == nil {
			return nil, nil, nil, manifestErr(where, "", errors.New("empty manifest"))
		}
		return nil, nil, nil, manifestErr(where, "", fmt.Errorf("manifest is a %s, not an object", jsonTypeName(v)))
	}
	if v := stringField(obj, "apiVersion"); v != "" && v != "v1" {
		return nil, nil, nil, manifestErr(where, "", fmt.Errorf("apiVersion: Unsupported value: %q: supported values: \"v1\"", v))
	}
	return obj, j, warnings, nil
}

// parsePod decodes, defaults, identifies and validates one pod. obj is the
// generic form of j; raw is what the blob will hold.
func parsePod(obj map[string]any, j, raw []byte, opts ParseOptions, where string, warnings []string) (*Result, error) {
	var pod v1.Pod
	// Case-sensitive like the apiserver; strict errors (unknown and
	// duplicate fields) do not stop the decode, they become warnings.
	strictErrs, err := kjson.UnmarshalStrict(j, &pod)
	if err != nil {
		return nil, manifestErr(where, "", fmt.Errorf("not a valid Pod: %w", err))
	}
	for _, e := range strictErrs {
		warnings = append(warnings, e.Error())
	}
	node := strings.ToLower(opts.NodeName)
	if err := checkNodeName(opts.NodeName); err != nil {
		return nil, fmt.Errorf("parse %s: %w", where, err)
	}
	if pod.Name == "" {
		return nil, manifestErr(where, "", errors.New("metadata.name: Required value: name is required"))
	}
	baseName := pod.Name
	setDefaults(&pod)

	// config.hash follows the content even when metadata.uid is pinned (the
	// kubelet uses the UID there, so an edit of a pinned manifest never
	// reaches its mirror pod): it is the UID the manifest would have unpinned.
	configHash, err := uidV1(obj, node, opts.Source, opts.Path)
	if err != nil {
		return nil, manifestErr(where, "", err)
	}
	uid, alg := string(pod.UID), ""
	if uid == "" {
		uid, alg = configHash, UIDAlgorithm
	}
	// Identity, as the kubelet stamps it (pkg/kubelet/config/common.go).
	pod.UID = types.UID(uid)
	pod.Name = baseName + "-" + node
	if pod.Namespace == "" {
		pod.Namespace = "default"
	}
	pod.Spec.NodeName = node
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[AnnotationConfigHash] = configHash
	pod.Annotations[AnnotationConfigSource] = opts.Source
	if !opts.Seen.IsZero() {
		pod.Annotations[AnnotationConfigSeen] = opts.Seen.UTC().Format(time.RFC3339Nano)
	} else {
		delete(pod.Annotations, AnnotationConfigSeen)
	}
	key := pod.Namespace + "/" + pod.Name

	if err := validatePod(&pod, baseName); err != nil {
		return nil, manifestErr(where, key, err)
	}
	podJSON, err := json.Marshal(&pod)
	if err != nil {
		return nil, manifestErr(where, key, fmt.Errorf("encode pod: %w", err))
	}
	sum := sha256.Sum256(raw)
	return &Result{
		Pod:          &pod,
		Key:          key,
		UID:          uid,
		UIDAlgorithm: alg,
		ConfigHash:   configHash,
		ContentHash:  hex.EncodeToString(sum[:]),
		Raw:          raw,
		PodJSON:      podJSON,
		Warnings:     warnings,
	}, nil
}

func manifestErr(where, pod string, err error) error {
	return &ManifestError{Path: where, Pod: pod, Err: err}
}

func stringField(obj map[string]any, k string) string {
	s, _ := obj[k].(string)
	return s
}

func jsonTypeName(v any) string {
	switch v.(type) {
	case []any:
		return "list"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	}
	return fmt.Sprintf("%T", v)
}

// cleanYAMLError drops the library's prefix so reasons read as one line.
func cleanYAMLError(err error) string {
	s := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
	return strings.ReplaceAll(s, "\n", " ")
}

// yamlDocuments counts YAML documents that hold something other than
// comments and blank lines. A leading "---" is common and harmless.
func yamlDocuments(data []byte) int {
	docs, content := 0, false
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), MaxManifestBytes+1)
	for sc.Scan() {
		line := sc.Text()
		if line == "---" || strings.HasPrefix(line, "--- ") || strings.HasPrefix(line, "---\t") {
			if content {
				docs++
			}
			content = strings.TrimSpace(strings.TrimPrefix(line, "---")) != "" &&
				!strings.HasPrefix(strings.TrimSpace(strings.TrimPrefix(line, "---")), "#")
			continue
		}
		if line == "..." {
			if content {
				docs++
			}
			content = false
			continue
		}
		t := strings.TrimSpace(line)
		if t != "" && !strings.HasPrefix(t, "#") {
			content = true
		}
	}
	if sc.Err() != nil {
		// An absurdly long line: let the YAML parser produce the error.
		return 1
	}
	if content {
		docs++
	}
	return docs
}

// checkNodeName refuses a node name that cannot suffix pod names.
func checkNodeName(name string) error {
	if name == "" {
		return errors.New("no node name")
	}
	if errs := validation.IsDNS1123Subdomain(strings.ToLower(name)); len(errs) > 0 {
		return fmt.Errorf("node name %q: %s", name, strings.Join(errs, "; "))
	}
	return nil
}
