package mirror

import (
	"context"
	"errors"
	"math/rand/v2"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
	"github.com/ledgerlet/ledgerlet/projector"
)

// observed is the observer's last word about one pod key in this run: a
// mirror as it appended it, or that it appended the mirror gone.
type observed struct {
	mirror projector.Mirror
	gone   bool
}

// observe lists and watches this node's pods and appends what changed about
// its mirrors. Each (re-)list is compared as a whole with what the ledger
// holds; the first one in a connection ends with MirrorsSynced. It returns a
// lostError when the apiserver cannot be listed or watched for longer than
// lostAfter, nil when ctx ends.
func (a *Agent) observe(ctx context.Context) error {
	opts := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", a.cfg.NodeName).String()}
	pods := a.watcher.Pods(metav1.NamespaceAll)
	synced := false
	relist := true
	var failingSince time.Time
	failed := func(what string, err error) error {
		if failingSince.IsZero() {
			failingSince = time.Now()
		}
		if d := time.Since(failingSince); d > lostAfter {
			return lost("%s failing for %s: %v", what, d.Round(time.Millisecond), err)
		}
		a.log.Warn(what+" failed; retrying", "err", err)
		sleep(ctx, 250*time.Millisecond)
		return nil
	}
	var rv string
	for ctx.Err() == nil {
		if relist {
			lctx, cancel := context.WithTimeout(ctx, requestTimeout)
			list, err := pods.List(lctx, opts)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				if err := failed("list pods", err); err != nil {
					return err
				}
				continue
			}
			failingSince = time.Time{}
			evs := a.listed(list.Items, a.cfg.Known())
			if !synced {
				evs = append(evs, eventlog.Event{Data: &pb.MirrorsSynced{Mirrors: uint32(countMirrors(a.cfg.NodeName, list.Items))}})
			}
			if err := a.commit(ctx, evs); err != nil {
				return err
			}
			synced, relist, rv = true, false, list.ResourceVersion
		}
		wopts := opts
		wopts.ResourceVersion = rv
		wopts.AllowWatchBookmarks = true
		// As client-go's reflector: the server ends a watch after 5-10
		// minutes, so watches of many nodes do not all restart at once.
		timeout := int64(300 + rand.IntN(300))
		wopts.TimeoutSeconds = &timeout
		w, err := pods.Watch(ctx, wopts)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
				relist = true
				continue
			}
			if err := failed("watch pods", err); err != nil {
				return err
			}
			continue
		}
		rv, relist, err = a.follow(ctx, w, rv)
		w.Stop()
		if err != nil {
			return err
		}
	}
	return nil
}

// follow consumes one watch until it ends; it returns the resource version
// to resume from and whether a re-list is needed (the version expired).
func (a *Agent) follow(ctx context.Context, w watch.Interface, rv string) (string, bool, error) {
	for {
		var ev watch.Event
		var open bool
		select {
		case <-ctx.Done():
			return rv, false, nil
		case ev, open = <-w.ResultChan():
		}
		if !open {
			return rv, false, nil
		}
		switch ev.Type {
		case watch.Error:
			err := apierrors.FromObject(ev.Object)
			if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
				return rv, true, nil
			}
			a.log.Warn("pod watch ended with an error", "err", err)
			return rv, false, nil
		case watch.Bookmark:
			if m, err := metaOf(ev.Object); err == nil {
				rv = m.GetResourceVersion()
			}
		case watch.Added, watch.Modified, watch.Deleted:
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			rv = pod.ResourceVersion
			if err := a.commit(ctx, a.changed(ev.Type, pod, a.cfg.Known)); err != nil {
				return rv, false, err
			}
		}
	}
}

func metaOf(obj any) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, errors.New("no object metadata")
	}
	return m, nil
}

// commit appends evs and, once they are durable, takes them as the
// observer's last word about their pods.
func (a *Agent) commit(ctx context.Context, evs []eventlog.Event) error {
	if err := a.record(ctx, evs...); err != nil {
		return err
	}
	for _, ev := range evs {
		switch d := ev.Data.(type) {
		case *pb.MirrorObserved:
			a.appended[ev.Pod] = observed{mirror: projector.Mirror{UID: d.MirrorUid, ConfigMirror: d.ConfigMirror, Deleting: d.Deleting, Phase: d.Phase,
				ObservedDigest: d.StatusDigest}}
		case *pb.MirrorGone:
			a.appended[ev.Pod] = observed{gone: true, mirror: projector.Mirror{UID: d.MirrorUid}}
		}
	}
	return nil
}

// believed is what the ledger holds about key's mirror as far as this
// observer knows: its own last word in this run, else the projection's.
func (a *Agent) believed(key string, known map[string]projector.Mirror) (projector.Mirror, bool) {
	if o, ok := a.appended[key]; ok {
		return o.mirror, !o.gone
	}
	m, ok := known[key]
	return m, ok
}

// listed compares a complete listing of the node's pods with what the
// ledger holds: a mirror that differs is observed, one that is not listed
// is gone. Events come in pod-key order.
func (a *Agent) listed(pods []corev1.Pod, known map[string]projector.Mirror) []eventlog.Event {
	current := map[string]projector.Mirror{}
	for i := range pods {
		if m, ok := mirrorOf(a.cfg.NodeName, &pods[i]); ok {
			current[podKey(&pods[i])] = m
		}
	}
	keys := map[string]bool{}
	for k := range current {
		keys[k] = true
	}
	for k := range known {
		keys[k] = true
	}
	for k := range a.appended {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	var evs []eventlog.Event
	for _, k := range sorted {
		was, had := a.believed(k, known)
		now, has := current[k]
		switch {
		case has && (!had || !sameMirror(was, now)):
			evs = append(evs, observedEvent(k, now))
		case !has && had:
			evs = append(evs, eventlog.Event{Pod: k, Data: &pb.MirrorGone{MirrorUid: was.UID}})
		}
	}
	return evs
}

// changed is what one watch event tells about a mirror (nothing, or one
// event). known is called only when this run said nothing of the pod yet.
func (a *Agent) changed(typ watch.EventType, pod *corev1.Pod, known func() map[string]projector.Mirror) []eventlog.Event {
	m, isMirror := mirrorOf(a.cfg.NodeName, pod)
	if !isMirror {
		return nil // pods of this node that are not mirrors are not ours to report
	}
	key := podKey(pod)
	var k map[string]projector.Mirror
	if _, ok := a.appended[key]; !ok {
		k = known()
	}
	was, had := a.believed(key, k)
	switch typ {
	case watch.Deleted:
		if had && was.UID == m.UID {
			return []eventlog.Event{{Pod: key, Data: &pb.MirrorGone{MirrorUid: m.UID}}}
		}
	default:
		if !had || !sameMirror(was, m) {
			return []eventlog.Event{observedEvent(key, m)}
		}
	}
	return nil
}

// mirrorOf reads a pod as a mirror of this node, if it is one.
func mirrorOf(node string, pod *corev1.Pod) (projector.Mirror, bool) {
	hash, ok := pod.Annotations[annotationConfigMirror]
	if !ok || pod.Spec.NodeName != node {
		return projector.Mirror{}, false
	}
	return projector.Mirror{
		UID: string(pod.UID), ConfigMirror: hash,
		Deleting: pod.DeletionTimestamp != nil, Phase: string(pod.Status.Phase),
		ObservedDigest: projector.MirrorStatusDigest(pod.Status),
	}, true
}

func countMirrors(node string, pods []corev1.Pod) int {
	n := 0
	for i := range pods {
		if _, ok := mirrorOf(node, &pods[i]); ok {
			n++
		}
	}
	return n
}

func sameMirror(a, b projector.Mirror) bool {
	return a.UID == b.UID && a.ConfigMirror == b.ConfigMirror && a.Deleting == b.Deleting && a.Phase == b.Phase &&
		a.ObservedDigest == b.ObservedDigest
}

func observedEvent(key string, m projector.Mirror) eventlog.Event {
	return eventlog.Event{Pod: key, Data: &pb.MirrorObserved{
		MirrorUid: m.UID, ConfigMirror: m.ConfigMirror, Deleting: m.Deleting, Phase: m.Phase,
		StatusDigest: m.ObservedDigest,
	}}
}

func podKey(pod *corev1.Pod) string { return pod.Namespace + "/" + pod.Name }
