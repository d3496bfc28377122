package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ledgerlet/ledgerlet/runtime"
	"github.com/ledgerlet/ledgerlet/sources"
)

// floorCgroupRoot holds the floor's pod cgroups, apart from the agents'.
const floorCgroupRoot = "/llbench-floor"

// floor starts and removes pods straight through CRI with no agent: what containerd itself
// allows. It sends exactly the CRI configs ledgerlet sends (its own CRI driver, on the pod its
// manifest parser makes of the same manifest), so ledgerlet−floor is the agent's own cost.
type floor struct {
	node string
	dir  string
	rt   *runtime.Runtime

	mu   sync.Mutex
	pods map[string]floorPod // by manifest name
}

type floorPod struct {
	pod        *corev1.Pod
	sandboxID  string
	containers []string
}

func newFloor(s benchSetup) (*floor, error) {
	dir, _, err := newAgentDirs(s.dir, "floor")
	if err != nil {
		return nil, err
	}
	f := &floor{node: "llbench-floor", dir: dir, pods: map[string]floorPod{}}
	cfg := runtime.Config{
		Endpoint: s.endpoint, LogRoot: filepath.Join(dir, "logs"), DataDir: filepath.Join(dir, "data"),
		CgroupDriver: s.cgroupDriver, ManagedBy: f.node,
		// The driver logs each call; the floor's figures must not include that.
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if s.cgroupDriver == "cgroupfs" {
		cfg.CgroupRoot = floorCgroupRoot
	}
	f.rt, err = runtime.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("floor: %w", err)
	}
	return f, nil
}

func (f *floor) Close() error { return f.rt.Close() }

func (f *floor) PodName(n string) string { return n + "-" + f.node }

// Add runs sandbox + create + start for each pod, all pods at once, and returns when every one
// has been started.
func (f *floor) Add(ctx context.Context, names []string) error {
	return each(names, func(n string) error {
		path := filepath.Join(f.dir, n+".yaml")
		res, err := sources.Parse([]byte(sleeper(n)), sources.ParseOptions{
			NodeName: f.node, Source: sources.SourceFile, Path: path, Seen: time.Now()})
		if err != nil {
			return fmt.Errorf("floor: parse the manifest of %s: %w", n, err)
		}
		pod := res.Pod
		sb, err := f.rt.RunPodSandbox(ctx, pod, 0)
		if err != nil {
			return fmt.Errorf("floor: %w", err)
		}
		fp := floorPod{pod: pod, sandboxID: sb}
		for i := range pod.Spec.Containers {
			id, err := f.rt.CreateContainer(ctx, pod, &pod.Spec.Containers[i], sb, runtime.ContainerOptions{})
			if err != nil {
				return fmt.Errorf("floor: %w", err)
			}
			if err := f.rt.StartContainer(ctx, id); err != nil {
				return fmt.Errorf("floor: %w", err)
			}
			fp.containers = append(fp.containers, id)
		}
		f.mu.Lock()
		f.pods[n] = fp
		f.mu.Unlock()
		return nil
	})
}

// Remove stops each pod's containers with its grace period, then removes them, the sandbox and
// the pod cgroup: every pod at once, each in the order an agent must follow.
func (f *floor) Remove(ctx context.Context, names []string) error {
	return each(names, func(n string) error {
		f.mu.Lock()
		fp, ok := f.pods[n]
		delete(f.pods, n)
		f.mu.Unlock()
		if !ok {
			return fmt.Errorf("floor: remove %s: never started", n)
		}
		grace := time.Duration(*fp.pod.Spec.TerminationGracePeriodSeconds) * time.Second
		for _, id := range fp.containers {
			if err := f.rt.StopContainer(ctx, id, grace); err != nil {
				return fmt.Errorf("floor: %w", err)
			}
		}
		for _, id := range fp.containers {
			if err := f.rt.RemoveContainer(ctx, id); err != nil {
				return fmt.Errorf("floor: %w", err)
			}
		}
		if err := f.rt.StopPodSandbox(ctx, fp.sandboxID); err != nil {
			return fmt.Errorf("floor: %w", err)
		}
		if err := f.rt.RemovePodSandbox(ctx, fp.sandboxID); err != nil {
			return fmt.Errorf("floor: %w", err)
		}
		if err := f.rt.RemovePodCgroup(string(fp.pod.UID)); err != nil {
			return fmt.Errorf("floor: %w", err)
		}
		return nil
	})
}

// each runs fn for every name at once and joins the errors.
func each(names []string, fn func(string) error) error {
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() { errs[i] = fn(n) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
