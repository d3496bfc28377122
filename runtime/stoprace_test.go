package runtime

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	criv1 "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// stopRaceCRI fails every stop as containerd 1.6 does when the kill at the
// end of the grace period meets the container's own exit, and shows the
// container running for the first running reads, then as it ends up.
type stopRaceCRI struct {
	criv1.RuntimeServiceClient
	running int32
	end     criv1.ContainerState
	reads   atomic.Int32
}

func (f *stopRaceCRI) StopContainer(context.Context, *criv1.StopContainerRequest, ...grpc.CallOption) (*criv1.StopContainerResponse, error) {
	return nil, status.Error(codes.Unknown, `failed to kill container "c1": ttrpc: closed: unknown`)
}

func (f *stopRaceCRI) ContainerStatus(_ context.Context, r *criv1.ContainerStatusRequest, _ ...grpc.CallOption) (*criv1.ContainerStatusResponse, error) {
	st := f.end
	if f.reads.Add(1) <= f.running {
		st = criv1.ContainerState_CONTAINER_RUNNING
	}
	return &criv1.ContainerStatusResponse{Status: &criv1.ContainerStatus{Id: r.ContainerId, State: st,
		Metadata: &criv1.ContainerMetadata{Name: "main"}}}, nil
}

func TestStopThatRacesTheExitSucceedsOnceTheContainerExited(t *testing.T) {
	for _, tc := range []struct {
		name    string
		running int32
		end     criv1.ContainerState
		wantErr bool
	}{
		{"exited by the first read", 0, criv1.ContainerState_CONTAINER_EXITED, false},
		{"exit reported a little later", 3, criv1.ContainerState_CONTAINER_EXITED, false},
		{"still running: the failure stands", 1 << 30, criv1.ContainerState_CONTAINER_RUNNING, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newOfflineRuntime(t, t.TempDir())
			r.rs = &stopRaceCRI{running: tc.running, end: tc.end}
			start := time.Now()
			err := r.StopContainer(context.Background(), "c1", time.Second)
			if (err != nil) != tc.wantErr {
				t.Fatalf("StopContainer: %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr && time.Since(start) < stopRaceWait {
				t.Errorf("gave up after %v, before the %v the exit is waited for", time.Since(start), stopRaceWait)
			}
		})
	}
}
