package kubeletconfig

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	sigsjson "sigs.k8s.io/json"

	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
)

// sameAsKubeletDecode parses data with Parse and with the oracle (a decode
// into the kubelet's own type) and fails t unless both refuse it or both
// return the same Settings.
func sameAsKubeletDecode(t testing.TB, data []byte) (*Settings, error) {
	t.Helper()
	got, err := Parse("kc.yaml", data)
	want, wantErr := parseByKubeletDecode("kc.yaml", data)
	switch {
	case err == nil && wantErr != nil:
		t.Fatalf("Parse accepted what a decode into the kubelet's type refuses (%v):\n%s", wantErr, data)
	case err != nil && wantErr == nil:
		t.Fatalf("Parse refused what a decode into the kubelet's type accepts: %v\n%s", err, data)
	case err == nil && !reflect.DeepEqual(got, want):
		t.Fatalf("Parse and a decode into the kubelet's type differ:\n got %s\nwant %s\n%s", dump(got), dump(want), data)
	}
	return got, err
}

func dump(s *Settings) string {
	var b strings.Builder
	v := reflect.ValueOf(s).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		if f.Kind() == reflect.Pointer {
			if f.IsNil() {
				continue
			}
			f = f.Elem()
		}
		fmt.Fprintf(&b, "%s=%v ", v.Type().Field(i).Name, f)
	}
	return b.String()
}

const head = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"

// differentialCase is a document, whether the kubelet takes it, and for a
// refusal what the message must name.
type differentialCase struct {
	name    string
	in      string // after head
	refuse  bool
	wantErr string
}

func differentialCases() []differentialCase {
	many := make([]string, 0, 120)
	for i := range 120 {
		many = append(many, fmt.Sprintf("unknown%03d: %d", i, i))
	}
	return []differentialCase{
		{name: "nothing set", in: ""},
		// Wrong types, at several depths.
		{name: "list for a string", in: "staticPodPath: [a]\n", refuse: true, wantErr: "staticPodPath: want a string, got a list"},
		{name: "word for an int32", in: "maxPods: lots\n", refuse: true, wantErr: `maxPods: want a whole number that fits int32, got "lots"`},
		{name: "quoted number for an int32", in: "maxPods: \"5\"\n", refuse: true, wantErr: "maxPods"},
		{name: "number for a duration, two deep", in: "authentication: {webhook: {cacheTTL: 5}}\n", refuse: true, wantErr: "authentication.webhook.cacheTTL: want a duration such as 20s, got 5"},
		{name: "list for a struct", in: "authentication: []\n", refuse: true, wantErr: "authentication: want an object"},
		{name: "string for a bool, two deep", in: "authentication: {anonymous: {enabled: \"yes\"}}\n", refuse: true, wantErr: "authentication.anonymous.enabled"},
		{name: "bad time in a list element", in: "registerWithTaints: [{key: a, effect: NoSchedule}, {key: b, timeAdded: yesterday}]\n", refuse: true, wantErr: "registerWithTaints[1].timeAdded: want a time"},
		{name: "quantity word in a map in a list", in: "reservedMemory: [{numaNode: 0, limits: {memory: lots}}]\n", refuse: true, wantErr: "reservedMemory[0].limits.memory: want a quantity"},
		{name: "string for a feature gate", in: "featureGates: {A: \"true\"}\n", refuse: true, wantErr: "featureGates.A"},
		{name: "number in a header list", in: "staticPodURLHeader: {A: [1]}\n", refuse: true, wantErr: "staticPodURLHeader.A[0]"},
		{name: "string for a list", in: "clusterDNS: 10.0.0.1\n", refuse: true, wantErr: "clusterDNS: want a list"},
		{name: "float in an int32 list", in: "tlsCurvePreferences: [1.5]\n", refuse: true, wantErr: "tlsCurvePreferences[0]"},
		{name: "a wrong type beside an unknown field", in: "authentication: {bogus: 1, webhook: 5}\n", refuse: true, wantErr: "authentication.webhook"},
		{name: "a map key that needs quoting", in: "featureGates: {\"a\\nb\": 1}\n", refuse: true, wantErr: `"featureGates.a\nb"`},
		// Unknown fields, at several depths: reported, not refused.
		{name: "unknown top-level field", in: "noSuchField: 1\n"},
		{name: "unknown in a struct", in: "authentication: {bogus: true}\n"},
		{name: "unknown two deep", in: "authentication: {webhook: {bogus: 1}}\n"},
		{name: "unknown in a list element", in: "registerWithTaints: [{key: a}, {bogus: 1}]\n"},
		{name: "unknown in a nested list element", in: "logging: {vmodule: [{filePattern: x, verbosity: 1, bogus: 2}]}\n"},
		{name: "unknown under an inlined struct", in: "logging: {options: {json: {bogus: 1, infoBufferSize: 1Ki}}}\n"},
		{name: "names are case-sensitive", in: "StaticPodPath: /x\nstaticpodpath: /y\n"},
		{name: "a dotted key is not a path", in: "authentication.webhook: {}\n\"featureGates.*\": 1\n\"clusterDNS[]\": x\n"},
		{name: "an unknown field's value is not checked", in: "noSuch: {maxPods: x}\n"},
		{name: "an empty key", in: "\"\": 1\n"},
		{name: "an unknown path reached twice is listed once", in: "authentication.bogus: 1\nauthentication: {bogus: 1}\n"},
		{name: "more unknown fields than the kubelet lists", in: strings.Join(many, "\n") + "\n"},
		// Nulls.
		{name: "null string", in: "staticPodPath: null\n"},
		{name: "null duration is refused", in: "fileCheckFrequency: null\n", refuse: true, wantErr: "fileCheckFrequency: want a duration such as 20s, got null"},
		{name: "null for a pointer to a duration", in: "cpuCFSQuotaPeriod: null\ncrashLoopBackOff: {maxContainerRestartPeriod: null}\n"},
		{name: "null struct, list, map", in: "authentication: null\nclusterDNS: null\nfeatureGates: null\ntracing: null\n"},
		{name: "null list element and map value", in: "clusterDNS: [null]\nevictionHard: {memory.available: null}\nstaticPodURLHeader: {A: null}\n"},
		{name: "null pointers used", in: "healthzPort: null\nregisterNode: null\ncontainerLogMaxFiles: null\n"},
		{name: "null quantity and flush frequency", in: "logging: {flushFrequency: null, options: {json: {infoBufferSize: null}}}\nreservedMemory: [{limits: {memory: null}}]\n"},
		{name: "null time", in: "registerWithTaints: [{key: a, timeAdded: null}]\n"},
		// Quantities.
		{name: "quantity as a string", in: "logging: {options: {text: {infoBufferSize: 1Mi}}}\n"},
		{name: "quantity as a number", in: "logging: {options: {text: {infoBufferSize: 1024}}}\nreservedMemory: [{limits: {memory: 1e3}}]\n"},
		{name: "quantity as a fraction", in: "reservedMemory: [{limits: {cpu: 0.5}}]\n"},
		{name: "quantity with spaces", in: "reservedMemory: [{limits: {cpu: ' 1 '}}]\n"},
		{name: "quantity with a tab (escaped in the JSON it reads)", in: "reservedMemory: [{limits: {cpu: \"\\t1\"}}]\n", refuse: true, wantErr: "reservedMemory[0].limits.cpu"},
		{name: "quantity as a bool", in: "logging: {options: {text: {infoBufferSize: true}}}\n", refuse: true, wantErr: "logging.options.text.infoBufferSize"},
		{name: "quantity as an object", in: "logging: {options: {text: {infoBufferSize: {}}}}\n", refuse: true, wantErr: "infoBufferSize: want a quantity such as 10Mi, got an object"},
		// Durations.
		{name: "durations", in: "syncFrequency: 1m\ncpuCFSQuotaPeriod: 100ms\n"},
		{name: "duration 0 without a unit", in: "syncFrequency: \"0\"\n"},
		{name: "duration as a number", in: "syncFrequency: 60\n", refuse: true, wantErr: "syncFrequency"},
		{name: "duration without a unit", in: "syncFrequency: \"60\"\n", refuse: true, wantErr: `syncFrequency: want a duration such as 20s, got "60"`},
		{name: "flush frequency as a duration or nanoseconds", in: "logging: {flushFrequency: 5s}\n"},
		{name: "flush frequency in nanoseconds", in: "logging: {flushFrequency: 5000000}\n"},
		{name: "flush frequency as a fraction", in: "logging: {flushFrequency: 1.5}\n", refuse: true, wantErr: "logging.flushFrequency"},
		{name: "flush frequency as a bool", in: "logging: {flushFrequency: true}\n", refuse: true, wantErr: "logging.flushFrequency"},
		{name: "flush frequency as a bad string", in: "logging: {flushFrequency: soon}\n", refuse: true, wantErr: "logging.flushFrequency"},
		// Integers: range, sign, fractions.
		{name: "largest int64", in: "maxOpenFiles: 9223372036854775807\npodPidsLimit: -9223372036854775808\n"},
		{name: "int64 overflow", in: "maxOpenFiles: 9223372036854775808\n", refuse: true, wantErr: "maxOpenFiles"},
		{name: "int32 overflow", in: "maxPods: 2147483648\n", refuse: true, wantErr: "maxPods"},
		{name: "huge number for an int64", in: "maxOpenFiles: 1e30\n", refuse: true, wantErr: "maxOpenFiles"},
		{name: "negative uint32", in: "logging: {verbosity: -1}\n", refuse: true, wantErr: "logging.verbosity: want a whole number that fits uint32 (not negative), got -1"},
		{name: "uint32 overflow", in: "logging: {vmodule: [{filePattern: x, verbosity: 4294967296}]}\n", refuse: true, wantErr: "logging.vmodule[0].verbosity"},
		{name: "largest uint32", in: "logging: {verbosity: 4294967295}\n"},
		{name: "fraction for an int32", in: "maxPods: 1.5\n", refuse: true, wantErr: "maxPods"},
		{name: "whole float for an int32 (YAML 2.0 is JSON 2)", in: "maxPods: 2.0\n"},
		{name: "exponent for an int32", in: "maxPods: 1e3\n"},
		{name: "float", in: "memoryThrottlingFactor: 0.9\n"},
		{name: "string for a float", in: "memoryThrottlingFactor: \"0.9\"\n", refuse: true, wantErr: "memoryThrottlingFactor: want a number"},
		{name: "string for a bool", in: "rotateCertificates: \"true\"\n", refuse: true, wantErr: "rotateCertificates: want true or false"},
		{name: "negative healthz port", in: "healthzPort: -1\n", refuse: true, wantErr: "healthzPort"},
		{name: "bool for a string", in: "staticPodPath: true\n", refuse: true, wantErr: "staticPodPath"},
	}
}

// TestParseMatchesKubeletDecode: Parse accepts and refuses what a decode
// into the kubelet's own type does, with the same Settings.
func TestParseMatchesKubeletDecode(t *testing.T) {
	for _, tt := range differentialCases() {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sameAsKubeletDecode(t, []byte(head+tt.in))
			if tt.refuse != (err != nil) {
				t.Fatalf("err = %v, want refused %v", err, tt.refuse)
			}
			if err != nil && (!strings.HasPrefix(err.Error(), "kc.yaml: ") || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("err = %v, want one naming the file and %q", err, tt.wantErr)
			}
		})
	}
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sameAsKubeletDecode(t, data); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestParseMatchesKubeletDecodeEveryPath puts each of a set of JSON values
// at every path of the schema, inside the objects and lists that lead to
// it, and holds Parse to the oracle on each.
func TestParseMatchesKubeletDecodeEveryPath(t *testing.T) {
	values := []string{
		`null`, `true`, `false`, `0`, `1`, `-1`, `1.5`, `2.0`, `1e3`, `-0.0`,
		`4294967295`, `4294967296`, `-2147483649`, `9223372036854775807`, `9223372036854775808`,
		`-9223372036854775809`, `18446744073709551616`, `100000000000000000000`, `1e400`,
		`""`, `"x"`, `"1s"`, `"-1s"`, `"0"`, `"1"`, `"1Gi"`, `" 1Gi "`, `"\t1"`, `"1e3"`, `"true"`,
		`"2024-01-02T03:04:05Z"`, `"2024-01-02"`,
		`[]`, `["x"]`, `[1]`, `[null]`, `[{}]`, `[{"bogus":1}]`,
		`{}`, `{"bogus":1}`, `{"k":"v"}`, `{"k":1}`, `{"k":null}`, `{"k":["x"]}`, `{"k":{"bogus":1}}`,
	}
	n := 0
	for _, e := range schema {
		if e.path == "apiVersion" || e.path == "kind" {
			continue
		}
		for _, v := range values {
			doc := fmt.Sprintf(`{"apiVersion":%q,"kind":%q,%s}`, apiVersion, kind, nestAt(e.path, v))
			sameAsKubeletDecode(t, []byte(doc))
			n++
		}
	}
	t.Logf("%d documents", n)
}

// nestAt writes the JSON member that sets path (a schema path: a.b, m.*,
// l[]) to the JSON value v.
func nestAt(path, v string) string {
	var parts []string
	for _, p := range strings.Split(path, ".") {
		for strings.HasSuffix(p, "[]") {
			parts = append(parts, strings.TrimSuffix(p, "[]"), "[]")
			p = ""
		}
		if p != "" {
			parts = append(parts, p)
		}
	}
	// parts: names, "*" for a map key, "[]" for a list element.
	for i := len(parts) - 1; i > 0; i-- {
		switch parts[i] {
		case "[]":
			v = "[" + v + "]"
		case "*":
			v = `{"key.with-dot":` + v + `}`
		default:
			v = fmt.Sprintf(`{%q:%s}`, parts[i], v)
		}
	}
	return fmt.Sprintf(`%q:%s`, parts[0], v)
}

func TestNestAt(t *testing.T) {
	for _, tt := range []struct{ path, want string }{
		{"a", `"a":1`},
		{"a.b", `"a":{"b":1}`},
		{"a[].b", `"a":[{"b":1}]`},
		{"a.*[]", `"a":{"key.with-dot":[1]}`},
	} {
		if got := nestAt(tt.path, "1"); got != tt.want {
			t.Errorf("nestAt(%q) = %s, want %s", tt.path, got, tt.want)
		}
	}
}

// TestUsedFieldsAreKubelets: the fields ledgerlet decodes itself have the
// kubelet's names and Go types, and are the fields it says it uses.
func TestUsedFieldsAreKubelets(t *testing.T) {
	kubelet, err := jsonFields(reflect.TypeFor[kubeletv1beta1.KubeletConfiguration]())
	if err != nil {
		t.Fatal(err)
	}
	ours, err := jsonFields(reflect.TypeFor[usedFields]())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range ours {
		names = append(names, f.name)
		i := slices.IndexFunc(kubelet, func(k jsonField) bool { return k.name == f.name })
		if i < 0 {
			t.Errorf("%s: not a KubeletConfiguration field", f.name)
			continue
		}
		if kubelet[i].typ != f.typ {
			t.Errorf("%s: %v here, %v in the kubelet", f.name, f.typ, kubelet[i].typ)
		}
	}
	want := slices.DeleteFunc(slices.Clone(used), func(s string) bool { return s == "apiVersion" || s == "kind" })
	slices.Sort(want)
	slices.Sort(names)
	if !slices.Equal(names, want) {
		t.Errorf("usedFields %v, used %v", names, want)
	}
}

// Types for TestJSONFieldsLikeDecoder: embedding, tags and conflicts.
type (
	EmbA struct {
		X     string `json:"x"`
		Y     string
		Z     string `json:"z"`
		lower string
	}
	EmbB struct {
		X  string `json:"x"` // as EmbA's, tagged both, same depth: neither
		W  string `json:"w"`
		Y  string // as EmbA's, untagged both: neither
		V  string
		W2 string `json:"deep"` // shallower than embC's deep: this one
	}
	embC struct {
		Deep string `json:"deep"`
		V    string `json:"v"` // not EmbB's V: names are case-sensitive
	}
	EmbD struct {
		embC         // unexported, yet its fields are promoted
		Deep2 string `json:"deep2"`
	}
	Exported struct {
		E string `json:"e"`
	}
)

// TestJSONFieldsLikeDecoder: jsonFields names the keys the kubelet's
// decoder matches for a struct with embedding, tags and conflicts. (The
// struct is made with reflect: go vet refuses two json tags alike.)
func TestJSONFieldsLikeDecoder(t *testing.T) {
	str := reflect.TypeFor[string]()
	typ := reflect.StructOf([]reflect.StructField{
		{Name: "EmbA", Type: reflect.TypeFor[EmbA](), Anonymous: true},
		{Name: "EmbB", Type: reflect.TypeFor[EmbB](), Anonymous: true, Tag: `json:",inline"`},
		{Name: "EmbD", Type: reflect.TypeFor[EmbD](), Anonymous: true, Tag: `json:",inline"`},
		{Name: "Named", Type: reflect.TypeFor[embC](), Tag: `json:",inline"`}, // not embedded: a field called Named
		{Name: "Exported", Type: reflect.TypeFor[*Exported](), Anonymous: true},
		{Name: "Skip", Type: str, Tag: `json:"-"`},
		{Name: "Dash", Type: str, Tag: `json:"-,"`},
		{Name: "Bad", Type: str, Tag: `json:"a\\b"`}, // not a name encoding/json takes: Bad
		{Name: "Z", Type: str},
		{Name: "T", Type: reflect.TypeFor[embC](), Tag: `json:"t"`},
	})
	fs, err := jsonFields(typ)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range fs {
		names = append(names, f.name)
	}
	_ = EmbA{}.lower
	for _, key := range []string{"x", "y", "Y", "z", "Z", "w", "V", "v", "deep", "deep2", "Named", "e", "Exported",
		"Skip", "-", "Dash", "Bad", `a\b`, "lower", "EmbA", "EmbB", "embC", "EmbD", "t", "T", "W2"} {
		doc := fmt.Sprintf(`{%q: "s"}`, key)
		if key == "Named" || key == "t" {
			doc = fmt.Sprintf(`{%q: {}}`, key)
		}
		strict, err := sigsjson.UnmarshalStrict([]byte(doc), reflect.New(typ).Interface(), sigsjson.DisallowUnknownFields)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if known := len(strict) == 0; known != slices.Contains(names, key) {
			t.Errorf("key %q: the decoder knows it: %v; jsonFields: %v", key, known, names)
		}
	}
	t.Logf("fields: %v", names)
}

// FuzzParseKubeletConfig holds Parse to the oracle on arbitrary YAML, and
// checks what Parse promises of what it returns.
func FuzzParseKubeletConfig(f *testing.F) {
	f.Add([]byte(head + "staticPodPath: /x\nhealthzPort: 1\n"))
	f.Add([]byte(head + "staticPodURLHeader: {a: [b]}\ncontainerLogMaxSize: 1Ki\n"))
	for _, c := range differentialCases() {
		f.Add([]byte(head + c.in))
	}
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		f.Fatalf("no testdata: %v", err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := sameAsKubeletDecode(t, data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			if !strings.HasPrefix(err.Error(), "kc.yaml: ") {
				t.Fatalf("error without the file's name: %q", err)
			}
			return
		}
		if s.FileCheckFrequency != nil && *s.FileCheckFrequency <= 0 {
			t.Fatalf("accepted non-positive frequency")
		}
		if s.ContainerLogMaxFiles != nil && *s.ContainerLogMaxFiles < 2 {
			t.Fatalf("accepted %d log files", *s.ContainerLogMaxFiles)
		}
	})
}
