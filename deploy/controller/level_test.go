package controller

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weirhq/weir/deploy/api/v1alpha1"
	"github.com/weirhq/weir/internal/testpoll"
)

// Issue 29's controller findings, each against the real API server and a
// real gateway.

// loseRolloutStatus clears status.rollout, as a status write lost to a
// conflict leaves it.
func loseRolloutStatus(t *testing.T, e env, name string) {
	t.Helper()
	testpoll.For(t, 10*time.Second, "status.rollout cleared without conflict", func() error {
		wr := getRoute(t, e.c, e.ns, name)
		wr.Status.Rollout = nil
		meta.RemoveStatusCondition(&wr.Status.Conditions, v1alpha1.ConditionRolloutProgressing)
		return e.c.Status().Update(context.Background(), wr)
	})
}

// Item 2: the rollout is reconciled from what the gateway says, not from
// status.rollout. A lost status write does not start the rollout again (409
// forever): the running rollout that matches the spec is adopted. Removing
// spec.rollout while status has lost the rollout still aborts it on the
// gateway before Ready=True.
func TestLostRolloutStatusIsAdoptedThenAborted(t *testing.T) {
	e := setup(t)
	if err := e.c.Create(context.Background(), rolloutRoute(e, t)); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, e, "fraud", 30*time.Second, func(wr *v1alpha1.WeirRoute) bool {
		return wr.Status.Rollout != nil && wr.Status.Rollout.State == "progressing" && wr.Status.Rollout.Weight == 20
	}, "the rollout progressing at 20%%")
	startedAt := rollout(t, e.gw, "fraud").StartedAt

	loseRolloutStatus(t, e, "fraud")
	waitRoute(t, e, "fraud", 30*time.Second, func(wr *v1alpha1.WeirRoute) bool {
		return wr.Status.Rollout != nil && wr.Status.Rollout.State == "progressing" &&
			condition(wr, v1alpha1.ConditionRolloutProgressing, metav1.ConditionTrue, "Progressing")
	}, "the running rollout adopted after its status was lost")
	if st := rollout(t, e.gw, "fraud"); st.State != "progressing" || !st.StartedAt.Equal(startedAt) {
		t.Fatalf("gateway rollout %s started %v, want the first one (started %v) still progressing", st.State, st.StartedAt, startedAt)
	}
	if seen := events(t, e.c, e.ns, "fraud"); len(seen["RolloutAdopted"]) == 0 || len(seen["RolloutStarted"]) != 1 {
		t.Fatalf("Events %v, want one RolloutStarted and a RolloutAdopted", seen)
	}

	// Status loses the rollout again, and spec.rollout goes.
	loseRolloutStatus(t, e, "fraud")
	updateSpec(t, e.c, e.ns, "fraud", func(s *v1alpha1.WeirRouteSpec) { s.Rollout = nil })
	waitRoute(t, e, "fraud", 30*time.Second, func(wr *v1alpha1.WeirRoute) bool {
		return readyRoute(wr) && rollout(t, e.gw, "fraud").State == "rolled_back"
	}, "Ready with the orphaned rollout aborted on the gateway")
	testpoll.For(t, 20*time.Second, "the gateway's route back to fraud@1 alone", func() error {
		if r := route(t, e.gw, "fraud"); !r.onlyVariant("fraud", "1") {
			return fmt.Errorf("gateway route %v", r)
		}
		return nil
	})
	servedBy(t, e.gw, "fraud", `{"a":1,"b":2}`, "fraud", "1")
}

// Item 2: a rollout running on the gateway that is not the declared one
// (started by hand with other steps) is aborted and the declared one
// started.
func TestUndeclaredRunningRolloutIsReplaced(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	wr := rolloutRoute(e, t)
	declared := wr.Spec.Rollout
	wr.Spec.Rollout = nil
	if err := e.c.Create(ctx, wr); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, e, "fraud", 30*time.Second, readyRoute, "Ready without a rollout")
	if _, err := e.gw.Client.StartRollout(ctx, "fraud", []byte(`{"model":"fraud","version":"2","steps":[10,100],"interval":"1h"}`)); err != nil {
		t.Fatal(err)
	}
	updateSpec(t, e.c, e.ns, "fraud", func(s *v1alpha1.WeirRouteSpec) { s.Rollout = declared })
	testpoll.For(t, 30*time.Second, "the declared rollout running in place of the hand-started one", func() error {
		st := rollout(t, e.gw, "fraud")
		if st.State != "progressing" || len(st.Spec.Steps) != 3 || st.Spec.Steps[0] != 20 {
			return fmt.Errorf("gateway rollout %s with steps %v", st.State, st.Spec.Steps)
		}
		return nil
	})
	waitRoute(t, e, "fraud", 30*time.Second, func(wr *v1alpha1.WeirRoute) bool {
		return wr.Status.Rollout != nil && wr.Status.Rollout.State == "progressing" && wr.Status.Rollout.Weight == 20
	}, "status following the declared rollout")
	if seen := events(t, e.c, e.ns, "fraud"); len(seen["RolloutAborted"]) == 0 {
		t.Fatalf("no RolloutAborted Event; Events: %v", seen)
	}
}

// Item 3: two WeirRoutes naming one gateway route. The older keeps it; the
// newer says RouteConflict and changes nothing on the gateway (no flapping
// between the two); once the older is deleted, the newer takes the route.
func TestRouteNameConflictOlderOwnerKeeps(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	// Created in one second, the first by name is the older: the names
	// agree with the creation order either way.
	older := simpleRoute(e, t, "a-older", "m")
	older.Spec.RouteName = "shared"
	if err := e.c.Create(ctx, older); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, e, "a-older", 30*time.Second, readyRoute, "the older WeirRoute Ready")
	newer := simpleRoute(e, t, "b-newer", "n")
	newer.Spec.RouteName = "shared"
	if err := e.c.Create(ctx, newer); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, e, "b-newer", 30*time.Second, func(wr *v1alpha1.WeirRoute) bool {
		return condition(wr, v1alpha1.ConditionReady, metav1.ConditionFalse, "RouteConflict") &&
			condition(wr, v1alpha1.ConditionRouteApplied, metav1.ConditionFalse, "RouteConflict")
	}, "the newer WeirRoute Ready=False RouteConflict")

	// Many passes of both later (300ms resync), the route is still the
	// older one's, every time it is looked at, and the older is Ready.
	passes := reconcilePasses(t)
	testpoll.For(t, 30*time.Second, "20 more reconcile passes", func() error {
		if r := route(t, e.gw, "shared"); !r.onlyVariant("m", "1") {
			t.Fatalf("gateway route %v while two WeirRoutes name it: want the older's m@1 only", r)
		}
		if n := reconcilePasses(t) - passes; n < 20 {
			return fmt.Errorf("%v passes", n)
		}
		return nil
	})
	if wr := getRoute(t, e.c, e.ns, "a-older"); !readyRoute(wr) {
		t.Fatalf("the older WeirRoute: %s", conditionsOf(wr))
	}
	if seen := events(t, e.c, e.ns, "b-newer"); len(seen["RouteConflict"]) == 0 || len(seen["RouteApplied"]) != 0 {
		t.Fatalf("Events of the newer WeirRoute %v, want RouteConflict and no RouteApplied", seen)
	}

	if err := e.c.Delete(ctx, older); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, e, "b-newer", 30*time.Second, readyRoute, "the newer WeirRoute Ready once the older is gone")
	servedBy(t, e.gw, "shared", `{"a":1,"b":2}`, "n", "1")
}

// Item 11: two versions pushed in one pass are two Events, each naming its
// version (the Event recorder folded them into one naming the first).
func TestEveryPushedVersionHasItsEvent(t *testing.T) {
	e := setup(t)
	wr := rolloutRoute(e, t)
	wr.Spec.Rollout = nil
	if err := e.c.Create(context.Background(), wr); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, e, "fraud", 30*time.Second, readyRoute, "Ready with both versions pushed")
	testpoll.For(t, 20*time.Second, "a ModelPushed Event naming each version", func() error {
		notes := strings.Join(events(t, e.c, e.ns, "fraud")["ModelPushed"], "\n")
		for _, v := range []string{"fraud@1", "fraud@2"} {
			if !strings.Contains(notes, v) {
				return fmt.Errorf("no ModelPushed Event names %s; notes:\n%s", v, notes)
			}
		}
		return nil
	})
}

// Item 11: after a gateway outage every WeirRoute is retried at once, not
// after the backoff its failures built up meanwhile (here an hour, so a
// WeirRoute that waits for it cannot pass).
func TestRetryAtOnceAfterGatewayOutage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	target, err := url.Parse(e.gw.URL)
	if err != nil {
		t.Fatal(err)
	}
	var down atomic.Bool
	var listings, refused atomic.Int64 // the route watch's GET /v1/routes served, and refused
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			if r.URL.Path == "/v1/routes" {
				refused.Add(1)
			}
			http.Error(w, "gateway away", http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path == "/v1/routes" {
			listings.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	e.start(t, func(o *Options) {
		o.GatewayURL = proxy.URL
		o.RouteWatchInterval = 100 * time.Millisecond
		o.retryBase, o.retryMax = time.Hour, time.Hour
	})
	if err := e.c.Create(ctx, simpleRoute(e, t, "fraud", "fraud")); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, e, "fraud", 30*time.Second, readyRoute, "Ready before the outage")
	// The route watch has listed the applied route: it sees no change when
	// the gateway comes back with the same routes.
	seen := listings.Load()
	testpoll.For(t, 20*time.Second, "three route listings after Ready", func() error {
		if n := listings.Load() - seen; n < 3 {
			return fmt.Errorf("%d listings", n)
		}
		return nil
	})

	down.Store(true)
	updateSpec(t, e.c, e.ns, "fraud", func(s *v1alpha1.WeirRouteSpec) { s.Route.Sticky = &v1alpha1.Sticky{Header: "X-User"} })
	waitRoute(t, e, "fraud", 30*time.Second, func(wr *v1alpha1.WeirRoute) bool {
		return condition(wr, v1alpha1.ConditionRouteApplied, metav1.ConditionUnknown, "GatewayUnavailable")
	}, "the edit failing while the gateway is away")
	testpoll.For(t, 20*time.Second, "the route watch seeing the outage twice", func() error {
		if n := refused.Load(); n < 2 {
			return fmt.Errorf("%d refused listings", n)
		}
		return nil
	})

	down.Store(false)
	waitRoute(t, e, "fraud", 30*time.Second, readyRoute, "Ready soon after the gateway is back (the backoff is an hour)")
	if r := route(t, e.gw, "fraud"); r == nil || r.Sticky == nil || r.Sticky.Header != "X-User" {
		t.Fatalf("gateway route %v, want the sticky edit", r)
	}
}
