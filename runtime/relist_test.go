package runtime

import (
	"context"
	"testing"
	"time"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector"
)

// fakeStatus answers status calls from fixed maps and counts them.
type fakeStatus struct {
	sandboxes  map[string]ObservedSandbox
	containers map[string]ObservedContainer
	calls      int
}

func (f *fakeStatus) SandboxStatus(_ context.Context, id string) (ObservedSandbox, error) {
	f.calls++
	return f.sandboxes[id], nil
}

func (f *fakeStatus) ContainerStatus(_ context.Context, id string) (ObservedContainer, error) {
	f.calls++
	return f.containers[id], nil
}

func TestObservationsRecordOnlyChanges(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	known := func() *projector.State {
		s := projector.New()
		for i, e := range []eventlog.Event{
			{Pod: "default/web-n1", Data: &pb.SandboxObserved{Uid: "u1", SandboxId: "sb1", State: "ready", Ip: "10.0.0.2", CreatedUnixNano: t0.UnixNano()}},
			{Pod: "default/web-n1", Data: &pb.ContainerObserved{Uid: "u1", SandboxId: "sb1", Container: "c", ContainerId: "c1", State: "running", StartedUnixNano: t0.UnixNano()}},
			{Pod: "default/old-n1", Data: &pb.ContainerObserved{Uid: "u0", Container: "c", ContainerId: "c0", State: "exited", StartedUnixNano: t0.UnixNano()}},
		} {
			e.Seq, e.Time = uint64(i+1), t0
			s.Apply(e)
		}
		return s
	}
	all := map[string]bool{"sb1": true, "c1": true, "c0": true}
	sb1 := ObservedSandbox{ID: "sb1", PodUID: "u1", PodName: "web-n1", PodNamespace: "default", State: SandboxReady}
	c1 := ObservedContainer{ID: "c1", SandboxID: "sb1", PodUID: "u1", PodName: "web-n1", PodNamespace: "default", Name: "c", State: ContainerRunning}
	c0 := ObservedContainer{ID: "c0", PodUID: "u0", PodName: "old-n1", PodNamespace: "default", Name: "c", State: ContainerExited}
	tests := []struct {
		name      string
		listing   listing
		status    map[string]ObservedContainer
		adopt     bool
		wantTypes []string
		wantCalls int
	}{
		{
			name:    "UnchangedRuntimeAppendsNothing",
			listing: listing{before: all, sandboxes: []ObservedSandbox{sb1}, containers: []ObservedContainer{c1, c0}},
		},
		{
			name: "AnExitIsRecordedWithItsStatus",
			listing: listing{before: all, sandboxes: []ObservedSandbox{sb1},
				containers: []ObservedContainer{{ID: "c1", SandboxID: "sb1", PodName: "web-n1", PodNamespace: "default", Name: "c", State: ContainerExited}, c0}},
			status:    map[string]ObservedContainer{"c1": {ID: "c1", PodUID: "u1", Name: "c", State: ContainerExited, ExitCode: 2, Reason: "Error"}},
			wantTypes: []string{"ContainerObserved"},
			wantCalls: 1,
		},
		{
			name:      "WhatTheRuntimeNoLongerListsIsGone",
			listing:   listing{before: all, sandboxes: []ObservedSandbox{sb1}, containers: []ObservedContainer{c1}},
			wantTypes: []string{"ContainerGone"},
		},
		{
			name:    "WhatTheStateLearnedAfterTheListingBeganIsNotGone",
			listing: listing{},
		},
		{
			// It started at t0; the clock was then stepped back 8 h and
			// the listing began "before" t0 by the wall clock.
			name:      "AContainerStartedBeforeAClockStepBackIsStillSeenGone",
			listing:   listing{before: all, sandboxes: []ObservedSandbox{sb1}, containers: []ObservedContainer{c1}},
			wantTypes: []string{"ContainerGone"},
		},
		{
			name:      "AdoptionRecordsEverythingWithoutStatusCalls",
			listing:   listing{before: all, sandboxes: []ObservedSandbox{sb1}, containers: []ObservedContainer{c1, c0}},
			adopt:     true,
			wantTypes: []string{"SandboxObserved", "ContainerObserved", "ContainerObserved"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &fakeStatus{containers: tt.status}
			evs, err := observations(context.Background(), st, knownObjects(known()), tt.listing, tt.adopt)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range evs {
				got = append(got, e.Type())
				if tt.adopt {
					if d, ok := e.Data.(*pb.ContainerObserved); ok && !d.Adopted {
						t.Errorf("adoption event without adopted=true: %v", d)
					}
				}
			}
			if len(got) != len(tt.wantTypes) {
				t.Fatalf("events %v, want %v", got, tt.wantTypes)
			}
			for i := range got {
				if got[i] != tt.wantTypes[i] {
					t.Fatalf("events %v, want %v", got, tt.wantTypes)
				}
			}
			if st.calls != tt.wantCalls {
				t.Fatalf("%d status calls, want %d", st.calls, tt.wantCalls)
			}
		})
	}
}
