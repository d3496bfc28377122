package runtime

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// FieldValues are the facts a container may read through the downward API that are not in the
// pod spec itself: where the pod landed and which addresses it got.
type FieldValues struct {
	NodeName string
	PodIP    string
	PodIPs   []string
	HostIP   string
	HostIPs  []string
}

// EnvVar is one resolved environment variable.
type EnvVar struct {
	Name  string
	Value string
}

// ResolveEnv computes a container's environment as the kubelet does: in order, each value may
// reference earlier variables as $(NAME), and fieldRef values come from the pod and f.
// Sources a static pod cannot have (ConfigMaps, Secrets, envFrom) are an error rather than
// silently missing, because the kubelet refuses such static pods too.
func ResolveEnv(pod *corev1.Pod, c *corev1.Container, f FieldValues) ([]EnvVar, error) {
	if len(c.EnvFrom) > 0 {
		return nil, fmt.Errorf("container %q: envFrom is not supported for static pods", c.Name)
	}
	vars := make(map[string]string, len(c.Env))
	out := make([]EnvVar, 0, len(c.Env))
	for _, e := range c.Env {
		var value string
		switch {
		case e.ValueFrom == nil:
			value = expand(e.Value, vars)
		case e.ValueFrom.FieldRef != nil:
			v, err := fieldRefValue(pod, e.ValueFrom.FieldRef.FieldPath, f)
			if err != nil {
				return nil, fmt.Errorf("container %q env %s: %w", c.Name, e.Name, err)
			}
			value = v
		case e.ValueFrom.ResourceFieldRef != nil:
			v, err := resourceFieldValue(c, e.ValueFrom.ResourceFieldRef)
			if err != nil {
				return nil, fmt.Errorf("container %q env %s: %w", c.Name, e.Name, err)
			}
			value = v
		default:
			return nil, fmt.Errorf("container %q env %s: only value, fieldRef and resourceFieldRef are supported for static pods", c.Name, e.Name)
		}
		vars[e.Name] = value
		out = append(out, EnvVar{Name: e.Name, Value: value})
	}
	return out, nil
}

// ExpandCommand expands $(NAME) references in command and args with the container's resolved
// environment, as the kubelet does before creating the container.
func ExpandCommand(args []string, env []EnvVar) []string {
	if args == nil {
		return nil
	}
	vars := make(map[string]string, len(env))
	for _, e := range env {
		vars[e.Name] = e.Value
	}
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = expand(a, vars)
	}
	return out
}

func fieldRefValue(pod *corev1.Pod, fieldPath string, f FieldValues) (string, error) {
	if key, ok := subscript(fieldPath, "metadata.labels"); ok {
		return pod.Labels[key], nil
	}
	if key, ok := subscript(fieldPath, "metadata.annotations"); ok {
		return pod.Annotations[key], nil
	}
	switch fieldPath {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		if f.NodeName != "" {
			return f.NodeName, nil
		}
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP":
		return f.PodIP, nil
	case "status.podIPs":
		return strings.Join(orOne(f.PodIPs, f.PodIP), ","), nil
	case "status.hostIP":
		return f.HostIP, nil
	case "status.hostIPs":
		return strings.Join(orOne(f.HostIPs, f.HostIP), ","), nil
	}
	return "", fmt.Errorf("unsupported fieldRef %q", fieldPath)
}

// subscript parses `prefix['key']` (the API's form for one label or annotation).
func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "']")
}

func orOne(list []string, one string) []string {
	if len(list) == 0 && one != "" {
		return []string{one}
	}
	return list
}

// resourceFieldValue renders limits/requests like the kubelet: cpu rounded up to whole cores
// (divisor 1 by default), memory in bytes. Unset limits have no node-allocatable fallback
// here; they resolve to "0".
func resourceFieldValue(c *corev1.Container, ref *corev1.ResourceFieldSelector) (string, error) {
	if ref.ContainerName != "" && ref.ContainerName != c.Name {
		return "", fmt.Errorf("resourceFieldRef to another container (%q) is not supported", ref.ContainerName)
	}
	var list corev1.ResourceList
	var name corev1.ResourceName
	switch {
	case strings.HasPrefix(ref.Resource, "limits."):
		list, name = c.Resources.Limits, corev1.ResourceName(strings.TrimPrefix(ref.Resource, "limits."))
	case strings.HasPrefix(ref.Resource, "requests."):
		list, name = c.Resources.Requests, corev1.ResourceName(strings.TrimPrefix(ref.Resource, "requests."))
	default:
		return "", fmt.Errorf("unsupported resourceFieldRef %q", ref.Resource)
	}
	q := list[name]
	divisor := ref.Divisor
	if divisor.IsZero() {
		if name == corev1.ResourceCPU {
			return strconv.FormatInt((q.MilliValue()+999)/1000, 10), nil
		}
		return strconv.FormatInt(q.Value(), 10), nil
	}
	// ceil(q / divisor), computed in milli-units to keep fractional CPU divisors exact.
	d := divisor.MilliValue()
	return strconv.FormatInt((q.MilliValue()+d-1)/d, 10), nil
}

// expand replaces $(NAME) with vars[NAME], leaves unknown references as written and turns
// $$ into a literal $ — the kubelet's expansion rules (third_party/forked/golang/expansion).
func expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	checkpoint := 0
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			continue
		}
		b.WriteString(s[checkpoint:i])
		next := s[i+1:]
		switch next[0] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(next, ')')
			if end < 0 {
				b.WriteString("$(")
				i++
				break
			}
			name := next[1:end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			i += end + 1
		default:
			b.WriteByte('$')
			b.WriteByte(next[0])
			i++
		}
		checkpoint = i + 1
	}
	b.WriteString(s[checkpoint:])
	return b.String()
}
