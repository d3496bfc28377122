package replay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/ledgerlet/ledgerlet/projector"
)

// Change is one difference between two states.
type Change struct {
	Pod   string `json:"pod,omitempty"`
	Field string `json:"field"`
	From  string `json:"from"`
	To    string `json:"to"`
}

// Diff lists what differs between two states, pod by pod, in a stable order.
// It compares the rendered views (what an operator reads) plus the spec.
func Diff(a, b *projector.State) []Change {
	var out []Change
	va, vb := index(a.Views()), index(b.Views())
	keys := map[string]bool{}
	for k := range va {
		keys[k] = true
	}
	for k := range vb {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		pa, okA := va[k]
		pb, okB := vb[k]
		switch {
		case !okA:
			out = append(out, Change{Pod: k, Field: "pod", From: "(absent)", To: pb.Status})
			continue
		case !okB:
			out = append(out, Change{Pod: k, Field: "pod", From: pa.Status, To: "(absent)"})
			continue
		}
		out = append(out, fieldChanges(k, "", flatten(pa), flatten(pb))...)
		if sa, sb := a.Pods[k].Spec, b.Pods[k].Spec; string(sa) != string(sb) {
			out = append(out, Change{Pod: k, Field: "spec", From: "", To: ManifestDiff(sa, sb)})
		}
	}
	if !reflect.DeepEqual(a.Agent, b.Agent) {
		out = append(out, fieldChanges("", "agent.", flatten(a.Agent), flatten(b.Agent))...)
	}
	if !reflect.DeepEqual(a.Runtime, b.Runtime) {
		out = append(out, fieldChanges("", "runtime.", flatten(a.Runtime), flatten(b.Runtime))...)
	}
	return out
}

func index(vs []projector.PodView) map[string]projector.PodView {
	m := make(map[string]projector.PodView, len(vs))
	for _, v := range vs {
		m[v.Namespace+"/"+v.Name] = v
	}
	return m
}

// flatten renders a value as dotted field paths to scalar strings.
func flatten(v any) map[string]string {
	b, _ := json.Marshal(v)
	var x any
	// Numbers as written: nanosecond times do not survive float64.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	_ = dec.Decode(&x)
	out := map[string]string{}
	var walk func(prefix string, x any)
	walk = func(prefix string, x any) {
		switch t := x.(type) {
		case map[string]any:
			for k, v := range t {
				walk(join(prefix, k), v)
			}
		case []any:
			for i, v := range t {
				// Containers are identified by name, not position.
				name := fmt.Sprint(i)
				if m, ok := v.(map[string]any); ok {
					if n, ok := m["name"].(string); ok {
						name = n
					}
				}
				walk(join(prefix, name), v)
			}
		case nil:
		default:
			out[prefix] = fmt.Sprint(t)
		}
	}
	walk("", x)
	return out
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

func fieldChanges(pod, prefix string, a, b map[string]string) []Change {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		if a[k] != b[k] {
			sorted = append(sorted, k)
		}
	}
	sort.Strings(sorted)
	out := make([]Change, 0, len(sorted))
	for _, k := range sorted {
		out = append(out, Change{Pod: pod, Field: prefix + k, From: a[k], To: b[k]})
	}
	return out
}

// ManifestDiff renders two pod specs (canonical JSON) as YAML and returns a
// unified-style line diff ("-" old, "+" new, " " context), or "" if equal.
func ManifestDiff(oldJSON, newJSON []byte) string {
	a, b := toYAMLLines(oldJSON), toYAMLLines(newJSON)
	if strings.Join(a, "\n") == strings.Join(b, "\n") {
		return ""
	}
	return strings.Join(lineDiff(a, b), "\n")
}

func toYAMLLines(j []byte) []string {
	if len(j) == 0 {
		return nil
	}
	y, err := yaml.JSONToYAML(j)
	if err != nil {
		y = j
	}
	return strings.Split(strings.TrimRight(string(y), "\n"), "\n")
}

// lineDiff is an LCS diff that keeps only changed lines and one line of
// context around them; manifests are small, so quadratic space is fine.
func lineDiff(a, b []string) []string {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type line struct {
		op   byte
		text string
	}
	var all []line
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			all = append(all, line{' ', a[i]})
			i++
			j++
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			// Deletions before insertions, as diff(1) shows them.
			all = append(all, line{'-', a[i]})
			i++
		default:
			all = append(all, line{'+', b[j]})
			j++
		}
	}
	var out []string
	for k, l := range all {
		keep := l.op != ' '
		if !keep {
			keep = (k > 0 && all[k-1].op != ' ') || (k+1 < len(all) && all[k+1].op != ' ')
		}
		if keep {
			out = append(out, string(l.op)+" "+l.text)
		}
	}
	return out
}
