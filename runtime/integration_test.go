package runtime

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	criv1 "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// These tests need a real runtime. Start the private one and point the tests at it:
//
//	export LEDGERLET_CRI_ENDPOINT=$(hack/dev-containerd up | tail -n1)
//	go test ./runtime/
const endpointEnv = "LEDGERLET_CRI_ENDPOINT"

const testImage = "localhost/busybox:1.36"

// testCgroupRoot is what hack/dev-containerd down sweeps, so a crashed test leaves nothing.
const testCgroupRoot = "/ledgerlet-dev"

func newTestRuntime(t *testing.T) *Runtime {
	t.Helper()
	ep := os.Getenv(endpointEnv)
	if ep == "" {
		t.Skipf("%s not set: run `export %s=$(hack/dev-containerd up | tail -n1)` to run against a private containerd", endpointEnv, endpointEnv)
	}
	dir := t.TempDir()
	r, err := New(Config{
		Endpoint:   ep,
		LogRoot:    filepath.Join(dir, "logs"),
		DataDir:    filepath.Join(dir, "data"),
		CgroupRoot: testCgroupRoot,
		Logger:     slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := r.Version(ctx)
	if err != nil {
		t.Fatalf("runtime at %s not answering: %v", ep, err)
	}
	t.Logf("runtime %s %s (CRI %s)", v.RuntimeName, v.RuntimeVersion, v.RuntimeAPIVersion)
	return r
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newUID(t *testing.T) types.UID {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return types.UID(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:]))
}

func testPod(t *testing.T, name string, containers ...corev1.Container) *corev1.Pod {
	grace := int64(5)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: "default", UID: newUID(t),
			Labels:      map[string]string{"app": name},
			Annotations: map[string]string{"kubernetes.io/config.source": "file"},
		},
		Spec: corev1.PodSpec{Containers: containers, TerminationGracePeriodSeconds: &grace, NodeName: "testnode"},
	}
}

// started is a pod brought up by startPod, with the time each step took.
type started struct {
	sandboxID     string
	containerIDs  map[string]string
	sandboxTook   time.Duration
	containerTook time.Duration
}

// startPod runs the sandbox and all containers, and registers a teardown that removes
// everything, so a failing test does not leak into the next.
func startPod(ctx context.Context, t *testing.T, r *Runtime, pod *corev1.Pod) started {
	t.Helper()
	t0 := time.Now()
	sb, err := r.RunPodSandbox(ctx, pod, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := started{sandboxID: sb, containerIDs: map[string]string{}, sandboxTook: time.Since(t0)}
	t.Cleanup(func() { teardown(t, r, pod, s) })
	t1 := time.Now()
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		id := createContainer(ctx, t, r, pod, c, sb)
		if err := r.StartContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
		s.containerIDs[c.Name] = id
	}
	s.containerTook = time.Since(t1)
	t.Logf("sandbox started in %v, %d container(s) created+started in %v", s.sandboxTook.Round(time.Millisecond), len(pod.Spec.Containers), s.containerTook.Round(time.Millisecond))
	return s
}

// createContainer ensures c's image and creates it in sandbox sb, not started.
func createContainer(ctx context.Context, t *testing.T, r *Runtime, pod *corev1.Pod, c *corev1.Container, sb string) string {
	t.Helper()
	ref, err := r.EnsureImage(ctx, pod, c)
	if err != nil {
		t.Fatal(err)
	}
	id, err := r.CreateContainer(ctx, pod, c, sb, ContainerOptions{ImageRef: ref, Fields: FieldValues{NodeName: "testnode", HostIP: "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// teardown is the full removal sequence a caller is expected to run when a pod goes away.
func teardown(t *testing.T, r *Runtime, pod *corev1.Pod, s started) {
	ctx := context.Background()
	for _, id := range s.containerIDs {
		if err := r.StopContainer(ctx, id, 0); err != nil {
			t.Error(err)
		}
	}
	if err := r.StopPodSandbox(ctx, s.sandboxID); err != nil {
		t.Error(err)
	}
	if err := r.RemovePodSandbox(ctx, s.sandboxID); err != nil {
		t.Error(err)
	}
	if err := r.RemovePodCgroup(string(pod.UID)); err != nil {
		t.Error(err)
	}
	if err := r.RemovePodData(string(pod.UID)); err != nil {
		t.Error(err)
	}
}

func waitExited(ctx context.Context, t *testing.T, r *Runtime, id string) ObservedContainer {
	t.Helper()
	// Generous: CI machines and shared VMs can be very slow; the loop exits as soon as it can.
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := r.ContainerStatus(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == ContainerExited {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s still %s after 60s", id, st.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// httpGet retries until the server inside the container is listening.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(body)
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPodNetworkServerAnswersOnPodIP(t *testing.T) {
	r := newTestRuntime(t)
	ctx := context.Background()
	pod := testPod(t, "web", corev1.Container{
		Name: "httpd", Image: testImage,
		Command: []string{"httpd", "-f", "-p", "8080", "-h", "/var/www"},
		Ports:   []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
	})
	s := startPod(ctx, t, r, pod)
	sb, err := r.SandboxStatus(ctx, s.sandboxID)
	if err != nil {
		t.Fatal(err)
	}
	if sb.IP == "" || sb.HostNetwork || sb.State != SandboxReady {
		t.Fatalf("sandbox = %+v; want ready, pod network, an IP", sb)
	}
	t0 := time.Now()
	body := httpGet(t, "http://"+net.JoinHostPort(sb.IP, "8080")+"/")
	t.Logf("pod IP %s answered %v after start", sb.IP, time.Since(t0).Round(time.Millisecond))
	if !strings.Contains(body, "hello from ledgerlet dev busybox") {
		t.Errorf("body = %q", body)
	}
}

func TestHostNetworkPodServesOnLoopback(t *testing.T) {
	r := newTestRuntime(t)
	ctx := context.Background()
	port := freePort(t)
	pod := testPod(t, "hostweb", corev1.Container{
		Name: "httpd", Image: testImage,
		Command: []string{"httpd", "-f", "-p", "127.0.0.1:" + port, "-h", "/var/www"},
	})
	pod.Spec.HostNetwork = true
	s := startPod(ctx, t, r, pod)
	sb, err := r.SandboxStatus(ctx, s.sandboxID)
	if err != nil {
		t.Fatal(err)
	}
	if !sb.HostNetwork {
		t.Errorf("sandbox not in the host network: %+v", sb)
	}
	body := httpGet(t, "http://127.0.0.1:"+port+"/")
	if !strings.Contains(body, "hello from ledgerlet dev busybox") {
		t.Errorf("body = %q", body)
	}
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

func TestStopSendsTermThenKillsAfterGrace(t *testing.T) {
	r := newTestRuntime(t)
	ctx := context.Background()
	pod := testPod(t, "stopper",
		corev1.Container{Name: "polite", Image: testImage,
			Command: []string{"sh", "-c", `trap "exit 3" TERM; echo ready; while :; do sleep 0.1; done`}},
		corev1.Container{Name: "stubborn", Image: testImage,
			Command: []string{"sh", "-c", `trap "" TERM; echo ready; while :; do sleep 0.1; done`}},
	)
	s := startPod(ctx, t, r, pod)
	// A TERM before the trap is installed would be ignored (sh is PID 1), so wait for it.
	for _, c := range []string{"polite", "stubborn"} {
		logDir, err := PodLogDir(r.cfg.LogRoot, pod)
		if err != nil {
			t.Fatal(err)
		}
		waitLog(t, filepath.Join(logDir, ContainerLogPath(c, 0)), "ready")
	}

	t0 := time.Now()
	if err := r.StopContainer(ctx, s.containerIDs["polite"], 10*time.Second); err != nil {
		t.Fatal(err)
	}
	politeTook := time.Since(t0)
	st := waitExited(ctx, t, r, s.containerIDs["polite"])
	// Exit code 3 proves TERM arrived and was handled; the bound only says "not the grace".
	if st.ExitCode != 3 || politeTook > 8*time.Second {
		t.Errorf("polite container: exit %d after %v; want exit 3 before the 10s grace", st.ExitCode, politeTook)
	}

	t0 = time.Now()
	if err := r.StopContainer(ctx, s.containerIDs["stubborn"], 2*time.Second); err != nil {
		t.Fatal(err)
	}
	stubbornTook := time.Since(t0)
	st = waitExited(ctx, t, r, s.containerIDs["stubborn"])
	if st.ExitCode != 137 || stubbornTook < 2*time.Second || stubbornTook > 15*time.Second {
		t.Errorf("stubborn container: exit %d after %v; want 137 (SIGKILL) after the 2s grace", st.ExitCode, stubbornTook)
	}
	t.Logf("TERM-handling container stopped in %v; TERM-ignoring one killed after %v (grace 2s)",
		politeTook.Round(time.Millisecond), stubbornTook.Round(time.Millisecond))
}

func TestRemoveLeavesNothingBehind(t *testing.T) {
	r := newTestRuntime(t)
	ctx := context.Background()
	hostDir := filepath.Join(t.TempDir(), "host")
	dirOrCreate := corev1.HostPathDirectoryOrCreate
	pod := testPod(t, "scratch", corev1.Container{
		Name: "writer", Image: testImage,
		Command: []string{"sh", "-c", "echo data > /scratch/f && echo kept > /host/f && sleep 3600"},
		VolumeMounts: []corev1.VolumeMount{
			{Name: "scratch", MountPath: "/scratch"},
			{Name: "host", MountPath: "/host"},
		},
	})
	pod.Spec.Volumes = []corev1.Volume{
		{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hostDir, Type: &dirOrCreate}}},
	}
	s := startPod(ctx, t, r, pod)
	uid := string(pod.UID)
	emptyDir, err := r.EmptyDirPath(uid, "scratch")
	if err != nil {
		t.Fatal(err)
	}
	dataDir, err := r.PodDataDir(uid)
	if err != nil {
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(emptyDir, "f"))
	waitFile(t, filepath.Join(hostDir, "f"))
	cgroups, err := r.PodCgroupPaths(uid)
	if err != nil {
		t.Fatal(err)
	}
	var present int
	for _, p := range cgroups {
		if _, err := os.Stat(p); err == nil {
			present++
		}
	}
	if present == 0 {
		t.Fatalf("pod cgroup of %s exists in no hierarchy while the pod runs: %v", uid, cgroups)
	}

	t0 := time.Now()
	teardown(t, r, pod, s)
	t.Logf("teardown took %v", time.Since(t0).Round(time.Millisecond))

	sandboxes, err := r.ListSandboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, sb := range sandboxes {
		if sb.PodUID == uid {
			t.Errorf("sandbox %s of the removed pod still listed", sb.ID)
		}
	}
	containers, err := r.ListContainers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range containers {
		if c.PodUID == uid {
			t.Errorf("container %s of the removed pod still listed", c.ID)
		}
	}
	for _, p := range cgroups {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s still exists (%v)", p, err)
		}
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod data dir (emptyDir) still exists: %v", err)
	}
	if _, err := os.Stat(filepath.Join(hostDir, "f")); err != nil {
		t.Errorf("hostPath content must survive the pod: %v", err)
	}
}

func waitLog(t *testing.T, p, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never contained %q", p, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitFile(t *testing.T, p string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(p); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", p)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestImagePullPolicies(t *testing.T) {
	r := newTestRuntime(t)
	ctx := context.Background()
	pod := testPod(t, "images")

	ref, err := r.EnsureImage(ctx, pod, &corev1.Container{Name: "c", Image: testImage, ImagePullPolicy: corev1.PullNever})
	if err != nil || !strings.HasPrefix(ref, "sha256:") {
		t.Errorf("Never, present: ref %q err %v; want the image id", ref, err)
	}
	ref, err = r.EnsureImage(ctx, pod, &corev1.Container{Name: "c", Image: testImage})
	if err != nil || !strings.HasPrefix(ref, "sha256:") {
		t.Errorf("default (IfNotPresent), imported only: ref %q err %v; want the image id without pulling", ref, err)
	}
	_, err = r.EnsureImage(ctx, pod, &corev1.Container{Name: "c", Image: "localhost/missing:1", ImagePullPolicy: corev1.PullNever})
	if !errors.Is(err, ErrImageNeverPull) {
		t.Errorf("Never, missing: err = %v; want ErrImageNeverPull", err)
	}
	// Port 1 on loopback refuses at once, so the failed pull is fast and offline.
	_, err = r.EnsureImage(ctx, pod, &corev1.Container{Name: "c", Image: "127.0.0.1:1/missing:1", ImagePullPolicy: corev1.PullIfNotPresent})
	if !errors.Is(err, ErrImagePull) {
		t.Errorf("IfNotPresent, missing: err = %v; want ErrImagePull", err)
	}
	_, err = r.EnsureImage(ctx, pod, &corev1.Container{Name: "c", Image: testImage, ImagePullPolicy: corev1.PullAlways})
	if !errors.Is(err, ErrImagePull) {
		t.Errorf("Always, registry unreachable: err = %v; want ErrImagePull like the kubelet", err)
	}
}

// The runtime's records must look like the kubelet's, and the observation must carry what a
// planner needs (state, exit code, reason, message, restart count, hash).
func TestRecordsLookLikeTheKubeletsAndAreObserved(t *testing.T) {
	r := newTestRuntime(t)
	ctx := context.Background()
	pod := testPod(t, "labels", corev1.Container{
		Name: "once", Image: testImage,
		Command: []string{"sh", "-c", `echo "$GREETING $POD_NAME $POD_NS $POD_UID $NODE $POD_IP $HOST_IP $(hostname)"; printf bye > /dev/termination-log`},
		Env: []corev1.EnvVar{
			fieldEnv("POD_NAME", "metadata.name"),
			fieldEnv("POD_NS", "metadata.namespace"),
			fieldEnv("POD_UID", "metadata.uid"),
			fieldEnv("NODE", "spec.nodeName"),
			fieldEnv("POD_IP", "status.podIP"),
			fieldEnv("HOST_IP", "status.hostIP"),
			{Name: "GREETING", Value: "hi-$(POD_NAME)"},
		},
		Ports: []corev1.ContainerPort{{ContainerPort: 80}},
	})
	s := startPod(ctx, t, r, pod)
	id := s.containerIDs["once"]
	st := waitExited(ctx, t, r, id)
	if st.ExitCode != 0 || st.Reason != "Completed" || st.Message != "bye" || st.FinishedAt.IsZero() || st.StartedAt.IsZero() {
		t.Errorf("exited container = %+v; want exit 0, Completed, message from the termination file, times", st)
	}

	sbResp, err := r.rs.PodSandboxStatus(ctx, &criv1.PodSandboxStatusRequest{PodSandboxId: s.sandboxID})
	if err != nil {
		t.Fatal(err)
	}
	sb := sbResp.Status
	uid := string(pod.UID)
	wantMeta := &criv1.PodSandboxMetadata{Name: "labels", Namespace: "default", Uid: uid, Attempt: 0}
	if m := sb.Metadata; m.Name != wantMeta.Name || m.Namespace != wantMeta.Namespace || m.Uid != wantMeta.Uid || m.Attempt != 0 {
		t.Errorf("sandbox metadata = %v", m)
	}
	expectMap(t, "sandbox labels", sb.Labels, map[string]string{
		LabelPodName: "labels", LabelPodNamespace: "default", LabelPodUID: uid, LabelManaged: "true", "app": "labels",
	})
	expectMap(t, "sandbox annotations", sb.Annotations, map[string]string{"kubernetes.io/config.source": "file"})

	cResp, err := r.rs.ContainerStatus(ctx, &criv1.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatal(err)
	}
	c := cResp.Status
	if c.Metadata.Name != "once" || c.Metadata.Attempt != 0 {
		t.Errorf("container metadata = %v", c.Metadata)
	}
	expectMap(t, "container labels", c.Labels, map[string]string{
		LabelPodName: "labels", LabelPodNamespace: "default", LabelPodUID: uid, LabelContainerName: "once", LabelManaged: "true",
	})
	expectMap(t, "container annotations", c.Annotations, map[string]string{
		AnnotationContainerHash:             ContainerHash(&pod.Spec.Containers[0]),
		AnnotationContainerRestartCount:     "0",
		AnnotationTerminationMessagePath:    "/dev/termination-log",
		AnnotationTerminationMessagePolicy:  "File",
		AnnotationPodTerminationGracePeriod: "5",
		AnnotationContainerType:             "container",
		AnnotationContainerPorts:            `[{"containerPort":80}]`,
	})
	wantLog := filepath.Join(r.cfg.LogRoot, "default_labels_"+uid, "once", "0.log")
	if c.LogPath != wantLog {
		t.Errorf("log path = %s, want %s", c.LogPath, wantLog)
	}
	logBytes, err := os.ReadFile(wantLog)
	if err != nil {
		t.Fatal(err)
	}
	sbStatus, _ := r.SandboxStatus(ctx, s.sandboxID)
	want := fmt.Sprintf("hi-labels labels default %s testnode %s 127.0.0.1 labels", uid, sbStatus.IP)
	if !strings.Contains(string(logBytes), want) {
		t.Errorf("log %s = %q; want a line containing %q", wantLog, logBytes, want)
	}

	pods, err := r.Observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var found *ObservedPod
	for i := range pods {
		if pods[i].UID == uid {
			found = &pods[i]
		}
	}
	if found == nil || len(found.Sandboxes) != 1 || len(found.Containers) != 1 {
		t.Fatalf("Observe did not report the pod with one sandbox and one container: %+v", found)
	}
	oc := found.Containers[0]
	if oc.Name != "once" || oc.SandboxID != s.sandboxID || oc.Hash == "" || oc.State != ContainerExited || oc.ExitCode != 0 || oc.Type != ContainerTypeRegular {
		t.Errorf("observed container = %+v", oc)
	}
	if found.Sandboxes[0].IP == "" || found.Name != "labels" || found.Namespace != "default" {
		t.Errorf("observed pod = %+v", found)
	}
}

func expectMap(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s[%s] = %q, want %q (all: %v)", what, k, got[k], v, got)
		}
	}
}

// Needs hack/dev-registry too:
//
//	export LEDGERLET_TEST_REGISTRY_IMAGE=$(hack/dev-registry up | tail -n1)
func TestAlwaysPullsFromRegistry(t *testing.T) {
	r := newTestRuntime(t)
	image := os.Getenv("LEDGERLET_TEST_REGISTRY_IMAGE")
	if image == "" {
		t.Skip("LEDGERLET_TEST_REGISTRY_IMAGE not set: run `export LEDGERLET_TEST_REGISTRY_IMAGE=$(hack/dev-registry up | tail -n1)`")
	}
	ctx := context.Background()
	pod := testPod(t, "pulled", corev1.Container{
		Name: "c", Image: image, ImagePullPolicy: corev1.PullAlways,
		Command: []string{"echo", "pulled"},
	})
	t0 := time.Now()
	ref, err := r.EnsureImage(ctx, pod, &pod.Spec.Containers[0])
	if err != nil || !strings.HasPrefix(ref, "sha256:") {
		t.Fatalf("Always from a reachable registry: ref %q err %v", ref, err)
	}
	t.Logf("pulled %s in %v", image, time.Since(t0).Round(time.Millisecond))
	s := startPod(ctx, t, r, pod)
	if st := waitExited(ctx, t, r, s.containerIDs["c"]); st.ExitCode != 0 {
		t.Errorf("container from the pulled image: %+v", st)
	}
}
