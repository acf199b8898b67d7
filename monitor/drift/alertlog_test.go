package drift

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weirhq/weir/internal/testpoll"
)

// leaseGate is a test's stand-in for the alert lease: the test says who
// holds it.
func leaseGate(held *atomic.Bool) func() bool { return held.Load }

// logged says whether m has seen the alert log record feature as drifted.
func logged(m *Monitor, model, version, feature string) error {
	vs, err := m.lookup(model, version)
	if err != nil {
		return err
	}
	vs.mu.Lock()
	defer vs.mu.Unlock()
	fs := vs.inputs[feature]
	if fs == nil || !fs.logKnown || !fs.logDrifted {
		return fmt.Errorf("%s@%s %s not known as alerted drifted", model, version, feature)
	}
	return nil
}

func alertsCounted(ms ...*Monitor) float64 {
	var n float64
	for _, m := range ms {
		n += testutil.ToFloat64(m.met.alerts.WithLabelValues("risk"))
	}
	return n
}

// The lease holder died at the shift: no gateway holding the lease judged
// the crossing. The gateway that takes the lease next, already drifted,
// must publish it, once. (It never did: a crossing judged without the
// lease was only kept for RecentAlerts.)
func TestCrossingJudgedWithoutTheLeaseIsAlertedByTheNextHolder(t *testing.T) {
	e := newEnv(t)
	sink := e.subscribeAlerts(t, "risk")
	var aHolds, bHolds, cHolds atomic.Bool // the holder is elsewhere, and dies
	start := func(name string, held *atomic.Bool) *Monitor {
		m := e.start(t, Options{Durable: name, RecomputeEvery: 50, MinCount: 50, AlertGate: leaseGate(held)})
		if err := m.SetConfig("risk", Config{WindowCount: 400}); err != nil {
			t.Fatal(err)
		}
		m.SetReference("risk", "3", normalRef(t, 4000, 3))
		return m
	}
	a, b := start("a", &aHolds), start("b", &bHolds)
	g := newGen("risk", "3", 9)
	e.publish(t, g.events(400, drawNormal(2, false))...)
	for _, m := range []*Monitor{a, b} {
		waitApplied(t, m, 20*time.Second, 400, "shifted events applied")
		res, err := m.Results("risk", "3")
		if err != nil {
			t.Fatal(err)
		}
		if f := findFeature(t, res, "amount"); !f.Drifted {
			t.Fatalf("amount not drifted after a 2σ shift: %+v", f)
		}
	}
	if got := sink.all(); len(got) != 0 || alertsCounted(a, b) != 0 {
		t.Fatalf("alerts %+v (counted %v) published without the lease", got, alertsCounted(a, b))
	}
	a.Close(t.Context())
	bHolds.Store(true)
	testpoll.For(t, 20*time.Second, "the new holder to publish the crossing", func() error {
		if got := sink.all(); len(got) == 0 {
			return fmt.Errorf("no alert yet")
		}
		return nil
	})
	// Hand the lease to a third gateway that saw the same crossing: once it
	// knows the crossing is alerted, no one else will publish it.
	bHolds.Store(false)
	c := start("c", &cHolds)
	cHolds.Store(true)
	e.publish(t, g.events(400, drawNormal(2, false))...)
	waitApplied(t, c, 20*time.Second, 400, "shifted events applied by the third")
	testpoll.For(t, 20*time.Second, "the third holder to find the crossing alerted", func() error {
		return logged(c, "risk", "3", "amount")
	})
	got := sink.all()
	if len(got) != 1 || got[0].Feature != "amount" || got[0].State != StateDrifted || got[0].Crossing != 1 {
		t.Errorf("alerts = %+v, want one: amount drifted, crossing 1", got)
	}
	if n := alertsCounted(a, b, c); n != 1 {
		t.Errorf("gateways counted %v alerts, want 1", n)
	}
}

// Two processes that both believe they hold the lease (a handover) publish
// one alert between them: the one whose record lands first.
func TestTwoHoldersPublishACrossingOnce(t *testing.T) {
	e := newEnv(t)
	sink := e.subscribeAlerts(t, "risk")
	var held atomic.Bool
	held.Store(true)
	var ms []*Monitor
	for _, name := range []string{"a", "b"} {
		m := e.start(t, Options{Durable: name, RecomputeEvery: 50, MinCount: 50, AlertGate: leaseGate(&held)})
		if err := m.SetConfig("risk", Config{WindowCount: 400}); err != nil {
			t.Fatal(err)
		}
		m.SetReference("risk", "3", normalRef(t, 4000, 3))
		ms = append(ms, m)
	}
	g := newGen("risk", "3", 9)
	e.publish(t, g.events(400, drawNormal(2, false))...)
	for _, m := range ms {
		waitApplied(t, m, 20*time.Second, 400, "shifted events applied")
		testpoll.For(t, 20*time.Second, "both to know the crossing alerted", func() error {
			return logged(m, "risk", "3", "amount")
		})
	}
	if got := sink.all(); len(got) != 1 || alertsCounted(ms...) != 1 {
		t.Errorf("alerts = %+v (counted %v), want one", got, alertsCounted(ms...))
	}
}
