package controller

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/weirhq/weir/deploy/api/v1alpha1"
)

// RouteLister is what the route watch needs of the gateway's admin API
// (GET /v1/routes); *sdk/client.Client implements it.
type RouteLister interface {
	Get(ctx context.Context, path string, out any) error
}

// routeState is what the route watch knows of one gateway route: a digest
// of its JSON (which holds its revision), or missing; and what its
// WeirRoutes last applied (their status' AppliedRouteHash), so that a route
// the controller set and someone deleted between two listings is a change
// too (missing before and after, but applied in between).
type routeState struct {
	sum     [32]byte
	missing bool
	applied string
}

// routeWatch is a source of reconcile requests from the gateway's side: it
// lists the gateway's routes every interval and enqueues the WeirRoute of
// each route whose state changed since the last listing: edited (its
// revision or content), deleted, first seen (present, or missing while a
// WeirRoute declares it), or applied anew by the controller (a route it set
// and someone deleted within one interval). A route edited or deleted by
// hand is so set back
// within an interval, not at the next resync, even one changed before the
// watch ever saw the controller's version. The controller only talks HTTP
// to its gateway, so the watch is a cheap poll (one GET on loopback).
// Changes the controller or a rollout made cause one more pass, which finds
// nothing to do; a route that stays missing (the gateway refuses it) is
// enqueued once, then left to the resync and the per-key backoff. It runs
// while the controller runs, i.e. on the leader.
func (r *Reconciler) routeWatch(gw RouteLister, interval time.Duration) source.Source {
	return source.Func(func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		go func() {
			log := logf.FromContext(ctx).WithName("routewatch")
			last := map[string]routeState{}
			t := time.NewTicker(interval)
			defer t.Stop()
			down := false
			for {
				if err := r.pollRoutes(ctx, gw, q, last); err != nil {
					// Keep the last listing: a gateway that restarts with
					// the same routes is not a change.
					log.V(1).Info("route watch: poll failed", "err", err.Error())
					down = true
				} else if down {
					// The gateway is back after an outage: what failed
					// meanwhile is retried now, not after the backoff it
					// built up against a gateway that was away.
					down = false
					r.retryAll(ctx, q)
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
		return nil
	})
}

// retryAll resets the backoff of every WeirRoute and enqueues it.
func (r *Reconciler) retryAll(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	var list v1alpha1.WeirRouteList
	if err := r.cfg.Client.List(ctx, &list, client.InNamespace(r.cfg.Namespace)); err != nil {
		return // the next resync or event brings them
	}
	for i := range list.Items {
		req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: list.Items[i].Namespace, Name: list.Items[i].Name}}
		q.Forget(req)
		q.Add(req)
	}
}

// pollRoutes lists the gateway's routes and the WeirRoutes, enqueues the
// WeirRoutes of every route whose state differs from last, and updates last.
func (r *Reconciler) pollRoutes(ctx context.Context, gw RouteLister, q workqueue.TypedRateLimitingInterface[reconcile.Request], last map[string]routeState) error {
	var out struct {
		Routes []json.RawMessage `json:"routes"`
	}
	if err := gw.Get(ctx, "/v1/routes", &out); err != nil {
		return err
	}
	var list v1alpha1.WeirRouteList
	if err := r.cfg.Client.List(ctx, &list, client.InNamespace(r.cfg.Namespace)); err != nil {
		return err
	}
	owners := map[string][]types.NamespacedName{}
	applied := map[string][]string{}
	for i := range list.Items {
		wr := &list.Items[i]
		name := wr.GatewayRouteName()
		owners[name] = append(owners[name], types.NamespacedName{Namespace: wr.Namespace, Name: wr.Name})
		applied[name] = append(applied[name], wr.Status.AppliedRouteHash)
	}
	cur := map[string]routeState{}
	for name, hashes := range applied {
		slices.Sort(hashes)
		cur[name] = routeState{missing: true, applied: strings.Join(hashes, ",")}
	}
	for _, raw := range out.Routes {
		var rt struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(raw, &rt) == nil && rt.Name != "" {
			st := cur[rt.Name]
			st.sum, st.missing = sha256.Sum256(raw), false
			cur[rt.Name] = st
		}
	}
	for name, st := range cur {
		if prev, seen := last[name]; !seen || prev != st {
			for _, nn := range owners[name] {
				q.Add(reconcile.Request{NamespacedName: nn})
			}
		}
	}
	for name := range last {
		if _, ok := cur[name]; !ok { // deleted, and no WeirRoute declares it
			delete(last, name)
		}
	}
	for name, st := range cur {
		last[name] = st
	}
	return nil
}
