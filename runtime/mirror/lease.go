package mirror

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// leaser renews the node's Lease in kube-node-lease: the heartbeat the node
// lifecycle controller reads. Failing renewals for longer than two renew
// intervals mean the apiserver no longer hears the node: the connection is lost.
type leaser struct {
	a      *Agent
	node   *corev1.Node
	latest *coordinationv1.Lease // as last returned; renewed without a get while it holds
}

func newLeaser(a *Agent, node *corev1.Node) *leaser {
	return &leaser{a: a, node: node}
}

func (l *leaser) run(ctx context.Context) error {
	interval := l.a.cfg.RenewInterval
	lastOK := time.Now() // the connection was just made
	for {
		err := l.renew(ctx, time.Now())
		if ctx.Err() != nil {
			return nil
		}
		wait := interval
		if err != nil {
			failing := time.Since(lastOK)
			if failing > 2*interval {
				return lost("lease renewal failing for %s: %v", failing.Round(time.Millisecond), err)
			}
			l.a.log.Warn("lease not renewed; retrying", "err", err)
			wait = max(interval/4, 10*time.Millisecond)
		} else {
			lastOK = time.Now()
		}
		if !sleep(ctx, wait) {
			return nil
		}
	}
}

// renew updates the lease's renewTime, creating the lease if it is missing.
// As the kubelet's lease controller, it updates the lease it last got back
// and gets it afresh only when that fails.
func (l *leaser) renew(ctx context.Context, now time.Time) error {
	leases := l.a.client.Leases(leaseNamespace)
	if l.latest != nil {
		updated, err := leases.Update(ctx, l.renewed(l.latest, now), metav1.UpdateOptions{})
		if err == nil {
			l.latest = updated
			return nil
		}
		l.latest = nil
		if !apierrors.IsConflict(err) {
			return fmt.Errorf("update lease %s/%s: %w", leaseNamespace, l.node.Name, err)
		}
	}
	cur, err := leases.Get(ctx, l.node.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		created, err := leases.Create(ctx, l.renewed(&coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: l.node.Name, Namespace: leaseNamespace},
		}, now), metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create lease %s/%s: %w", leaseNamespace, l.node.Name, err)
		}
		l.latest = created
		return nil
	}
	if err != nil {
		return fmt.Errorf("get lease %s/%s: %w", leaseNamespace, l.node.Name, err)
	}
	updated, err := leases.Update(ctx, l.renewed(cur, now), metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("update lease %s/%s: %w", leaseNamespace, l.node.Name, err)
	}
	l.latest = updated
	return nil
}

// renewed is a copy of lease held by this node as of now, owned by the Node
// (so it goes when the Node goes, as the kubelet's does).
func (l *leaser) renewed(lease *coordinationv1.Lease, now time.Time) *coordinationv1.Lease {
	lease = lease.DeepCopy()
	holder := l.node.Name
	seconds := int32(l.a.cfg.LeaseDuration / time.Second)
	lease.Spec.HolderIdentity = &holder
	lease.Spec.LeaseDurationSeconds = &seconds
	lease.Spec.RenewTime = &metav1.MicroTime{Time: now}
	owned := false
	for _, ref := range lease.OwnerReferences {
		owned = owned || (ref.Kind == "Node" && ref.UID == l.node.UID)
	}
	if !owned && l.node.UID != "" {
		// A lease of an earlier Node of this name would be collected with it.
		lease.OwnerReferences = []metav1.OwnerReference{{
			APIVersion: corev1.SchemeGroupVersion.String(), Kind: "Node", Name: l.node.Name, UID: l.node.UID,
		}}
	}
	return lease
}
