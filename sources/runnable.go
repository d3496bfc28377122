package sources

import (
	"fmt"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// What validation accepts, the runtime can run. A field ledgerlet would
// accept and then ignore is worse than a refusal: the pod runs, but not as
// written, and nothing says so. So every field the runtime does not carry
// out is refused here, naming the field, and the pod's last good version
// keeps running (ManifestRejected).
//
// The struct walks below list what is handled, not what is refused: a field
// added to k8s.io/api later is refused until ledgerlet implements it.

// podSpecHandled are the PodSpec fields ledgerlet carries out, or that mean
// nothing to a node agent without a scheduler (nodeSelector, affinity,
// tolerations, priority…), or that are refused elsewhere with a better
// reason (serviceAccountName, imagePullSecrets, ephemeralContainers,
// resourceClaims), or that are checked one by one below (os, hostUsers,
// setHostnameAsFQDN).
var podSpecHandled = sets.New(
	"volumes", "initContainers", "containers", "ephemeralContainers", "restartPolicy",
	"terminationGracePeriodSeconds", "dnsPolicy", "nodeSelector", "serviceAccountName", "serviceAccount",
	"automountServiceAccountToken", "nodeName", "hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace",
	"securityContext", "imagePullSecrets", "hostname", "subdomain", "affinity", "schedulerName", "tolerations",
	"priorityClassName", "priority", "dnsConfig", "readinessGates", "enableServiceLinks", "preemptionPolicy",
	"overhead", "topologySpreadConstraints", "setHostnameAsFQDN", "os", "hostUsers", "schedulingGates", "resourceClaims",
)

var containerHandled = sets.New(
	"name", "image", "command", "args", "workingDir", "ports", "envFrom", "env", "resources", "resizePolicy",
	"restartPolicy", "volumeMounts", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "terminationMessagePath",
	"terminationMessagePolicy", "imagePullPolicy", "securityContext", "stdin", "stdinOnce", "tty",
)

var podSecurityContextHandled = sets.New(
	"runAsUser", "runAsGroup", "runAsNonRoot", "supplementalGroups", "supplementalGroupsPolicy", "fsGroup", "fsGroupChangePolicy",
	"sysctls", "seccompProfile", "appArmorProfile", "seLinuxOptions",
)

var securityContextHandled = sets.New(
	"capabilities", "privileged", "seLinuxOptions", "runAsUser", "runAsGroup", "runAsNonRoot", "readOnlyRootFilesystem",
	"allowPrivilegeEscalation", "procMount", "seccompProfile", "appArmorProfile",
)

var volumeMountHandled = sets.New("name", "readOnly", "recursiveReadOnly", "mountPath", "subPath", "mountPropagation")

// envVarSourceHandled: configMapKeyRef and secretKeyRef are refused by
// validateContainer (static pods may not reference API objects).
var envVarSourceHandled = sets.New("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")

// Why a field is refused, when there is more to say than "not supported".
var refusalReasons = map[string]string{
	"activeDeadlineSeconds": "not supported by ledgerlet: a static pod runs until its manifest is removed",
	"hostAliases":           "not supported by ledgerlet: it does not manage the pod's /etc/hosts",
	"runtimeClassName":      "static pods may not reference runtimeclasses",
	"resources":             "pod-level resources are not supported by ledgerlet; set them per container",
	"schedulingGroup":       "static pods may not reference scheduling groups",
	"stopSignal":            "not supported by ledgerlet: containers stop with their image's stop signal",
	"volumeDevices":         "raw block devices are not supported for static pods",
	"restartPolicyRules":    "container restart rules are not supported by ledgerlet",
	"windowsOptions":        "not supported on a Linux node",
	"seLinuxChangePolicy":   "not supported by ledgerlet: it does not relabel volumes",
	"subPathExpr":           "not supported by ledgerlet; use subPath",
	"bindMountOptions":      "not supported by ledgerlet",
	"fileKeyRef":            "not supported by ledgerlet",
}

// Environment and volume fieldRefs the runtime resolves (runtime/env.go,
// runtime/downward.go). Subscripted labels and annotations are allowed too.
var (
	envFieldPaths = sets.New("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
		"spec.serviceAccountName", "status.podIP", "status.podIPs", "status.hostIP", "status.hostIPs")
	volumeFieldPaths = sets.New("metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels", "metadata.annotations")
)

// validateRunnable refuses what the runtime would not carry out.
func validateRunnable(spec *v1.PodSpec, p *field.Path) field.ErrorList {
	errs := unsupportedFields(spec, p, podSpecHandled)
	if spec.OS != nil && spec.OS.Name != v1.Linux {
		errs = append(errs, field.NotSupported(p.Child("os", "name"), spec.OS.Name, []v1.OSName{v1.Linux}))
	}
	if spec.HostUsers != nil && !*spec.HostUsers {
		errs = append(errs, field.Forbidden(p.Child("hostUsers"), "user namespaces are not supported by ledgerlet"))
	}
	if spec.SetHostnameAsFQDN != nil && *spec.SetHostnameAsFQDN {
		errs = append(errs, field.Forbidden(p.Child("setHostnameAsFQDN"), "not supported by ledgerlet: static pods have no cluster domain"))
	}
	if sc := spec.SecurityContext; sc != nil {
		sp := p.Child("securityContext")
		errs = append(errs, unsupportedFields(sc, sp, podSecurityContextHandled)...)
		if sc.SupplementalGroupsPolicy != nil && *sc.SupplementalGroupsPolicy != v1.SupplementalGroupsPolicyMerge {
			errs = append(errs, field.NotSupported(sp.Child("supplementalGroupsPolicy"), *sc.SupplementalGroupsPolicy,
				[]v1.SupplementalGroupsPolicy{v1.SupplementalGroupsPolicyMerge}))
		}
		errs = append(errs, validateSeccomp(sc.SeccompProfile, sp.Child("seccompProfile"))...)
	}
	for i := range spec.Volumes {
		errs = append(errs, validateRunnableVolume(spec, &spec.Volumes[i], p.Child("volumes").Index(i))...)
	}
	for i := range spec.InitContainers {
		errs = append(errs, validateRunnableContainer(&spec.InitContainers[i], p.Child("initContainers").Index(i))...)
	}
	for i := range spec.Containers {
		errs = append(errs, validateRunnableContainer(&spec.Containers[i], p.Child("containers").Index(i))...)
	}
	return errs
}

func validateRunnableContainer(c *v1.Container, p *field.Path) field.ErrorList {
	errs := unsupportedFields(c, p, containerHandled)
	if lc := c.Lifecycle; lc != nil {
		lp := p.Child("lifecycle")
		errs = append(errs, unsupportedFields(lc, lp, sets.New("postStart", "preStop"))...)
		hooks := []struct {
			name string
			h    *v1.LifecycleHandler
		}{{"postStart", lc.PostStart}, {"preStop", lc.PreStop}} // in order: the reason is recorded
		for _, hk := range hooks {
			if name, h := hk.name, hk.h; h != nil && h.TCPSocket != nil {
				// Deprecated; the kubelet accepts it and never runs it.
				errs = append(errs, field.Forbidden(lp.Child(name, "tcpSocket"), "tcpSocket lifecycle handlers are not run; use exec, httpGet or sleep"))
			} else if h != nil && h.HTTPGet != nil {
				errs = append(errs, validateNamedPort(c, h.HTTPGet.Port, lp.Child(name, "httpGet", "port"))...)
			}
		}
	}
	if sc := c.SecurityContext; sc != nil {
		sp := p.Child("securityContext")
		errs = append(errs, unsupportedFields(sc, sp, securityContextHandled)...)
		if sc.ProcMount != nil && *sc.ProcMount != v1.DefaultProcMount {
			errs = append(errs, field.NotSupported(sp.Child("procMount"), *sc.ProcMount, []v1.ProcMountType{v1.DefaultProcMount}))
		}
		errs = append(errs, validateSeccomp(sc.SeccompProfile, sp.Child("seccompProfile"))...)
	}
	for i := range c.Env {
		ep := p.Child("env").Index(i)
		src := c.Env[i].ValueFrom
		if src == nil {
			continue
		}
		vp := ep.Child("valueFrom")
		errs = append(errs, unsupportedFields(src, vp, envVarSourceHandled)...)
		if f := src.FieldRef; f != nil && !envFieldPaths.Has(f.FieldPath) && !isSubscript(f.FieldPath) {
			errs = append(errs, field.NotSupported(vp.Child("fieldRef", "fieldPath"), f.FieldPath, append(sets.List(envFieldPaths),
				"metadata.labels['<key>']", "metadata.annotations['<key>']")))
		}
		if r := src.ResourceFieldRef; r != nil {
			if r.ContainerName != "" && r.ContainerName != c.Name {
				errs = append(errs, field.Invalid(vp.Child("resourceFieldRef", "containerName"), r.ContainerName, "must be this container's name (or empty)"))
			}
			errs = append(errs, validateResourceName(r.Resource, vp.Child("resourceFieldRef", "resource"))...)
		}
	}
	for i, ef := range c.EnvFrom {
		if ef.SecretRef == nil && ef.ConfigMapRef == nil {
			errs = append(errs, field.Forbidden(p.Child("envFrom").Index(i), "envFrom is not supported for static pods"))
		}
	}
	for i := range c.VolumeMounts {
		m := &c.VolumeMounts[i]
		mp := p.Child("volumeMounts").Index(i)
		errs = append(errs, unsupportedFields(m, mp, volumeMountHandled)...)
		if m.RecursiveReadOnly != nil && *m.RecursiveReadOnly == v1.RecursiveReadOnlyEnabled {
			errs = append(errs, field.NotSupported(mp.Child("recursiveReadOnly"), *m.RecursiveReadOnly,
				[]v1.RecursiveReadOnlyMode{v1.RecursiveReadOnlyDisabled, v1.RecursiveReadOnlyIfPossible}))
		}
	}
	for _, name := range sortedResourceNames(c.Resources.Limits) {
		if name != v1.ResourceCPU && name != v1.ResourceMemory {
			errs = append(errs, field.NotSupported(p.Child("resources", "limits").Key(string(name)), name, []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory}))
		}
	}
	for _, name := range sortedResourceNames(c.Resources.Requests) {
		if name != v1.ResourceCPU && name != v1.ResourceMemory && name != v1.ResourceEphemeralStorage {
			errs = append(errs, field.NotSupported(p.Child("resources", "requests").Key(string(name)), name,
				[]v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory, v1.ResourceEphemeralStorage}))
		}
	}
	probes := []struct {
		name  string
		probe *v1.Probe
	}{{"livenessProbe", c.LivenessProbe}, {"readinessProbe", c.ReadinessProbe}, {"startupProbe", c.StartupProbe}}
	for _, pr := range probes {
		if pr.probe == nil {
			continue
		}
		pp := p.Child(pr.name)
		if g := pr.probe.TerminationGracePeriodSeconds; g != nil {
			switch {
			case pr.name == "readinessProbe":
				errs = append(errs, field.Invalid(pp.Child("terminationGracePeriodSeconds"), *g, "must not be set for readinessProbes"))
			case *g <= 0:
				errs = append(errs, field.Invalid(pp.Child("terminationGracePeriodSeconds"), *g, "must be greater than 0"))
			}
		}
		// A named port the container does not declare would never be probed.
		if g := pr.probe.HTTPGet; g != nil {
			errs = append(errs, validateNamedPort(c, g.Port, pp.Child("httpGet", "port"))...)
		}
		if s := pr.probe.TCPSocket; s != nil {
			errs = append(errs, validateNamedPort(c, s.Port, pp.Child("tcpSocket", "port"))...)
		}
	}
	return errs
}

func validateRunnableVolume(spec *v1.PodSpec, vol *v1.Volume, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch vs := &vol.VolumeSource; {
	case vs.Image != nil:
		errs = append(errs, field.Forbidden(p.Child("image"), "image volumes are not supported by ledgerlet"))
	case vs.EmptyDir != nil:
		ep := p.Child("emptyDir")
		switch vs.EmptyDir.Medium {
		case v1.StorageMediumDefault, v1.StorageMediumMemory:
		default:
			errs = append(errs, field.NotSupported(ep.Child("medium"), vs.EmptyDir.Medium, []v1.StorageMedium{v1.StorageMediumDefault, v1.StorageMediumMemory}))
		}
		if vs.EmptyDir.SizeLimit != nil && vs.EmptyDir.Medium != v1.StorageMediumMemory {
			errs = append(errs, field.Forbidden(ep.Child("sizeLimit"), "ledgerlet enforces sizeLimit only for medium: Memory (a tmpfs of that size)"))
		}
		if q := vs.EmptyDir.SizeLimit; q != nil && q.Sign() <= 0 {
			errs = append(errs, field.Invalid(ep.Child("sizeLimit"), q.String(), "must be greater than 0"))
		}
	case vs.HostPath != nil:
		if t := vs.HostPath.Type; t != nil {
			ok := []v1.HostPathType{v1.HostPathUnset, v1.HostPathDirectoryOrCreate, v1.HostPathDirectory, v1.HostPathFileOrCreate,
				v1.HostPathFile, v1.HostPathSocket, v1.HostPathCharDev, v1.HostPathBlockDev}
			if !contains(ok, *t) {
				errs = append(errs, field.NotSupported(p.Child("hostPath", "type"), *t, ok))
			}
		}
	case vs.DownwardAPI != nil:
		dp := p.Child("downwardAPI")
		errs = append(errs, validateFileMode(vs.DownwardAPI.DefaultMode, dp.Child("defaultMode"))...)
		errs = append(errs, validateDownwardAPIItems(spec, vs.DownwardAPI.Items, dp.Child("items"), sets.New[string]())...)
	case vs.Projected != nil:
		pp := p.Child("projected")
		errs = append(errs, validateFileMode(vs.Projected.DefaultMode, pp.Child("defaultMode"))...)
		paths := sets.New[string]()
		for i, src := range vs.Projected.Sources {
			if src.DownwardAPI != nil {
				errs = append(errs, validateDownwardAPIItems(spec, src.DownwardAPI.Items, pp.Child("sources").Index(i).Child("downwardAPI", "items"), paths)...)
			}
		}
	}
	return errs
}

// validateDownwardAPIItems checks the files of a downward API volume as the
// API server does, and that the runtime can render each one.
func validateDownwardAPIItems(spec *v1.PodSpec, items []v1.DownwardAPIVolumeFile, p *field.Path, paths sets.Set[string]) field.ErrorList {
	var errs field.ErrorList
	for i, item := range items {
		ip := p.Index(i)
		switch clean := path.Clean(item.Path); {
		case item.Path == "":
			errs = append(errs, field.Required(ip.Child("path"), ""))
		case path.IsAbs(item.Path):
			errs = append(errs, field.Invalid(ip.Child("path"), item.Path, "must be a relative path"))
		case clean == ".." || strings.HasPrefix(clean, "../") || strings.HasPrefix(item.Path, "..") || hasDotDot(item.Path):
			errs = append(errs, field.Invalid(ip.Child("path"), item.Path, "must not contain '..'"))
		case paths.Has(clean):
			errs = append(errs, field.Duplicate(ip.Child("path"), item.Path))
		default:
			paths.Insert(clean)
		}
		errs = append(errs, validateFileMode(item.Mode, ip.Child("mode"))...)
		switch {
		case item.FieldRef != nil && item.ResourceFieldRef != nil:
			errs = append(errs, field.Forbidden(ip, "fieldRef and resourceFieldRef can not be specified simultaneously"))
		case item.FieldRef != nil:
			if fp := item.FieldRef.FieldPath; !volumeFieldPaths.Has(fp) && !isSubscript(fp) {
				errs = append(errs, field.NotSupported(ip.Child("fieldRef", "fieldPath"), fp, append(sets.List(volumeFieldPaths),
					"metadata.labels['<key>']", "metadata.annotations['<key>']")))
			}
		case item.ResourceFieldRef != nil:
			rp := ip.Child("resourceFieldRef")
			if !hasContainer(spec, item.ResourceFieldRef.ContainerName) {
				errs = append(errs, field.NotFound(rp.Child("containerName"), item.ResourceFieldRef.ContainerName))
			}
			errs = append(errs, validateResourceName(item.ResourceFieldRef.Resource, rp.Child("resource"))...)
		default:
			errs = append(errs, field.Required(ip, "must specify fieldRef or resourceFieldRef"))
		}
	}
	return errs
}

func hasDotDot(p string) bool {
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return true
		}
	}
	return false
}

func validateFileMode(mode *int32, p *field.Path) field.ErrorList {
	if mode != nil && (*mode < 0 || *mode > 0o777) {
		return field.ErrorList{field.Invalid(p, *mode, "must be a number between 0 and 0777 (octal), both inclusive")}
	}
	return nil
}

func validateResourceName(resource string, p *field.Path) field.ErrorList {
	if !strings.HasPrefix(resource, "limits.") && !strings.HasPrefix(resource, "requests.") {
		return field.ErrorList{field.NotSupported(p, resource, []string{"limits.cpu", "limits.memory", "requests.cpu", "requests.memory"})}
	}
	return nil
}

func validateSeccomp(sp *v1.SeccompProfile, p *field.Path) field.ErrorList {
	if sp == nil || sp.Type == v1.SeccompProfileTypeRuntimeDefault || sp.Type == v1.SeccompProfileTypeUnconfined {
		return nil
	}
	if sp.Type == v1.SeccompProfileTypeLocalhost {
		// As the apiserver: a relative path under the node's seccomp root,
		// which must not climb out of it.
		lp := p.Child("localhostProfile")
		switch {
		case sp.LocalhostProfile == nil || *sp.LocalhostProfile == "":
			return field.ErrorList{field.Required(lp, "a Localhost profile names its file under the seccomp profile root")}
		case filepath.IsAbs(*sp.LocalhostProfile):
			return field.ErrorList{field.Invalid(lp, *sp.LocalhostProfile, "must be a relative path")}
		case slices.Contains(strings.Split(filepath.ToSlash(*sp.LocalhostProfile), "/"), ".."):
			return field.ErrorList{field.Invalid(lp, *sp.LocalhostProfile, "must not contain '..'")}
		}
		return nil
	}
	return field.ErrorList{field.NotSupported(p.Child("type"), sp.Type,
		[]v1.SeccompProfileType{v1.SeccompProfileTypeRuntimeDefault, v1.SeccompProfileTypeUnconfined, v1.SeccompProfileTypeLocalhost})}
}

// validateNamedPort: a named probe port must be one of the container's ports.
func validateNamedPort(c *v1.Container, port intstr.IntOrString, p *field.Path) field.ErrorList {
	if port.Type != intstr.String {
		return nil
	}
	for _, cp := range c.Ports {
		if cp.Name == port.StrVal {
			return nil
		}
	}
	return field.ErrorList{field.Invalid(p, port.StrVal, "the container declares no port of that name")}
}

func hasContainer(spec *v1.PodSpec, name string) bool {
	for _, list := range [][]v1.Container{spec.InitContainers, spec.Containers} {
		for _, c := range list {
			if c.Name == name {
				return true
			}
		}
	}
	return false
}

func isSubscript(fieldPath string) bool {
	for _, prefix := range []string{"metadata.labels['", "metadata.annotations['"} {
		if rest, ok := strings.CutPrefix(fieldPath, prefix); ok && strings.HasSuffix(rest, "']") && len(rest) > 2 {
			return true
		}
	}
	return false
}

func contains[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// unsupportedFields refuses every field of the struct *v that is set (not
// its zero value) and whose JSON name is not in handled.
func unsupportedFields(v any, p *field.Path, handled sets.Set[string]) field.ErrorList {
	var errs field.ErrorList
	for _, name := range setFields(v) {
		if handled.Has(name) {
			continue
		}
		why := refusalReasons[name]
		if why == "" {
			why = fmt.Sprintf("%s is not supported by ledgerlet", name)
		}
		errs = append(errs, field.Forbidden(p.Child(name), why))
	}
	return errs
}

// setFields lists the JSON names of the fields of the struct *v that are
// set, in declaration order.
func setFields(v any) []string {
	rv := reflect.ValueOf(v).Elem()
	rt := rv.Type()
	var out []string
	for i := 0; i < rt.NumField(); i++ {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" || rv.Field(i).IsZero() {
			continue
		}
		out = append(out, name)
	}
	return out
}
