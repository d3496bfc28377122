package replay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/replay"
)

// busyNode records every situation a timeline draws, over five and a half
// hours of one node: a crash loop after an edit and its fix, a rejected
// edit, an image that cannot be pulled, the runtime and the apiserver lost
// and back, mirror actions, an agent crash, a removal with its grace
// period, and a clean restart.
func busyNode(t *testing.T) *node {
	t.Helper()
	n := newNode(t, true)
	n.up(etcd)
	n.act(etcd.Key, &pb.Intent{Action: string(pb.ActionMirrorCreate), Uid: etcd.UID, ConfigHash: etcd.UID, Reason: "no mirror pod"}, 25*time.Millisecond,
		&pb.Outcome{Ok: true, MirrorUid: "m-etcd-1"})
	n.Add(etcd.Key, &pb.MirrorObserved{MirrorUid: "m-etcd-1", ConfigMirror: etcd.UID, Phase: "Running"})
	n.up(cache)
	n.up(apiserverV1)
	start := n.Now

	// +1h: an edit with a typo; the new version crash-loops for an hour.
	n.Now = start.Add(time.Hour)
	n.manifest(apiserverV2, apiserverV1.UID)
	n.teardown(apiserverV2.Key, apiserverV1.UID, 30, []string{"kube-apiserver"}, []uint32{0}, "replaced by a new version of the pod")
	n.sandbox(apiserverV2.Key, apiserverV2.UID)
	name, image := "kube-apiserver", apiserverV2.Containers[0].Image
	var attempt uint32
	for ; n.Now.Before(start.Add(2 * time.Hour)); attempt++ {
		n.start(apiserverV2.Key, apiserverV2.UID, name, image, attempt)
		started := n.Now
		n.After(6 * time.Second)
		n.exit(apiserverV2.Key, apiserverV2.UID, name, attempt, 1, "Error", started)
		n.After(min(10*time.Second<<attempt, 5*time.Minute))
	}
	// +1h30: an edit of etcd that does not validate.
	n.Add(etcd.Key, &pb.ManifestRejected{Source: "file", Path: path(etcd.Key), ContentHash: "h-bad", Reason: "spec.containers[0].image: Required value"})
	// The fix.
	n.After(time.Minute)
	n.manifest(apiserverV3, apiserverV2.UID)
	n.teardown(apiserverV3.Key, apiserverV2.UID, 30, nil, nil, "replaced by a new version of the pod")
	n.Add(apiserverV3.Key, &pb.ContainerGone{Uid: apiserverV2.UID, ContainerId: cid(apiserverV2.UID, name, attempt-1), Container: name})
	n.sandbox(apiserverV3.Key, apiserverV3.UID)
	n.start(apiserverV3.Key, apiserverV3.UID, name, apiserverV3.Containers[0].Image, attempt)

	// +2h30: a new pod whose image is not in the registry.
	n.Now = start.Add(150 * time.Minute)
	n.manifest(web, "")
	n.sandbox(web.Key, web.UID)
	for i := 0; i < 6; i++ {
		n.After(10 * time.Millisecond)
		n.act(web.Key, &pb.Intent{Action: string(pb.ActionStartContainer), Uid: web.UID, Container: "web", Image: web.Containers[0].Image,
			SandboxId: "sb-" + web.UID, GracePeriodSeconds: 30, Reason: "container not running"}, 1200*time.Millisecond,
			&pb.Outcome{Ok: false, Reason: "ErrImagePull", Error: "not found"})
		n.After(min(10*time.Second<<i, 5*time.Minute))
	}

	// +3h: containerd is lost for ten minutes.
	n.Now = start.Add(3 * time.Hour)
	n.Add("", &pb.RuntimeDisconnected{Endpoint: "unix:///run/containerd/containerd.sock", Reason: "connection refused"})
	n.After(10 * time.Minute)
	n.Add("", &pb.RuntimeConnected{Endpoint: "unix:///run/containerd/containerd.sock", RuntimeName: "containerd", RuntimeVersion: "1.7.22"})

	// +3h30: the apiserver is lost for a quarter of an hour.
	n.Now = start.Add(210 * time.Minute)
	n.Add("", &pb.ApiserverDisconnected{Host: "https://10.0.0.1:6443", Reason: "connection refused"})
	n.After(15 * time.Minute)
	n.Add("", &pb.ApiserverConnected{Host: "https://10.0.0.1:6443", NodeUid: "node-uid-1", ServerVersion: "v1.31.0"})
	n.act(etcd.Key, &pb.Intent{Action: string(pb.ActionMirrorStatus), Uid: etcd.UID, MirrorUid: "m-etcd-1", StatusHash: "s2", Reason: "status changed"}, 30*time.Millisecond,
		&pb.Outcome{Ok: true})

	// +4h: the agent crashes (no AgentStopped) and starts again.
	n.Now = start.Add(4 * time.Hour)
	n.agentStart(true)

	// +4h30: the cache's manifest is removed; redis takes its 60 s grace.
	n.Now = start.Add(270 * time.Minute)
	n.Add(cache.Key, &pb.ManifestRemoved{Source: "file", Path: path(cache.Key), Uid: cache.UID})
	n.After(15 * time.Millisecond)
	stop := n.Add(cache.Key, &pb.Intent{Action: string(pb.ActionStopContainer), Uid: cache.UID, Container: "redis", ContainerId: cid(cache.UID, "redis", 0),
		SandboxId: "sb-" + cache.UID, GracePeriodSeconds: 60, Reason: "pod no longer desired"})
	n.After(time.Minute)
	n.Add(cache.Key, &pb.Outcome{IntentSeq: stop, Ok: true})
	n.Add(cache.Key, &pb.ContainerObserved{Uid: cache.UID, SandboxId: "sb-" + cache.UID, Container: "redis", ContainerId: cid(cache.UID, "redis", 0),
		State: pb.StateExited, ExitCode: 137, Reason: "Killed"})
	n.Add(cache.Key, &pb.ContainerGone{Uid: cache.UID, ContainerId: cid(cache.UID, "redis", 0), Container: "redis"})
	n.teardown(cache.Key, cache.UID, 60, []string{"exporter"}, []uint32{0}, "pod no longer desired")

	// +5h: a clean stop, and a start five minutes later.
	n.Now = start.Add(5 * time.Hour)
	n.Add("", &pb.AgentStopped{Reason: "signal"})
	n.After(5 * time.Minute)
	n.agentStart(true)
	n.Now = start.Add(330 * time.Minute)
	n.Add("", &pb.SourceSynced{Source: "file", Location: "/etc/kubernetes/manifests", Manifests: 3})
	return n
}

func TestTimelineDrawsEveryRecordedSituation(t *testing.T) {
	n := busyNode(t)
	ctx := context.Background()
	tl, err := replay.BuildTimeline(ctx, n.Log, replay.TimelineOptions{Buckets: 120})
	if err != nil {
		t.Fatal(err)
	}
	var js bytes.Buffer
	enc := json.NewEncoder(&js)
	enc.SetIndent("", "  ")
	if err := enc.Encode(tl); err != nil {
		t.Fatal(err)
	}
	golden(t, "timeline/busy-node.json", js.Bytes())
	var txt bytes.Buffer
	if err := tl.WriteText(&txt); err != nil {
		t.Fatal(err)
	}
	golden(t, "timeline/busy-node.txt", txt.Bytes())

	kinds := map[string]int{}
	states := map[string]int{}
	for _, l := range tl.Lanes {
		for _, m := range l.Markers {
			kinds[m.Kind] += max(m.Count, 1)
		}
		for _, s := range l.Spans {
			states[s.State]++
		}
	}
	for _, k := range []string{replay.MarkManifest, replay.MarkRejected, replay.MarkRemoved, replay.MarkAgentStart, replay.MarkAgentCrash,
		replay.MarkAgentStop, replay.MarkRuntimeDown, replay.MarkApiserverOff, replay.MarkMirror} {
		if kinds[k] == 0 {
			t.Errorf("no %s marker", k)
		}
	}
	if kinds[replay.MarkAgentCrash] != 1 || kinds[replay.MarkAgentStart] != 2 {
		t.Errorf("agent starts: %d clean, %d after a crash; want 2 and 1", kinds[replay.MarkAgentStart], kinds[replay.MarkAgentCrash])
	}
	for _, s := range []string{replay.SpanRunning, replay.SpanBackoff, replay.SpanWaiting, replay.SpanTerminating, replay.SpanUp, replay.SpanDown} {
		if states[s] == 0 {
			t.Errorf("no %s span", s)
		}
	}
}

// TestTimelineBackoffSpanCarriesItsDelay: a crash-loop back-off is drawn
// from the exit to the restart, with the exit code and the delay.
func TestTimelineBackoffSpanCarriesItsDelay(t *testing.T) {
	n := newNode(t, false)
	crashLoop(n)
	n.After(2 * time.Minute)
	tl, err := replay.BuildTimeline(context.Background(), n.Log, replay.TimelineOptions{Buckets: 100000, Filter: replay.Filter{Pod: apiserverV2.Key, Until: n.Now}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range tl.Lanes {
		if l.ID != "pod/"+apiserverV2.Key+"/kube-apiserver" {
			continue
		}
		for _, s := range l.Spans {
			if s.State == replay.SpanBackoff {
				got = append(got, fmt.Sprintf("%s %s", s.End.Sub(s.Start), s.Detail))
			}
		}
	}
	want := "10s exited 1 (Error), back-off 10s|20s exited 1 (Error), back-off 20s|40s exited 1 (Error), back-off 40s"
	if strings.Join(got, "|") != want {
		t.Fatalf("back-off spans %q, want %q", strings.Join(got, "|"), want)
	}
}

// TestTimelineMergesWhatIsFinerThanAPixel: a month of crash loops at one
// pixel per half hour is a handful of spans and capped markers per lane,
// every merged span counting what it stands for.
func TestTimelineMergesWhatIsFinerThanAPixel(t *testing.T) {
	n := newNode(t, false)
	n.up(apiserverV1)
	name, image := "kube-apiserver", apiserverV1.Containers[0].Image
	edits := 0
	for attempt := uint32(0); attempt < 3000; attempt++ {
		started := n.Now
		n.After(7 * time.Second)
		n.exit(apiserverV1.Key, apiserverV1.UID, name, attempt, 1, "Error", started)
		n.After(5 * time.Minute)
		n.start(apiserverV1.Key, apiserverV1.UID, name, image, attempt+1)
		if attempt%100 == 0 {
			edits++
			n.Add(apiserverV1.Key, &pb.ManifestRejected{Source: "file", Path: path(apiserverV1.Key), ContentHash: fmt.Sprint("h", attempt), Reason: "bad"})
		}
	}
	tl, err := replay.BuildTimeline(context.Background(), n.Log, replay.TimelineOptions{Buckets: 1400, MaxMarkers: 20})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range tl.Lanes {
		if len(l.Spans) > 1400 {
			t.Errorf("lane %s has %d spans for 1400 pixels", l.ID, len(l.Spans))
		}
		if len(l.Markers) > 20 {
			t.Errorf("lane %s has %d markers, cap 20", l.ID, len(l.Markers))
		}
		if l.Kind == replay.LanePod {
			total := 0
			for _, m := range l.Markers {
				if m.Kind == replay.MarkRejected {
					total += max(m.Count, 1)
				}
			}
			if total != edits {
				t.Errorf("pod lane markers count %d rejected edits, want %d", total, edits)
			}
		}
		if l.Kind == replay.LaneContainer {
			merged := 0
			long := map[string]time.Duration{}
			for _, s := range l.Spans {
				merged += max(s.Merged, 1)
				long[s.State] += s.End.Sub(s.Start)
			}
			if merged < 6000 || len(l.Spans) > 10 {
				t.Errorf("container lane: %d spans standing for %d; want a few standing for ≥ 6000", len(l.Spans), merged)
			}
			if long[replay.SpanBackoff] < 9*long[replay.SpanCreating] {
				t.Errorf("the merged crash loop reads as %v, want mostly backoff", long)
			}
		}
	}
}

// TestTimelineHTMLEscapesWhatTheLogSays: a reason or manifest holding
// markup is text on the page, never markup.
func TestTimelineHTMLEscapesWhatTheLogSays(t *testing.T) {
	n := newNode(t, false)
	n.up(etcd)
	n.After(time.Minute)
	n.Add(etcd.Key, &pb.ManifestRejected{Source: "file", Path: path(etcd.Key), ContentHash: "x", Reason: `<script>alert("x")</script><img src=x onerror=alert(1)>`})
	n.After(time.Minute)
	tl, err := replay.BuildTimeline(context.Background(), n.Log, replay.TimelineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := tl.WriteHTML(&b, "node1 <timeline>"); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, bad := range []string{`<script>alert`, `<img src=x`, `<timeline>`} {
		if strings.Contains(page, bad) {
			t.Errorf("page holds unescaped %q", bad)
		}
	}
	if strings.Count(page, "<script>") != 1 {
		t.Errorf("page holds %d scripts, want only its own", strings.Count(page, "<script>"))
	}
	page = strings.ReplaceAll(page, `xmlns="http://www.w3.org/2000/svg"`, "")
	for _, ext := range []string{"http://", "https://", "@import", "url(", "<link"} {
		if i := strings.Index(page, ext); i >= 0 {
			t.Errorf("page refers to something outside itself: %q", page[max(0, i-40):min(len(page), i+40)])
		}
	}
}
