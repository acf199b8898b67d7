package controller

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/weirhq/weir/deploy/api/v1alpha1"
	"github.com/weirhq/weir/internal/testpoll"
)

// Item 6: a leader whose own gateway goes down gives the lease up, and a
// standby beside a working gateway takes it; a controller whose gateway is
// down does not take it back.
func TestLeaderWithDeadGatewayGivesUpLease(t *testing.T) {
	cfg, c := startEnv(t)
	ns := newNamespace(t, c)
	createDeployment(t, c, ns, "weir", 1)
	policy := &v1alpha1.ScalingPolicy{MinReplicas: ptr.To[int32](1), MaxReplicas: ptr.To[int32](4), TargetInFlight: ptr.To[int32](10)}
	if err := c.Create(context.Background(), scalingRoute(ns, "r", policy)); err != nil {
		t.Fatal(err)
	}
	start := func(gw string, load *fakeLoad) chan struct{} {
		opts := Options{
			REST: cfg, GatewayURL: gw, Namespace: ns, Deployment: "weir", Source: load, ScaleInterval: 50 * time.Millisecond,
			LeaderElection: true, LeaderElectionID: "weir-test-lease",
			LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond,
			MetricsAddr: "0", HealthAddr: "0", skipNameValidation: true,
		}
		mgr, err := NewManager(cfg, opts)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			if err := mgr.Start(ctx); err != nil {
				t.Logf("manager beside %s stopped: %v", gw, err)
			}
			close(done)
		}()
		t.Cleanup(func() { cancel(); <-done })
		return done
	}
	var firstUp, secondUp atomic.Bool
	firstUp.Store(true)
	first, second := &fakeLoad{}, &fakeLoad{}
	first.set(1, 1)
	second.set(1, 1)
	firstDone := start(healthGateway(t, &firstUp).URL, first)
	testpoll.For(t, 30*time.Second, "the first controller leading", func() error {
		if first.calls.Load() == 0 {
			return fmt.Errorf("no autoscaling step yet")
		}
		return nil
	})
	// The standby's gateway is down too: it must not take the lease when
	// the leader's goes down.
	start(healthGateway(t, &secondUp).URL, second)
	firstUp.Store(false)
	select {
	case <-firstDone:
	case <-time.After(30 * time.Second): // a bound on the wait, not a pause
		t.Fatal("the leader kept running 30s after its gateway went down: it did not give the lease up")
	}
	// Past the lease's expiry (any standby may take it now), the one beside
	// a dead gateway has not.
	testpoll.For(t, 30*time.Second, "the given-up lease a second past its expiry", func() error {
		var l coordinationv1.Lease
		if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "weir-test-lease"}, &l); err != nil {
			return err
		}
		if l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
			return fmt.Errorf("lease %+v", l.Spec)
		}
		if expiry := l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds)*time.Second + time.Second); time.Now().Before(expiry) {
			return fmt.Errorf("lease valid until %v", expiry)
		}
		return nil
	})
	if n := second.calls.Load(); n != 0 {
		t.Fatalf("the standby beside a dead gateway took the lease (%d steps)", n)
	}
	secondUp.Store(true)
	testpoll.For(t, 30*time.Second, "the standby leading once its gateway answers", func() error {
		if second.calls.Load() == 0 {
			return fmt.Errorf("no autoscaling step on the standby yet")
		}
		return nil
	})
}
