package sources

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

func fileOpts(path string) ParseOptions {
	return ParseOptions{NodeName: "Node-1", Source: SourceFile, Path: path}
}

func mustParseFile(t testing.TB, name string) *Result {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Parse(data, fileOpts("/etc/kubernetes/manifests/"+name))
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return res
}

func TestTestdataManifestsParseUnchanged(t *testing.T) {
	for _, tc := range []struct {
		file, key, uid, alg string
	}{
		{"pinned-uid.json", "edge/pinned-node-1", "6f1c2b0e-7d2a-4b8e-9c1a-3f5e2d7a9b10", ""},
		{"no-kind.yaml", "default/sleeper-node-1", "", UIDAlgorithm},
		{"kube-apiserver.yaml", "kube-system/kube-apiserver-node-1", "", UIDAlgorithm},
	} {
		t.Run(tc.file, func(t *testing.T) {
			res := mustParseFile(t, tc.file)
			if res.Key != tc.key {
				t.Errorf("key = %q, want %q", res.Key, tc.key)
			}
			if tc.uid != "" && res.UID != tc.uid {
				t.Errorf("uid = %q, want the pinned %q", res.UID, tc.uid)
			}
			if res.UIDAlgorithm != tc.alg {
				t.Errorf("uid algorithm = %q, want %q", res.UIDAlgorithm, tc.alg)
			}
			if len(res.Warnings) > 0 {
				t.Errorf("warnings: %v", res.Warnings)
			}
			p := res.Pod
			if string(p.UID) != res.UID || p.Annotations[AnnotationConfigHash] != res.ConfigHash {
				t.Errorf("uid %q / %q, config.hash %q / %q: want the stamped values", p.UID, res.UID, p.Annotations[AnnotationConfigHash], res.ConfigHash)
			}
			// Unpinned, the UID is the content hash (as in the kubelet);
			// pinned, config.hash still follows the content.
			if pinned := tc.uid != ""; pinned == (res.ConfigHash == res.UID) {
				t.Errorf("pinned=%v: uid %q, config.hash %q", pinned, res.UID, res.ConfigHash)
			}
			if p.Annotations[AnnotationConfigSource] != "file" {
				t.Errorf("config.source = %q", p.Annotations[AnnotationConfigSource])
			}
			if _, ok := p.Annotations[AnnotationConfigSeen]; ok {
				t.Errorf("config.seen set for a zero Seen time")
			}
			if p.Spec.NodeName != "node-1" {
				t.Errorf("nodeName = %q, want the lower-cased node name", p.Spec.NodeName)
			}
			var back v1.Pod
			if err := json.Unmarshal(res.PodJSON, &back); err != nil || back.Name != p.Name {
				t.Errorf("PodJSON does not decode to the pod: %v", err)
			}
		})
	}
}

func TestKubeAPIServerManifestDefaults(t *testing.T) {
	p := mustParseFile(t, "kube-apiserver.yaml").Pod
	c := p.Spec.Containers[0]
	checks := []struct {
		what      string
		got, want any
	}{
		{"restartPolicy", p.Spec.RestartPolicy, v1.RestartPolicyAlways},
		{"dnsPolicy", p.Spec.DNSPolicy, v1.DNSClusterFirst},
		{"terminationGracePeriodSeconds", *p.Spec.TerminationGracePeriodSeconds, int64(30)},
		{"schedulerName", p.Spec.SchedulerName, "default-scheduler"},
		{"enableServiceLinks", *p.Spec.EnableServiceLinks, true},
		{"phase", p.Status.Phase, v1.PodPending},
		{"terminationMessagePath", c.TerminationMessagePath, "/dev/termination-log"},
		{"terminationMessagePolicy", c.TerminationMessagePolicy, v1.TerminationMessageReadFile},
		{"imagePullPolicy (as written)", c.ImagePullPolicy, v1.PullIfNotPresent},
		{"hostPort follows containerPort with hostNetwork", c.Ports[0].HostPort, int32(6443)},
		{"liveness timeout as written", c.LivenessProbe.TimeoutSeconds, int32(15)},
		{"liveness success default", c.LivenessProbe.SuccessThreshold, int32(1)},
		{"readiness scheme as written", c.ReadinessProbe.HTTPGet.Scheme, v1.URISchemeHTTPS},
		{"priority kept", *p.Spec.Priority, int32(2000001000)},
		{"hostPath type kept", *p.Spec.Volumes[0].HostPath.Type, v1.HostPathDirectoryOrCreate},
		{"kubeadm annotation kept", p.Annotations["kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint"], "10.0.0.10:6443"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	tols := p.Spec.Tolerations
	if len(tols) != 1 || tols[0].Operator != v1.TolerationOpExists || tols[0].Effect != v1.TaintEffectNoExecute || tols[0].Key != "" {
		t.Errorf("tolerations = %+v, want the kubelet's {operator: Exists, effect: NoExecute}", tols)
	}
}

func TestDefaults(t *testing.T) {
	res, err := Parse([]byte(`
metadata: {name: d}
spec:
  containers:
  - name: a
    image: busybox
    ports: [{containerPort: 80}]
    resources: {limits: {cpu: "1", memory: 64Mi}}
    env: [{name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]
    livenessProbe: {httpGet: {port: 80}}
    readinessProbe: {tcpSocket: {port: 80}, periodSeconds: 3}
  - {name: b, image: "busybox:latest"}
  - {name: c, image: "registry:5000/busybox"}
  - {name: d, image: "registry:5000/busybox:1.36"}
  - {name: e, image: "busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000"}
  volumes: [{name: v}]
`), fileOpts("/m/d.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p := res.Pod
	cs := p.Spec.Containers
	pulls := []v1.PullPolicy{v1.PullAlways, v1.PullAlways, v1.PullAlways, v1.PullIfNotPresent, v1.PullIfNotPresent}
	for i, want := range pulls {
		if cs[i].ImagePullPolicy != want {
			t.Errorf("image %q: imagePullPolicy %s, want %s", cs[i].Image, cs[i].ImagePullPolicy, want)
		}
	}
	a := cs[0]
	if a.Ports[0].Protocol != v1.ProtocolTCP || a.Ports[0].HostPort != 0 {
		t.Errorf("port = %+v, want TCP and no host port", a.Ports[0])
	}
	if got := a.Resources.Requests.Memory().String(); got != "64Mi" {
		t.Errorf("memory request = %s, want the limit", got)
	}
	if a.Env[0].ValueFrom.FieldRef.APIVersion != "v1" {
		t.Errorf("fieldRef apiVersion not defaulted")
	}
	lp := a.LivenessProbe
	if lp.TimeoutSeconds != 1 || lp.PeriodSeconds != 10 || lp.SuccessThreshold != 1 || lp.FailureThreshold != 3 ||
		lp.HTTPGet.Scheme != v1.URISchemeHTTP || lp.HTTPGet.Path != "/" {
		t.Errorf("liveness probe defaults = %+v", lp)
	}
	if a.ReadinessProbe.PeriodSeconds != 3 {
		t.Errorf("readiness period overwritten")
	}
	if p.Spec.Volumes[0].EmptyDir == nil {
		t.Errorf("a volume without a type is not an emptyDir")
	}
	if p.Namespace != "default" || p.Name != "d-node-1" {
		t.Errorf("identity = %s/%s", p.Namespace, p.Name)
	}
}

// TestUIDv1Golden pins algorithm "v1". If this fails, UIDs changed and every
// static pod would restart on upgrade: do not update the constants, add a
// new algorithm version instead. The expected UID was computed outside Go:
//
//	printf 'ledgerlet-uid-v1\0%s\0host:node-1\0file:/etc/kubernetes/manifests/golden.yaml' "$C" | sha256sum | cut -c1-32
//
// with C set to wantCanonical.
func TestUIDv1Golden(t *testing.T) {
	manifest := []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: golden\nspec:\n  containers:\n  - name: c\n    image: localhost/busybox:1.36\n    command: [\"sleep\", \"1e3\"]\n")
	const wantCanonical = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"golden"},"spec":{"containers":[{"command":["sleep","1e3"],"image":"localhost/busybox:1.36","name":"c"}]}}`
	obj, _, _, err := decodeDocument(manifest, fileOpts("/x"))
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := canonicalJSON(obj); string(c) != wantCanonical {
		t.Fatalf("canonical form changed:\n got %s\nwant %s", c, wantCanonical)
	}
	res, err := Parse(manifest, ParseOptions{NodeName: "Node-1", Source: SourceFile, Path: "/etc/kubernetes/manifests/golden.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	const want = "808535e1894b989ad7d4a955736b6d8f"
	if res.UID != want || res.UIDAlgorithm != "v1" {
		t.Fatalf("uid = %s (%s), want %s (v1): the v1 UID algorithm changed", res.UID, res.UIDAlgorithm, want)
	}
	kube := mustParseFile(t, "kube-apiserver.yaml")
	const wantKube = "3384c525f645eb5b1566599dd510a9dc"
	if kube.UID != wantKube {
		t.Fatalf("kube-apiserver uid = %s, want %s: the v1 UID algorithm changed", kube.UID, wantKube)
	}
}

func TestCanonicalJSONEscaping(t *testing.T) {
	got, err := canonicalJSON(map[string]any{"b": "<&>\"\\\n\u00e9", "a": []any{json.Number("1.50"), true, nil}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":[1.50,true,null],"b":"<&>\"\\\u000aé"}`; string(got) != want {
		t.Errorf("canonical = %s, want %s", got, want)
	}
}

func TestUIDIgnoresFormattingButNotMeaning(t *testing.T) {
	base := "metadata: {name: u}\nspec: {containers: [{name: c, image: busybox:1.36}]}\n"
	uid := func(data, node, source, path string) string {
		t.Helper()
		opts := ParseOptions{NodeName: node, Source: source, Path: path}
		res, err := Parse([]byte(data), opts)
		if err != nil {
			t.Fatal(err)
		}
		return res.UID
	}
	ref := uid(base, "n", SourceFile, "/m/u.yaml")
	same := map[string]string{
		"comments and layout": "# hi\nspec:\n  containers:\n  - image: busybox:1.36   # pinned\n    name: c\nmetadata:\n  name: u\n",
		"JSON":                `{"spec":{"containers":[{"image":"busybox:1.36","name":"c"}]},"metadata":{"name":"u"}}`,
	}
	for what, m := range same {
		if got := uid(m, "n", SourceFile, "/m/u.yaml"); got != ref {
			t.Errorf("%s changed the uid", what)
		}
	}
	if uid(base, "N", SourceFile, "/m/u.yaml") != ref {
		t.Errorf("node name case changed the uid")
	}
	differ := map[string]string{
		"node":  uid(base, "other", SourceFile, "/m/u.yaml"),
		"path":  uid(base, "n", SourceFile, "/m/u.yml"),
		"url":   uid(base, "n", SourceHTTP, "/m/u.yaml"),
		"image": uid(strings.Replace(base, "1.36", "1.37", 1), "n", SourceFile, "/m/u.yaml"),
	}
	for what, got := range differ {
		if got == ref {
			t.Errorf("a different %s kept the uid", what)
		}
	}
}

func TestParseRejects(t *testing.T) {
	pod := func(spec string) string { return "metadata: {name: p}\nspec:\n" + spec }
	for _, tc := range []struct {
		name, manifest, want string
	}{
		{"empty", "", "empty manifest"},
		{"comments only", "# nothing\n", "empty manifest"},
		{"null", "null", "empty manifest"},
		{"not an object", "[1, 2]", "not an object"},
		{"bad yaml", "metadata: {name: p\n", "not valid YAML or JSON"},
		{"two documents", "metadata: {name: a}\n---\nmetadata: {name: b}\n", "2 YAML documents"},
		{"wrong kind", "kind: Deployment\nmetadata: {name: p}\n", `kind: Unsupported value: "Deployment"`},
		{"pod list in a file", "kind: PodList\nitems: []\n", `kind: Unsupported value: "PodList"`},
		{"wrong apiVersion", "apiVersion: apps/v1\nkind: Pod\nmetadata: {name: p}\n", `apiVersion: Unsupported value: "apps/v1"`},
		{"wrong type", "metadata: {name: p}\nspec: {containers: 3}\n", "not a valid Pod"},
		{"no name", "spec: {containers: [{name: c, image: i}]}\n", "metadata.name: Required value"},
		{"bad name", "metadata: {name: Bad_Name}\nspec: {containers: [{name: c, image: i}]}\n", `metadata.name: Invalid value: "Bad_Name"`},
		{"bad namespace", "metadata: {name: p, namespace: Kube.System}\nspec: {containers: [{name: c, image: i}]}\n", `metadata.namespace: Invalid value: "Kube.System"`},
		{"no containers", pod("  containers: []\n"), "spec.containers: Required value"},
		{"bad container name", pod("  containers: [{name: a, image: i}, {name: Foo, image: i}]\n"), `spec.containers[1].name: Invalid value: "Foo"`},
		{"duplicate container", pod("  initContainers: [{name: a, image: i}]\n  containers: [{name: a, image: i}]\n"), `spec.containers[0].name: Duplicate value: "a"`},
		{"no image", pod("  containers: [{name: a}]\n"), "spec.containers[0].image: Required value"},
		{"blank image", pod("  containers: [{name: a, image: ' '}]\n"), "spec.containers[0].image: Required value"},
		{"duplicate volume", pod("  containers: [{name: a, image: i}]\n  volumes: [{name: v, emptyDir: {}}, {name: v, emptyDir: {}}]\n"), `spec.volumes[1].name: Duplicate value: "v"`},
		{"mount of no volume", pod("  containers: [{name: a, image: i, volumeMounts: [{name: nope, mountPath: /x}]}]\n"), `spec.containers[0].volumeMounts[0].name: Not found: "nope"`},
		{"port zero", pod("  containers: [{name: a, image: i, ports: [{containerPort: 0}]}]\n"), "spec.containers[0].ports[0].containerPort: Invalid value: 0"},
		{"port too big", pod("  containers: [{name: a, image: i, ports: [{containerPort: 70000}]}]\n"), "spec.containers[0].ports[0].containerPort: Invalid value: 70000"},
		{"bad protocol", pod("  containers: [{name: a, image: i, ports: [{containerPort: 80, protocol: HTTP}]}]\n"), `spec.containers[0].ports[0].protocol: Unsupported value: "HTTP"`},
		{"restartPolicy", pod("  restartPolicy: Sometimes\n  containers: [{name: a, image: i}]\n"), `spec.restartPolicy: Unsupported value: "Sometimes"`},
		{"dnsPolicy", pod("  dnsPolicy: Google\n  containers: [{name: a, image: i}]\n"), `spec.dnsPolicy: Unsupported value: "Google"`},
		{"imagePullPolicy", pod("  containers: [{name: a, image: i, imagePullPolicy: Sometimes}]\n"), `spec.containers[0].imagePullPolicy: Unsupported value: "Sometimes"`},
		{"serviceAccountName", pod("  serviceAccountName: sa\n  containers: [{name: a, image: i}]\n"), "spec.serviceAccountName: Forbidden: static pods may not reference serviceaccounts"},
		{"imagePullSecrets", pod("  imagePullSecrets: [{name: s}]\n  containers: [{name: a, image: i}]\n"), "spec.imagePullSecrets: Forbidden"},
		{"env secret", pod("  containers: [{name: a, image: i, env: [{name: X, valueFrom: {secretKeyRef: {name: s, key: k}}}]}]\n"), "spec.containers[0].env[0].valueFrom.secretKeyRef: Forbidden"},
		{"env configMap", pod("  containers: [{name: a, image: i, env: [{name: X, valueFrom: {configMapKeyRef: {name: s, key: k}}}]}]\n"), "spec.containers[0].env[0].valueFrom.configMapKeyRef: Forbidden"},
		{"envFrom", pod("  containers: [{name: a, image: i, envFrom: [{secretRef: {name: s}}]}]\n"), "spec.containers[0].envFrom[0].secretRef: Forbidden"},
		{"secret volume", pod("  containers: [{name: a, image: i}]\n  volumes: [{name: v, secret: {secretName: s}}]\n"), "spec.volumes[0].secret: Forbidden: static pods may not reference secrets"},
		{"configMap volume", pod("  containers: [{name: a, image: i}]\n  volumes: [{name: v, configMap: {name: s}}]\n"), "spec.volumes[0].configMap: Forbidden"},
		{"pvc", pod("  containers: [{name: a, image: i}]\n  volumes: [{name: v, persistentVolumeClaim: {claimName: c}}]\n"), "spec.volumes[0].persistentVolumeClaim: Forbidden"},
		{"csi", pod("  containers: [{name: a, image: i}]\n  volumes: [{name: v, csi: {driver: d}}]\n"), "spec.volumes[0].csi: Forbidden"},
		{"ephemeral volume", pod("  containers: [{name: a, image: i}]\n  volumes: [{name: v, ephemeral: {}}]\n"), "spec.volumes[0].ephemeral: Forbidden"},
		{"projected token", pod("  containers: [{name: a, image: i}]\n  volumes: [{name: v, projected: {sources: [{serviceAccountToken: {path: t}}]}}]\n"), "spec.volumes[0].projected.sources[0].serviceAccountToken: Forbidden"},
		{"nfs", pod("  containers: [{name: a, image: i}]\n  volumes: [{name: v, nfs: {server: s, path: /}}]\n"), `spec.volumes[0].nfs: Forbidden: volume type "nfs" is not supported`},
		{"two volume types", pod("  containers: [{name: a, image: i}]\n  volumes: [{name: v, emptyDir: {}, hostPath: {path: /x}}]\n"), "spec.volumes[0]: Forbidden: may not specify more than 1 volume type"},
		{"ephemeral container", pod("  containers: [{name: a, image: i}]\n  ephemeralContainers: [{name: e, image: i}]\n"), "spec.ephemeralContainers: Forbidden"},
		{"probe without handler", pod("  containers: [{name: a, image: i, livenessProbe: {periodSeconds: 3}}]\n"), "spec.containers[0].livenessProbe: Required value: must specify a handler type"},
		{"probe bad port", pod("  containers: [{name: a, image: i, livenessProbe: {httpGet: {port: 0}}}]\n"), "spec.containers[0].livenessProbe.httpGet.port: Invalid value"},
		{"hostNetwork port mismatch", pod("  hostNetwork: true\n  containers: [{name: a, image: i, ports: [{containerPort: 80, hostPort: 81}]}]\n"), "spec.containers[0].ports[0].hostPort: Invalid value: 81"},
		{"request above limit", pod("  containers: [{name: a, image: i, resources: {limits: {cpu: 1}, requests: {cpu: 2}}}]\n"), "spec.containers[0].resources.requests[cpu]"},
		{"too large", "metadata: {name: p}\n#" + strings.Repeat("x", MaxManifestBytes), "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Parse([]byte(tc.manifest), fileOpts("/m/p.yaml"))
			if err == nil {
				t.Fatalf("accepted: %s", res.PodJSON)
			}
			var me *ManifestError
			if !errors.As(err, &me) {
				t.Fatalf("error %v is not a *ManifestError", err)
			}
			if !strings.HasPrefix(err.Error(), "/m/p.yaml: ") {
				t.Errorf("error %q does not name the file", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestValidationErrorNamesThePod(t *testing.T) {
	_, err := Parse([]byte("metadata: {name: web}\nspec: {containers: [{name: Web, image: i}]}\n"), fileOpts("/m/web.yaml"))
	var me *ManifestError
	if !errors.As(err, &me) || me.Pod != "default/web-node-1" {
		t.Fatalf("err = %v; want a ManifestError naming default/web-node-1", err)
	}
}

func TestUnknownFieldsAreWarnings(t *testing.T) {
	res, err := Parse([]byte(`
metadata: {name: w, labelz: {a: b}}
spec:
  containers:
  - name: c
    image: i
    imagee: typo
    Name: wrongcase
`), fileOpts("/m/w.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(res.Warnings, "\n")
	for _, want := range []string{`metadata.labelz`, `spec.containers[0].imagee`, `spec.containers[0].Name`} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings %q do not mention %s", got, want)
		}
	}
}

func TestDuplicateKeysAreWarnings(t *testing.T) {
	res, err := Parse([]byte("metadata: {name: a}\nmetadata: {name: dup}\nspec: {containers: [{name: c, image: i}]}\n"), fileOpts("/m/d.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Key != "default/dup-node-1" || len(res.Warnings) == 0 {
		t.Errorf("key %s, warnings %v: want the last key to win, with a warning", res.Key, res.Warnings)
	}
}

func TestConfigSeenIsTheGivenTime(t *testing.T) {
	seen := time.Date(2026, 3, 4, 3, 12, 0, 5, time.UTC)
	opts := fileOpts("/m/s.yaml")
	opts.Seen = seen
	res, err := Parse([]byte("metadata: {name: s}\nspec: {containers: [{name: c, image: i}]}\n"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Pod.Annotations[AnnotationConfigSeen]; got != "2026-03-04T03:12:00.000000005Z" {
		t.Errorf("config.seen = %q", got)
	}
	opts.Seen = seen.Add(time.Hour)
	res2, _ := Parse([]byte("metadata: {name: s}\nspec: {containers: [{name: c, image: i}]}\n"), opts)
	if res2.UID != res.UID {
		t.Errorf("config.seen changed the uid")
	}
}

func TestParseList(t *testing.T) {
	opts := ParseOptions{NodeName: "n", Source: SourceHTTP, Path: "http://h/pods"}
	body := `{"kind":"PodList","apiVersion":"v1","items":[
		{"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"i"}]}},
		{"metadata":{"name":"b"},"spec":{"containers":[]}},
		{"kind":"Service","metadata":{"name":"s"}},
		{"metadata":{"name":"c"},"spec":{"containers":[{"name":"c","image":"i"}]}}]}`
	items, err := ParseList([]byte(body), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 4 {
		t.Fatalf("%d items", len(items))
	}
	if items[0].Result == nil || items[0].Result.Key != "default/a-n" || items[3].Result == nil {
		t.Errorf("valid items not parsed: %+v", items)
	}
	if items[1].Err == nil || !strings.Contains(items[1].Err.Error(), "http://h/pods items[1]: spec.containers: Required value") {
		t.Errorf("item 1 error = %v", items[1].Err)
	}
	if items[2].Err == nil || !strings.Contains(items[2].Err.Error(), `"Service"`) {
		t.Errorf("item 2 error = %v", items[2].Err)
	}
	// An item's content hash is that of its canonical JSON, so it is stable
	// when other items change.
	body2 := `{"items":[{"spec":{"containers":[{"image":"i","name":"c"}]},"metadata":{"name":"a"}}]}`
	items2, err := ParseList([]byte(body2), opts)
	if err != nil || items2[0].Result == nil {
		t.Fatalf("list without kind: %v %+v", err, items2)
	}
	if items2[0].Result.ContentHash != items[0].Result.ContentHash || items2[0].Result.UID != items[0].Result.UID {
		t.Errorf("the same item in another list got another hash or uid")
	}

	single, err := ParseList([]byte("metadata: {name: one}\nspec: {containers: [{name: c, image: i}]}\n"), opts)
	if err != nil || len(single) != 1 || single[0].Result == nil || single[0].Result.Pod.Annotations[AnnotationConfigSource] != "http" {
		t.Fatalf("single pod body: %v %+v", err, single)
	}
	if _, err := ParseList([]byte(`{"kind":"ConfigMap"}`), opts); err == nil {
		t.Errorf("a ConfigMap body was accepted")
	}
}

func TestIgnoredNames(t *testing.T) {
	for name, want := range map[string]bool{
		"kube-apiserver.yaml": false, "etcd.json": false, "etcd": false, "a.yaml.backup": false, "v1.yaml": false,
		".hidden.yaml": true, "kube-apiserver.yaml~": true, ".kube-apiserver.yaml.swp": true, "x.swp": true,
		"x.swo": true, "x.swx": true, "4913": true, "5036": true, "#etcd.yaml#": true, ".#etcd.yaml": true,
		"etcd.yaml.bak": true, "etcd.yaml.orig": true, "etcd.yaml.tmp": true, "etcd.yaml.dpkg-new": true,
		"etcd.yaml.dpkg-old": true, "etcd.yaml.rpmnew": true, "etcd.yaml.rpmsave": true,
	} {
		if got := ignoredName(name); got != want {
			t.Errorf("ignoredName(%q) = %v, want %v", name, got, want)
		}
	}
}

// FuzzParse: never panics; yields a pod or an error; a result re-validates
// and round-trips through its own JSON to the same identity.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"pinned-uid.json", "no-kind.yaml", "kube-apiserver.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("metadata: {name: p}\nspec: {containers: [{name: c, image: i}]}\n"))
	f.Add([]byte(`{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i","ports":[{"containerPort":80}]}]}}`))
	f.Add([]byte("---\n---\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		opts := fileOpts("/m/f.yaml")
		res, err := Parse(data, opts)
		if err != nil {
			if res != nil {
				t.Fatalf("both a result and an error")
			}
			var me *ManifestError
			if !errors.As(err, &me) {
				t.Fatalf("error %v is not a *ManifestError", err)
			}
			return
		}
		if res.UID == "" || res.Key == "" || res.Pod == nil || len(res.Pod.Spec.Containers) == 0 {
			t.Fatalf("incomplete result %+v", res)
		}
		base := strings.TrimSuffix(res.Pod.Name, "-node-1")
		if err := validatePod(res.Pod.DeepCopy(), base); err != nil {
			t.Fatalf("result does not re-validate: %v", err)
		}
		var back v1.Pod
		if err := json.Unmarshal(res.PodJSON, &back); err != nil {
			t.Fatalf("PodJSON does not decode: %v", err)
		}
		if back.UID != res.Pod.UID || back.Name != res.Pod.Name {
			t.Fatalf("PodJSON identity %s/%s, want %s/%s", back.Name, back.UID, res.Pod.Name, res.Pod.UID)
		}
		again, err := Parse(data, opts)
		if err != nil || again.UID != res.UID || string(again.PodJSON) != string(res.PodJSON) {
			t.Fatalf("parse is not deterministic: %v", err)
		}
	})
}

func BenchmarkParseManifest(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "kube-apiserver.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	opts := fileOpts("/etc/kubernetes/manifests/kube-apiserver.yaml")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// The kubelet uses a pinned UID as config.hash, so an edit of such a
// manifest never reaches its mirror pod; ledgerlet's config.hash follows
// the content.
func TestPinnedUIDConfigHashFollowsContent(t *testing.T) {
	parse := func(image string) *Result {
		t.Helper()
		data := []byte(`{"metadata":{"name":"p","uid":"6f1c2b0e-7d2a-4b8e-9c1a-3f5e2d7a9b10"},"spec":{"containers":[{"name":"c","image":"` + image + `"}]}}`)
		res, err := Parse(data, ParseOptions{NodeName: "node-1", Source: SourceFile, Path: "/etc/kubernetes/manifests/p.json"})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	a, b := parse("busybox:1.36"), parse("busybox:1.37")
	if a.UID != b.UID {
		t.Fatalf("pinned UID changed: %s -> %s", a.UID, b.UID)
	}
	if a.ConfigHash == b.ConfigHash {
		t.Fatalf("config.hash %s did not follow the edit", a.ConfigHash)
	}
}

// A pinned metadata.uid becomes a component of the pod's log directory, data
// directory and cgroup, so it must be one plain name: never a path.
func TestPinnedUIDMustBeOnePlainName(t *testing.T) {
	manifest := func(uid string) []byte {
		b, _ := json.Marshal(map[string]any{
			"metadata": map[string]any{"name": "web", "uid": uid},
			"spec":     map[string]any{"containers": []any{map[string]any{"name": "c", "image": "i"}}},
		})
		return b
	}
	for _, uid := range []string{"../../x", "..", ".", "a/b", "/etc", "x/..", "-x", "x-", "x y", "x\ny", "x\x00y", "ü", strings.Repeat("a", 129)} {
		res, err := Parse(manifest(uid), fileOpts("/m/web.yaml"))
		if err == nil {
			t.Errorf("uid %q accepted (pod uid %s)", uid, res.UID)
			continue
		}
		var me *ManifestError
		if !errors.As(err, &me) || me.Pod != "default/web-node-1" || !strings.Contains(err.Error(), "metadata.uid: ") {
			t.Errorf("uid %q: error %v; want a ManifestError for default/web-node-1 with a metadata.uid field error", uid, err)
		}
	}
	// The file source records it as a rejection of that pod's manifest.
	evs, _ := reconcileFiles(newLedger(SourceFile, nil, nil), map[string]*observation{"/m/web.yaml": {hash: "h", err: func() error {
		_, err := Parse(manifest("../../x"), fileOpts("/m/web.yaml"))
		return err
	}()}})
	if len(evs) != 1 || !strings.Contains(evs[0].Data.(*eventpb.ManifestRejected).Reason, `metadata.uid: Invalid value: "../../x"`) || evs[0].Pod != "default/web-node-1" {
		t.Errorf("recorded %v", summary(evs))
	}
	for _, uid := range []string{"6f1c2b0e-7d2a-4b8e-9c1a-3f5e2d7a9b10", "6F1C2B0E-7D2A-4B8E-9C1A-3F5E2D7A9B10", "etcd_1.2", "a..b", "x", strings.Repeat("a", 128)} {
		res, err := Parse(manifest(uid), fileOpts("/m/web.yaml"))
		if err != nil || res.UID != uid {
			t.Errorf("uid %q refused: %v", uid, err)
		}
	}
}
