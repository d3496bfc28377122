package sources

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Volume types a static pod may use. Everything else is refused: either it
// references an API object (static pods must run without an apiserver, and
// the kubelet refuses them too, PreventStaticPodAPIReferences) or it needs a
// volume plugin ledgerlet does not have.
var allowedVolumeTypes = map[string]bool{
	"hostPath": true, "emptyDir": true, "downwardAPI": true, "image": true, "projected": true,
}

// apiObjectVolumeTypes name what a volume type would reference.
var apiObjectVolumeTypes = map[string]string{
	"secret": "secrets", "configMap": "configmaps", "persistentVolumeClaim": "persistentvolumeclaims",
	"csi": "CSI drivers", "ephemeral": "persistentvolumeclaims",
}

// validatePod checks a defaulted, identity-stamped pod. baseName is the name
// as written (before the node suffix). Every error carries its field path.
func validatePod(pod *v1.Pod, baseName string) error {
	var errs field.ErrorList
	md := field.NewPath("metadata")
	if msgs := validation.IsDNS1123Subdomain(baseName); len(msgs) > 0 {
		errs = append(errs, field.Invalid(md.Child("name"), baseName, strings.Join(msgs, "; ")))
	} else if msgs := validation.IsDNS1123Subdomain(pod.Name); len(msgs) > 0 {
		errs = append(errs, field.Invalid(md.Child("name"), pod.Name, "with the node name suffix: "+strings.Join(msgs, "; ")))
	}
	if msgs := validation.IsDNS1123Label(pod.Namespace); len(msgs) > 0 {
		errs = append(errs, field.Invalid(md.Child("namespace"), pod.Namespace, strings.Join(msgs, "; ")))
	}
	errs = append(errs, validateUID(string(pod.UID), md.Child("uid"))...)
	errs = append(errs, metavalidation.ValidateLabels(pod.Labels, md.Child("labels"))...)
	errs = append(errs, apivalidation.ValidateAnnotations(pod.Annotations, md.Child("annotations"))...)
	errs = append(errs, validateSpec(&pod.Spec, field.NewPath("spec"))...)
	errs = append(errs, validateRunnable(&pod.Spec, field.NewPath("spec"))...)
	return joinFieldErrors(errs)
}

// maxUIDLength bounds a pinned metadata.uid (a UUID is 36 characters).
const maxUIDLength = 128

// validateUID checks a pinned metadata.uid. The UID names the pod's log
// directory, data directory and cgroup, so, like a name, it must be one plain
// path component: letters, digits, '-', '_' and '.', starting and ending with
// a letter or digit, which rules out "..", separators and control characters.
// Upper case is allowed: UUIDs are often written that way.
func validateUID(uid string, p *field.Path) field.ErrorList {
	if len(uid) > maxUIDLength {
		return field.ErrorList{field.TooLong(p, "", maxUIDLength)}
	}
	if !isPlainUID(uid) {
		return field.ErrorList{field.Invalid(p, uid, "must consist of letters, digits, '-', '_' or '.', and start and end with a letter or digit")}
	}
	return nil
}

func isPlainUID(uid string) bool {
	if uid == "" {
		return false
	}
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }
	for i := 0; i < len(uid); i++ {
		if c := uid[i]; !alnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return alnum(uid[0]) && alnum(uid[len(uid)-1])
}

func joinFieldErrors(errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}

func validateSpec(spec *v1.PodSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	volumes := sets.New[string]()
	for i := range spec.Volumes {
		vol := &spec.Volumes[i]
		vp := p.Child("volumes").Index(i)
		errs = append(errs, validateDNSLabel(vol.Name, vp.Child("name"))...)
		if volumes.Has(vol.Name) {
			errs = append(errs, field.Duplicate(vp.Child("name"), vol.Name))
		}
		volumes.Insert(vol.Name)
		errs = append(errs, validateVolumeSource(&vol.VolumeSource, vp)...)
	}

	if len(spec.Containers) == 0 {
		errs = append(errs, field.Required(p.Child("containers"), "must have at least one container"))
	}
	names := sets.New[string]()
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		cp := p.Child("initContainers").Index(i)
		errs = append(errs, validateContainer(c, cp, volumes, spec.HostNetwork, true)...)
		if c.Name != "" && names.Has(c.Name) {
			errs = append(errs, field.Duplicate(cp.Child("name"), c.Name))
		}
		names.Insert(c.Name)
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		cp := p.Child("containers").Index(i)
		errs = append(errs, validateContainer(c, cp, volumes, spec.HostNetwork, false)...)
		if c.Name != "" && names.Has(c.Name) {
			errs = append(errs, field.Duplicate(cp.Child("name"), c.Name))
		}
		names.Insert(c.Name)
	}

	switch spec.RestartPolicy {
	case v1.RestartPolicyAlways, v1.RestartPolicyOnFailure, v1.RestartPolicyNever:
	default:
		errs = append(errs, field.NotSupported(p.Child("restartPolicy"), spec.RestartPolicy,
			[]v1.RestartPolicy{v1.RestartPolicyAlways, v1.RestartPolicyOnFailure, v1.RestartPolicyNever}))
	}
	switch spec.DNSPolicy {
	case v1.DNSClusterFirst, v1.DNSClusterFirstWithHostNet, v1.DNSDefault:
	case v1.DNSNone:
		if spec.DNSConfig == nil {
			errs = append(errs, field.Required(p.Child("dnsConfig"), "must provide `dnsConfig` when `dnsPolicy` is None"))
		}
	default:
		errs = append(errs, field.NotSupported(p.Child("dnsPolicy"), spec.DNSPolicy,
			[]v1.DNSPolicy{v1.DNSClusterFirst, v1.DNSClusterFirstWithHostNet, v1.DNSDefault, v1.DNSNone}))
	}
	if g := spec.TerminationGracePeriodSeconds; g != nil && *g < 0 {
		errs = append(errs, field.Invalid(p.Child("terminationGracePeriodSeconds"), *g, "must be >= 0"))
	}
	if d := spec.ActiveDeadlineSeconds; d != nil && *d <= 0 {
		errs = append(errs, field.Invalid(p.Child("activeDeadlineSeconds"), *d, "must be > 0"))
	}
	if spec.Hostname != "" {
		errs = append(errs, validateDNSLabel(spec.Hostname, p.Child("hostname"))...)
	}
	if spec.Subdomain != "" {
		errs = append(errs, validateDNSLabel(spec.Subdomain, p.Child("subdomain"))...)
	}

	// References to API objects: a static pod must be runnable from the
	// manifest alone.
	if spec.ServiceAccountName != "" {
		errs = append(errs, field.Forbidden(p.Child("serviceAccountName"), "static pods may not reference serviceaccounts"))
	} else if spec.DeprecatedServiceAccount != "" {
		errs = append(errs, field.Forbidden(p.Child("serviceAccount"), "static pods may not reference serviceaccounts"))
	}
	if len(spec.ImagePullSecrets) > 0 {
		errs = append(errs, field.Forbidden(p.Child("imagePullSecrets"), "static pods may not reference secrets"))
	}
	if len(spec.EphemeralContainers) > 0 {
		errs = append(errs, field.Forbidden(p.Child("ephemeralContainers"), "static pods do not support ephemeral containers"))
	}
	if len(spec.ResourceClaims) > 0 {
		errs = append(errs, field.Forbidden(p.Child("resourceClaims"), "static pods may not reference resourceclaims"))
	}
	return errs
}

func validateVolumeSource(vs *v1.VolumeSource, vp *field.Path) field.ErrorList {
	var errs field.ErrorList
	types := setVolumeSources(vs)
	switch {
	case len(types) == 0:
		errs = append(errs, field.Required(vp, "must specify a volume type"))
	case len(types) > 1:
		errs = append(errs, field.Forbidden(vp, "may not specify more than 1 volume type, got "+strings.Join(types, ", ")))
	}
	for _, t := range types {
		tp := vp.Child(t)
		switch {
		case apiObjectVolumeTypes[t] != "":
			errs = append(errs, field.Forbidden(tp, "static pods may not reference "+apiObjectVolumeTypes[t]))
		case !allowedVolumeTypes[t]:
			errs = append(errs, field.Forbidden(tp, fmt.Sprintf("volume type %q is not supported for static pods (allowed: hostPath, emptyDir, downwardAPI, image, projected downwardAPI)", t)))
		}
	}
	if vs.HostPath != nil && vs.HostPath.Path == "" {
		errs = append(errs, field.Required(vp.Child("hostPath", "path"), ""))
	}
	if vs.Image != nil && vs.Image.Reference == "" {
		errs = append(errs, field.Required(vp.Child("image", "reference"), ""))
	}
	if vs.Projected != nil {
		for i, src := range vs.Projected.Sources {
			sp := vp.Child("projected", "sources").Index(i)
			switch {
			case src.Secret != nil:
				errs = append(errs, field.Forbidden(sp.Child("secret"), "static pods may not reference secrets"))
			case src.ConfigMap != nil:
				errs = append(errs, field.Forbidden(sp.Child("configMap"), "static pods may not reference configmaps"))
			case src.ServiceAccountToken != nil:
				errs = append(errs, field.Forbidden(sp.Child("serviceAccountToken"), "static pods may not reference serviceaccounts"))
			case src.ClusterTrustBundle != nil:
				errs = append(errs, field.Forbidden(sp.Child("clusterTrustBundle"), "static pods may not reference clustertrustbundles"))
			case src.PodCertificate != nil:
				errs = append(errs, field.Forbidden(sp.Child("podCertificate"), "static pods may not reference podcertificaterequests"))
			case src.DownwardAPI == nil:
				errs = append(errs, field.Required(sp, "must specify a projection (only downwardAPI is supported for static pods)"))
			}
		}
	}
	return errs
}

// setVolumeSources lists the JSON names of the volume types set in vs. It
// walks the struct so that a volume type added to k8s.io/api later is seen
// (and refused) rather than silently ignored.
func setVolumeSources(vs *v1.VolumeSource) []string {
	var out []string
	rv := reflect.ValueOf(vs).Elem()
	rt := rv.Type()
	for i := 0; i < rt.NumField(); i++ {
		f := rv.Field(i)
		if f.Kind() != reflect.Pointer || f.IsNil() {
			continue
		}
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		out = append(out, name)
	}
	return out
}

func validateContainer(c *v1.Container, p *field.Path, volumes sets.Set[string], hostNetwork, isInit bool) field.ErrorList {
	var errs field.ErrorList
	if c.Name == "" {
		errs = append(errs, field.Required(p.Child("name"), ""))
	} else {
		errs = append(errs, validateDNSLabel(c.Name, p.Child("name"))...)
	}
	if strings.TrimSpace(c.Image) == "" {
		errs = append(errs, field.Required(p.Child("image"), ""))
	} else if c.Image != strings.TrimSpace(c.Image) {
		errs = append(errs, field.Invalid(p.Child("image"), c.Image, "must not have leading or trailing whitespace"))
	}
	switch c.ImagePullPolicy {
	case v1.PullAlways, v1.PullIfNotPresent, v1.PullNever:
	default:
		errs = append(errs, field.NotSupported(p.Child("imagePullPolicy"), c.ImagePullPolicy,
			[]v1.PullPolicy{v1.PullAlways, v1.PullIfNotPresent, v1.PullNever}))
	}
	switch c.TerminationMessagePolicy {
	case v1.TerminationMessageReadFile, v1.TerminationMessageFallbackToLogsOnError:
	default:
		errs = append(errs, field.NotSupported(p.Child("terminationMessagePolicy"), c.TerminationMessagePolicy,
			[]v1.TerminationMessagePolicy{v1.TerminationMessageReadFile, v1.TerminationMessageFallbackToLogsOnError}))
	}
	if c.RestartPolicy != nil {
		if !isInit {
			errs = append(errs, field.Forbidden(p.Child("restartPolicy"), "may only be set on init containers"))
		} else if *c.RestartPolicy != v1.ContainerRestartPolicyAlways {
			errs = append(errs, field.NotSupported(p.Child("restartPolicy"), *c.RestartPolicy, []v1.ContainerRestartPolicy{v1.ContainerRestartPolicyAlways}))
		}
	}
	sidecar := isInit && c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways

	portNames := sets.New[string]()
	for i, port := range c.Ports {
		pp := p.Child("ports").Index(i)
		if port.Name != "" {
			for _, msg := range validation.IsValidPortName(port.Name) {
				errs = append(errs, field.Invalid(pp.Child("name"), port.Name, msg))
			}
			if portNames.Has(port.Name) {
				errs = append(errs, field.Duplicate(pp.Child("name"), port.Name))
			}
			portNames.Insert(port.Name)
		}
		for _, msg := range validation.IsValidPortNum(int(port.ContainerPort)) {
			errs = append(errs, field.Invalid(pp.Child("containerPort"), port.ContainerPort, msg))
		}
		if port.HostPort != 0 {
			for _, msg := range validation.IsValidPortNum(int(port.HostPort)) {
				errs = append(errs, field.Invalid(pp.Child("hostPort"), port.HostPort, msg))
			}
			if hostNetwork && port.HostPort != port.ContainerPort {
				errs = append(errs, field.Invalid(pp.Child("hostPort"), port.HostPort, "must match `containerPort` when `hostNetwork` is true"))
			}
		}
		switch port.Protocol {
		case v1.ProtocolTCP, v1.ProtocolUDP, v1.ProtocolSCTP:
		default:
			errs = append(errs, field.NotSupported(pp.Child("protocol"), port.Protocol,
				[]v1.Protocol{v1.ProtocolTCP, v1.ProtocolUDP, v1.ProtocolSCTP}))
		}
	}

	for i, env := range c.Env {
		ep := p.Child("env").Index(i)
		if env.Name == "" {
			errs = append(errs, field.Required(ep.Child("name"), ""))
		} else {
			for _, msg := range validation.IsRelaxedEnvVarName(env.Name) {
				errs = append(errs, field.Invalid(ep.Child("name"), env.Name, msg))
			}
		}
		if f := env.ValueFrom; f != nil {
			if f.SecretKeyRef != nil {
				errs = append(errs, field.Forbidden(ep.Child("valueFrom", "secretKeyRef"), "static pods may not reference secrets"))
			}
			if f.ConfigMapKeyRef != nil {
				errs = append(errs, field.Forbidden(ep.Child("valueFrom", "configMapKeyRef"), "static pods may not reference configmaps"))
			}
		}
	}
	for i, ef := range c.EnvFrom {
		ep := p.Child("envFrom").Index(i)
		if ef.SecretRef != nil {
			errs = append(errs, field.Forbidden(ep.Child("secretRef"), "static pods may not reference secrets"))
		}
		if ef.ConfigMapRef != nil {
			errs = append(errs, field.Forbidden(ep.Child("configMapRef"), "static pods may not reference configmaps"))
		}
	}

	mountPaths := sets.New[string]()
	for i, m := range c.VolumeMounts {
		mp := p.Child("volumeMounts").Index(i)
		if m.Name == "" {
			errs = append(errs, field.Required(mp.Child("name"), ""))
		} else if !volumes.Has(m.Name) {
			errs = append(errs, field.NotFound(mp.Child("name"), m.Name))
		}
		if m.MountPath == "" {
			errs = append(errs, field.Required(mp.Child("mountPath"), ""))
		} else if mountPaths.Has(m.MountPath) {
			errs = append(errs, field.Invalid(mp.Child("mountPath"), m.MountPath, "must be unique"))
		}
		mountPaths.Insert(m.MountPath)
	}
	for i, d := range c.VolumeDevices {
		if !volumes.Has(d.Name) {
			errs = append(errs, field.NotFound(p.Child("volumeDevices").Index(i).Child("name"), d.Name))
		}
	}
	if len(c.Resources.Claims) > 0 {
		errs = append(errs, field.Forbidden(p.Child("resources", "claims"), "static pods may not reference resourceclaims"))
	}
	// Sorted so that the reason, which is recorded, is the same every time.
	for _, name := range sortedResourceNames(c.Resources.Requests) {
		q := c.Resources.Requests[name]
		if q.Sign() < 0 {
			errs = append(errs, field.Invalid(p.Child("resources", "requests").Key(string(name)), q.String(), "must be greater than or equal to 0"))
		}
		if lim, ok := c.Resources.Limits[name]; ok && q.Cmp(lim) > 0 {
			errs = append(errs, field.Invalid(p.Child("resources", "requests").Key(string(name)), q.String(), "must be less than or equal to "+string(name)+" limit of "+lim.String()))
		}
	}
	for _, name := range sortedResourceNames(c.Resources.Limits) {
		if q := c.Resources.Limits[name]; q.Sign() < 0 {
			errs = append(errs, field.Invalid(p.Child("resources", "limits").Key(string(name)), q.String(), "must be greater than or equal to 0"))
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
		if isInit && !sidecar {
			errs = append(errs, field.Forbidden(p.Child(pr.name), "may not be set for init containers without restartPolicy=Always"))
			continue
		}
		errs = append(errs, validateProbe(pr.probe, p.Child(pr.name), pr.name)...)
	}
	if c.Lifecycle != nil {
		if h := c.Lifecycle.PostStart; h != nil {
			errs = append(errs, validateHandler(h.Exec, h.HTTPGet, h.TCPSocket, nil, h.Sleep, p.Child("lifecycle", "postStart"))...)
		}
		if h := c.Lifecycle.PreStop; h != nil {
			errs = append(errs, validateHandler(h.Exec, h.HTTPGet, h.TCPSocket, nil, h.Sleep, p.Child("lifecycle", "preStop"))...)
		}
	}
	return errs
}

func validateProbe(pr *v1.Probe, p *field.Path, kind string) field.ErrorList {
	errs := validateHandler(pr.Exec, pr.HTTPGet, pr.TCPSocket, pr.GRPC, nil, p)
	positive := []struct {
		name string
		v    int32
	}{{"timeoutSeconds", pr.TimeoutSeconds}, {"periodSeconds", pr.PeriodSeconds}, {"successThreshold", pr.SuccessThreshold}, {"failureThreshold", pr.FailureThreshold}}
	for _, f := range positive {
		if f.v < 1 {
			errs = append(errs, field.Invalid(p.Child(f.name), f.v, "must be greater than or equal to 1"))
		}
	}
	if pr.InitialDelaySeconds < 0 {
		errs = append(errs, field.Invalid(p.Child("initialDelaySeconds"), pr.InitialDelaySeconds, "must be greater than or equal to 0"))
	}
	if kind != "readinessProbe" && pr.SuccessThreshold > 1 {
		errs = append(errs, field.Invalid(p.Child("successThreshold"), pr.SuccessThreshold, "must be 1"))
	}
	return errs
}

// validateHandler checks that exactly one action is set and that its port is valid.
func validateHandler(exec *v1.ExecAction, get *v1.HTTPGetAction, tcp *v1.TCPSocketAction, grpc *v1.GRPCAction, sleep *v1.SleepAction, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	n := 0
	if exec != nil {
		n++
		if len(exec.Command) == 0 {
			errs = append(errs, field.Required(p.Child("exec", "command"), ""))
		}
	}
	if get != nil {
		n++
		errs = append(errs, validatePort(get.Port, p.Child("httpGet", "port"))...)
		if get.Scheme != v1.URISchemeHTTP && get.Scheme != v1.URISchemeHTTPS {
			errs = append(errs, field.NotSupported(p.Child("httpGet", "scheme"), get.Scheme, []v1.URIScheme{v1.URISchemeHTTP, v1.URISchemeHTTPS}))
		}
	}
	if tcp != nil {
		n++
		errs = append(errs, validatePort(tcp.Port, p.Child("tcpSocket", "port"))...)
	}
	if grpc != nil {
		n++
		for _, msg := range validation.IsValidPortNum(int(grpc.Port)) {
			errs = append(errs, field.Invalid(p.Child("grpc", "port"), grpc.Port, msg))
		}
	}
	if sleep != nil {
		n++
		if sleep.Seconds < 0 {
			errs = append(errs, field.Invalid(p.Child("sleep", "seconds"), sleep.Seconds, "must be greater than or equal to 0"))
		}
	}
	switch {
	case n == 0:
		errs = append(errs, field.Required(p, "must specify a handler type"))
	case n > 1:
		errs = append(errs, field.Forbidden(p, "may not specify more than 1 handler type"))
	}
	return errs
}

func validatePort(port intstr.IntOrString, p *field.Path) field.ErrorList {
	var msgs []string
	if port.Type == intstr.String {
		msgs = validation.IsValidPortName(port.StrVal)
	} else {
		msgs = validation.IsValidPortNum(intOrStringPort(port))
	}
	var errs field.ErrorList
	for _, msg := range msgs {
		errs = append(errs, field.Invalid(p, port.String(), msg))
	}
	return errs
}

func validateDNSLabel(v string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Label(v) {
		errs = append(errs, field.Invalid(p, v, msg))
	}
	return errs
}

func sortedResourceNames(l v1.ResourceList) []v1.ResourceName {
	names := make([]v1.ResourceName, 0, len(l))
	for n := range l {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// intOrStringPort returns a numeric port, or 0 for a named one.
func intOrStringPort(p intstr.IntOrString) int {
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	return 0
}
