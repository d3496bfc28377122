package sources

import (
	"errors"
	"strings"
	"testing"
)

// runnablePod is a manifest with one container "a"; spec is YAML at the
// spec's indentation, container is YAML added to container "a".
func runnablePod(spec, container string) string {
	return "metadata: {name: p}\nspec:\n" + spec + "  containers:\n  - name: a\n    image: i\n" + container
}

// TestWhatValidationAcceptsTheRuntimeCanRun: every field the runtime would
// ignore is refused, naming the field, so the last good version keeps
// running instead of a pod that silently runs otherwise than written.
func TestWhatValidationAcceptsTheRuntimeCanRun(t *testing.T) {
	for _, tc := range []struct {
		name, manifest, want string
	}{
		{"image volume", runnablePod("  volumes: [{name: v, image: {reference: busybox}}]\n", ""),
			"spec.volumes[0].image: Forbidden: image volumes are not supported"},
		{"hugepages emptyDir", runnablePod("  volumes: [{name: v, emptyDir: {medium: HugePages}}]\n", ""),
			`spec.volumes[0].emptyDir.medium: Unsupported value: "HugePages"`},
		{"disk emptyDir sizeLimit", runnablePod("  volumes: [{name: v, emptyDir: {sizeLimit: 1Gi}}]\n", ""),
			"spec.volumes[0].emptyDir.sizeLimit: Forbidden: ledgerlet enforces sizeLimit only for medium: Memory"},
		{"hostPath type", runnablePod("  volumes: [{name: v, hostPath: {path: /x, type: Folder}}]\n", ""),
			`spec.volumes[0].hostPath.type: Unsupported value: "Folder"`},
		{"downwardAPI path escapes", runnablePod("  volumes: [{name: v, downwardAPI: {items: [{path: ../x, fieldRef: {fieldPath: metadata.name}}]}}]\n", ""),
			`spec.volumes[0].downwardAPI.items[0].path: Invalid value: "../x": must not contain '..'`},
		{"downwardAPI absolute path", runnablePod("  volumes: [{name: v, downwardAPI: {items: [{path: /x, fieldRef: {fieldPath: metadata.name}}]}}]\n", ""),
			`spec.volumes[0].downwardAPI.items[0].path: Invalid value: "/x": must be a relative path`},
		{"downwardAPI node name", runnablePod("  volumes: [{name: v, downwardAPI: {items: [{path: nn, fieldRef: {fieldPath: spec.nodeName}}]}}]\n", ""),
			`spec.volumes[0].downwardAPI.items[0].fieldRef.fieldPath: Unsupported value: "spec.nodeName"`},
		{"downwardAPI unknown container", runnablePod("  volumes: [{name: v, downwardAPI: {items: [{path: nn, resourceFieldRef: {containerName: b, resource: limits.cpu}}]}}]\n", ""),
			`spec.volumes[0].downwardAPI.items[0].resourceFieldRef.containerName: Not found: "b"`},
		{"downwardAPI bad mode", runnablePod("  volumes: [{name: v, downwardAPI: {defaultMode: 4096, items: []}}]\n", ""),
			"spec.volumes[0].downwardAPI.defaultMode: Invalid value: 4096"},
		{"projected duplicate path", runnablePod("  volumes: [{name: v, projected: {sources: [{downwardAPI: {items: [{path: nn, fieldRef: {fieldPath: metadata.name}}]}}, {downwardAPI: {items: [{path: nn, fieldRef: {fieldPath: metadata.uid}}]}}]}}]\n", ""),
			`spec.volumes[0].projected.sources[1].downwardAPI.items[0].path: Duplicate value: "nn"`},
		{"undeclared named hook port", runnablePod("", "    lifecycle: {preStop: {httpGet: {port: admin, path: /quit}}}\n"),
			`spec.containers[0].lifecycle.preStop.httpGet.port: Invalid value: "admin"`},
		{"tcpSocket hook", runnablePod("", "    lifecycle: {preStop: {tcpSocket: {port: 80}}}\n"),
			"spec.containers[0].lifecycle.preStop.tcpSocket: Forbidden: tcpSocket lifecycle handlers are not run"},
		{"stop signal", runnablePod("", "    lifecycle: {stopSignal: SIGUSR1}\n"),
			"spec.containers[0].lifecycle.stopSignal: Forbidden"},
		{"activeDeadlineSeconds", runnablePod("  activeDeadlineSeconds: 60\n", ""),
			"spec.activeDeadlineSeconds: Forbidden: not supported by ledgerlet"},
		{"hostAliases", runnablePod("  hostAliases: [{ip: 1.2.3.4, hostnames: [x]}]\n", ""),
			"spec.hostAliases: Forbidden"},
		{"runtimeClassName", runnablePod("  runtimeClassName: gvisor\n", ""),
			"spec.runtimeClassName: Forbidden: static pods may not reference runtimeclasses"},
		{"user namespaces", runnablePod("  hostUsers: false\n", ""),
			"spec.hostUsers: Forbidden: user namespaces are not supported"},
		{"windows", runnablePod("  os: {name: windows}\n", ""),
			`spec.os.name: Unsupported value: "windows"`},
		{"setHostnameAsFQDN", runnablePod("  setHostnameAsFQDN: true\n", ""),
			"spec.setHostnameAsFQDN: Forbidden"},
		{"pod-level resources", runnablePod("  resources: {limits: {cpu: 1}}\n", ""),
			"spec.resources: Forbidden: pod-level resources are not supported"},
		{"container windowsOptions", runnablePod("", "    securityContext: {windowsOptions: {runAsUserName: x}}\n"),
			"spec.containers[0].securityContext.windowsOptions: Forbidden: not supported on a Linux node"},
		{"unmasked proc", runnablePod("", "    securityContext: {procMount: Unmasked}\n"),
			`spec.containers[0].securityContext.procMount: Unsupported value: "Unmasked"`},
		{"localhost seccomp without a profile", runnablePod("  securityContext: {seccompProfile: {type: Localhost}}\n", ""),
			`spec.securityContext.seccompProfile.localhostProfile: Required value`},
		{"localhost seccomp climbing out of the root", runnablePod("", "    securityContext: {seccompProfile: {type: Localhost, localhostProfile: ../x.json}}\n"),
			`spec.containers[0].securityContext.seccompProfile.localhostProfile: Invalid value: "../x.json": must not contain '..'`},
		{"localhost seccomp by absolute path", runnablePod("  securityContext: {seccompProfile: {type: Localhost, localhostProfile: /etc/x.json}}\n", ""),
			`spec.securityContext.seccompProfile.localhostProfile: Invalid value: "/etc/x.json": must be a relative path`},
		{"strict supplemental groups", runnablePod("  securityContext: {supplementalGroupsPolicy: Strict}\n", ""),
			`spec.securityContext.supplementalGroupsPolicy: Unsupported value: "Strict"`},
		{"subPathExpr", runnablePod("  volumes: [{name: v, emptyDir: {}}]\n", "    volumeMounts: [{name: v, mountPath: /v, subPathExpr: $(X)}]\n"),
			"spec.containers[0].volumeMounts[0].subPathExpr: Forbidden"},
		{"recursive read-only", runnablePod("  volumes: [{name: v, emptyDir: {}}]\n", "    volumeMounts: [{name: v, mountPath: /v, readOnly: true, recursiveReadOnly: Enabled}]\n"),
			`spec.containers[0].volumeMounts[0].recursiveReadOnly: Unsupported value: "Enabled"`},
		{"volumeDevices", runnablePod("  volumes: [{name: v, emptyDir: {}}]\n", "    volumeDevices: [{name: v, devicePath: /dev/x}]\n"),
			"spec.containers[0].volumeDevices: Forbidden"},
		{"env fileKeyRef", runnablePod("", "    env: [{name: X, valueFrom: {fileKeyRef: {volumeName: v, path: p, key: k}}}]\n"),
			"spec.containers[0].env[0].valueFrom.fileKeyRef: Forbidden"},
		{"env fieldRef path", runnablePod("", "    env: [{name: X, valueFrom: {fieldRef: {fieldPath: metadata.labels}}}]\n"),
			`spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: "metadata.labels"`},
		{"env resource of another container", runnablePod("", "    env: [{name: X, valueFrom: {resourceFieldRef: {containerName: b, resource: limits.cpu}}}]\n"),
			`spec.containers[0].env[0].valueFrom.resourceFieldRef.containerName: Invalid value: "b"`},
		{"extended resource", runnablePod("", "    resources: {limits: {nvidia.com/gpu: 1}}\n"),
			`spec.containers[0].resources.limits[nvidia.com/gpu]: Unsupported value: "nvidia.com/gpu"`},
		{"readiness probe grace", runnablePod("", "    readinessProbe: {exec: {command: [x]}, terminationGracePeriodSeconds: 3}\n"),
			"spec.containers[0].readinessProbe.terminationGracePeriodSeconds: Invalid value: 3: must not be set for readinessProbes"},
		{"undeclared named probe port", runnablePod("", "    livenessProbe: {httpGet: {port: metrics}}\n"),
			`spec.containers[0].livenessProbe.httpGet.port: Invalid value: "metrics": the container declares no port of that name`},
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
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestWhatTheRuntimeRunsIsAccepted: the counterpart — what is implemented
// passes.
func TestWhatTheRuntimeRunsIsAccepted(t *testing.T) {
	for _, tc := range []struct{ name, manifest string }{
		{"downwardAPI volume", runnablePod("  volumes: [{name: v, downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}, {path: d/tier, fieldRef: {fieldPath: \"metadata.labels['tier']\"}}, {path: cpu, resourceFieldRef: {containerName: a, resource: limits.cpu}}]}}]\n", "")},
		{"projected downwardAPI", runnablePod("  volumes: [{name: v, projected: {sources: [{downwardAPI: {items: [{path: uid, fieldRef: {fieldPath: metadata.uid}}]}}]}}]\n", "")},
		{"memory emptyDir with a size", runnablePod("  volumes: [{name: v, emptyDir: {medium: Memory, sizeLimit: 64Mi}}]\n", "")},
		{"seccomp and apparmor", runnablePod("  securityContext: {seccompProfile: {type: RuntimeDefault}, appArmorProfile: {type: RuntimeDefault}}\n", "    securityContext: {seccompProfile: {type: Unconfined}}\n")},
		{"probes on declared named ports", runnablePod("", "    ports: [{name: http, containerPort: 80}]\n    livenessProbe: {httpGet: {port: http}, terminationGracePeriodSeconds: 5}\n    readinessProbe: {tcpSocket: {port: http}}\n    startupProbe: {grpc: {port: 81}}\n")},
		{"scheduling fields mean nothing here", runnablePod("  nodeSelector: {a: b}\n  priorityClassName: system-node-critical\n  priority: 2000001000\n  tolerations: [{operator: Exists}]\n", "")},
		{"native sidecar", "metadata: {name: p}\nspec:\n  initContainers: [{name: s, image: i, restartPolicy: Always, startupProbe: {tcpSocket: {port: 80}}}]\n  containers: [{name: a, image: i}]\n"},
		{"runAsNonRoot", runnablePod("  securityContext: {runAsNonRoot: true, runAsUser: 1000, fsGroup: 2000}\n", "")},
		{"lifecycle hooks", runnablePod("", "    lifecycle: {postStart: {exec: {command: [x]}}, preStop: {sleep: {seconds: 5}}}\n")},
		{"ephemeral-storage request", runnablePod("", "    resources: {requests: {ephemeral-storage: 1Gi, cpu: 100m}, limits: {memory: 64Mi}}\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse([]byte(tc.manifest), fileOpts("/m/p.yaml")); err != nil {
				t.Fatal(err)
			}
		})
	}
}
