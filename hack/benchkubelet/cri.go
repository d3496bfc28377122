package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	criv1 "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The labels every agent (the kubelet, ledgerlet) puts on its CRI objects. The benchmark's pods
// all live in one namespace, so a label selector on it finds exactly what the benchmark made,
// whoever made it, and nothing of anybody else sharing the runtime.
const (
	labelPodName      = "io.kubernetes.pod.name"
	labelPodNamespace = "io.kubernetes.pod.namespace"
	benchNamespace    = "llbench"
)

// pollEvery is how often the observer lists the runtime. It is the resolution of every
// figure measured from outside; the same for the agents and the floor.
const pollEvery = 10 * time.Millisecond

// observer watches the runtime from outside, as an operator with crictl would: it sees only
// what containerd holds, never what an agent believes.
type observer struct {
	conn *grpc.ClientConn
	rs   criv1.RuntimeServiceClient
}

func newObserver(endpoint string) (*observer, error) {
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
	if err != nil {
		return nil, fmt.Errorf("dial CRI at %s: %w", endpoint, err)
	}
	return &observer{conn: conn, rs: criv1.NewRuntimeServiceClient(conn)}, nil
}

func (o *observer) Close() error { return o.conn.Close() }

// runtimeVersion names the runtime for the machine line.
func (o *observer) runtimeVersion(ctx context.Context) (string, error) {
	v, err := o.rs.Version(ctx, &criv1.VersionRequest{})
	if err != nil {
		return "", fmt.Errorf("ask the runtime its version: %w", err)
	}
	return v.RuntimeName + " " + v.RuntimeVersion, nil
}

// container is one CRI container of a benchmark pod as the runtime lists it.
type container struct {
	ID      string
	Pod     string // the pod's name, with the agent's node suffix
	Attempt uint32
	State   criv1.ContainerState
}

// snapshot is the benchmark's share of the runtime at one instant.
type snapshot struct {
	at         time.Time // when the answer came back
	containers []container
	sandboxes  map[string]int // pod name → sandboxes in any state (only when asked for)
}

func benchSelector() map[string]string {
	return map[string]string{labelPodNamespace: benchNamespace}
}

// list asks the runtime for the benchmark's containers and, with sandboxes, its sandboxes.
func (o *observer) list(ctx context.Context, sandboxes bool) (snapshot, error) {
	cs, err := o.rs.ListContainers(ctx, &criv1.ListContainersRequest{
		Filter: &criv1.ContainerFilter{LabelSelector: benchSelector()}})
	if err != nil {
		return snapshot{}, fmt.Errorf("list containers: %w", err)
	}
	s := snapshot{}
	for _, c := range cs.Containers {
		s.containers = append(s.containers, container{
			ID: c.Id, Pod: c.Labels[labelPodName], Attempt: c.GetMetadata().GetAttempt(), State: c.State})
	}
	if sandboxes {
		ps, err := o.rs.ListPodSandbox(ctx, &criv1.ListPodSandboxRequest{
			Filter: &criv1.PodSandboxFilter{LabelSelector: benchSelector()}})
		if err != nil {
			return snapshot{}, fmt.Errorf("list sandboxes: %w", err)
		}
		s.sandboxes = map[string]int{}
		for _, p := range ps.Items {
			s.sandboxes[p.Labels[labelPodName]]++
		}
	}
	s.at = time.Now()
	return s, nil
}

// running reports the running containers by pod name.
func (s snapshot) running() map[string]container {
	out := map[string]container{}
	for _, c := range s.containers {
		if c.State == criv1.ContainerState_CONTAINER_RUNNING {
			out[c.Pod] = c
		}
	}
	return out
}

// objects counts the CRI objects (containers in any state, sandboxes) of the given pods.
func (s snapshot) objects(pods map[string]bool) int {
	n := 0
	for _, c := range s.containers {
		if pods[c.Pod] {
			n++
		}
	}
	for p, k := range s.sandboxes {
		if pods[p] {
			n += k
		}
	}
	return n
}

// waitUntil lists the runtime every pollEvery until done says so, and returns the instant of
// the first listing that satisfied it.
func (o *observer) waitUntil(ctx context.Context, what string, timeout time.Duration, sandboxes bool, done func(snapshot) bool) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		s, err := o.list(ctx, sandboxes)
		if err == nil && done(s) {
			return s.at, nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return time.Time{}, fmt.Errorf("wait for %s: %w (last: %v)", what, ctx.Err(), err)
			}
			return time.Time{}, fmt.Errorf("wait for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}

// exitedAt is when containerd saw the container's process end.
func (o *observer) exitedAt(ctx context.Context, id string) (time.Time, error) {
	st, err := o.rs.ContainerStatus(ctx, &criv1.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		return time.Time{}, fmt.Errorf("status of container %s: %w", id, err)
	}
	if st.GetStatus().GetFinishedAt() == 0 {
		return time.Time{}, fmt.Errorf("container %s has not finished", id)
	}
	return time.Unix(0, st.GetStatus().GetFinishedAt()), nil
}

// kill ends a container's process at once, from outside, the way a crash would look to an
// agent: the container exits and stays in the runtime for the agent to see.
func (o *observer) kill(ctx context.Context, id string) error {
	if _, err := o.rs.StopContainer(ctx, &criv1.StopContainerRequest{ContainerId: id, Timeout: 0}); err != nil {
		return fmt.Errorf("kill container %s: %w", id, err)
	}
	return nil
}

// clean stops and removes every container and sandbox of the benchmark's namespace, so the
// next agent starts on an empty runtime whatever the previous one left.
func (o *observer) clean(ctx context.Context) error {
	cs, err := o.rs.ListContainers(ctx, &criv1.ListContainersRequest{
		Filter: &criv1.ContainerFilter{LabelSelector: benchSelector()}})
	if err != nil {
		return fmt.Errorf("clean: list containers: %w", err)
	}
	ps, err := o.rs.ListPodSandbox(ctx, &criv1.ListPodSandboxRequest{
		Filter: &criv1.PodSandboxFilter{LabelSelector: benchSelector()}})
	if err != nil {
		return fmt.Errorf("clean: list sandboxes: %w", err)
	}
	var mu sync.Mutex
	var errs []error
	record := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for _, c := range cs.Containers {
		wg.Go(func() {
			if _, err := o.rs.StopContainer(ctx, &criv1.StopContainerRequest{ContainerId: c.Id}); err != nil && !notFound(err) {
				record(fmt.Errorf("clean: stop container %s: %w", c.Id, err))
			}
			if _, err := o.rs.RemoveContainer(ctx, &criv1.RemoveContainerRequest{ContainerId: c.Id}); err != nil && !notFound(err) {
				record(fmt.Errorf("clean: remove container %s: %w", c.Id, err))
			}
		})
	}
	wg.Wait()
	for _, p := range ps.Items {
		wg.Go(func() {
			if _, err := o.rs.StopPodSandbox(ctx, &criv1.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil && !notFound(err) {
				record(fmt.Errorf("clean: stop sandbox %s: %w", p.Id, err))
			}
			if _, err := o.rs.RemovePodSandbox(ctx, &criv1.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil && !notFound(err) {
				record(fmt.Errorf("clean: remove sandbox %s: %w", p.Id, err))
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func notFound(err error) bool {
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "not found")
}
