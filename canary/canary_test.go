package canary

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weirhq/weir/internal/natsx"
	"github.com/weirhq/weir/internal/natsx/natstest"
	"github.com/weirhq/weir/internal/testpoll"
	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/router"
)

// testWriter sends the controller's log to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// table is the test's Metrics and Drift: numbers the test sets (the real
// per-variant stats come from the monitor package).
type table struct {
	mu      sync.Mutex
	metrics map[string]VariantMetrics // by variant
	drift   map[string]float64        // by model@version
	windows []time.Time               // "from" of each canary query
}

func newTable() *table {
	return &table{metrics: map[string]VariantMetrics{}, drift: map[string]float64{}}
}

func (t *table) set(variant string, m VariantMetrics) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.metrics[variant] = m
}

func (t *table) VariantMetrics(route, variant string, from, to time.Time) (VariantMetrics, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if variant == "canary" {
		t.windows = append(t.windows, from)
	}
	return t.metrics[variant], nil
}

func (t *table) MaxDrift(model, version string) (float64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d, ok := t.drift[model+"@"+version]
	return d, ok
}

type env struct {
	srv     *natstest.Server
	nc      *nats.Conn
	routes  *router.Store
	metrics *table
	reg     *prometheus.Registry
}

const routeBody = `{"variants":[{"name":"stable","model":"fraud","version":"1","weight":100}],"sticky":{"header":"X-User-Id"}}`

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := natstest.Start(t)
	e := &env{srv: srv, metrics: newTable(), reg: prometheus.NewRegistry()}
	nc, js := srv.Connect(t)
	e.nc = nc
	st, err := router.OpenStore(context.Background(), js, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	e.routes = st
	if _, err := st.Put(context.Background(), "fraud", []byte(routeBody)); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) controller(t *testing.T, owner string) *Controller {
	c, _ := e.controllerConn(t, owner)
	return c
}

// controllerConn starts a controller on its own connection (returned).
// Close releases its lease at once.
func (e *env) controllerConn(t *testing.T, owner string) (*Controller, *nats.Conn) {
	t.Helper()
	nc, js := e.srv.Connect(t)
	c, err := New(context.Background(), Options{
		JS: js, Conn: nc, Routes: e.routes, Metrics: e.metrics, Drift: e.metrics,
		Logger:     slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		Registerer: e.reg, Tick: 10 * time.Millisecond, Owner: owner,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c, nc
}

// watchTransitions collects what is published on weir.rollouts.fraud.
func (e *env) watchTransitions(t *testing.T) func() []Transition {
	t.Helper()
	var mu sync.Mutex
	var got []Transition
	sub, err := e.nc.Subscribe("weir.rollouts.fraud", func(m *nats.Msg) {
		var tr Transition
		if err := json.Unmarshal(m.Data, &tr); err != nil {
			t.Errorf("bad transition JSON %s: %v", m.Data, err)
		}
		mu.Lock()
		got = append(got, tr)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return func() []Transition {
		mu.Lock()
		defer mu.Unlock()
		return append([]Transition(nil), got...)
	}
}

func (e *env) variants(t *testing.T) map[string]router.Variant {
	t.Helper()
	r, ok := e.routes.Get("fraud")
	if !ok {
		t.Fatal("route gone")
	}
	out := map[string]router.Variant{}
	for _, v := range r.Variants() {
		out[v.Name] = v
	}
	return out
}

func f(v float64) *float64 { return &v }

func spec(interval time.Duration, steps ...int) Spec {
	return Spec{Variant: "canary", Model: "fraud", Version: "2", Steps: steps, Interval: Duration(interval),
		MaxErrorRate: f(0.01), MaxP99Ms: f(50), MaxDrift: Limit(0.25), MinRequests: 100}
}

func waitState(t *testing.T, c *Controller, want State) *Status {
	t.Helper()
	var st *Status
	testpoll.For(t, 10*time.Second, fmt.Sprintf("rollout in state %s with its route applied", want), func() error {
		var err error
		if st, err = c.Status(context.Background(), "fraud"); err != nil {
			return err
		}
		if st.State != want || !st.RouteApplied {
			return errors.New(brief(st))
		}
		return nil
	})
	return st
}

// brief is a rollout's status in one line, for a wait's last state.
func brief(st *Status) string {
	return fmt.Sprintf("state %s, step %d, weight %d, waiting %v, route applied %v, canary requests %d, reason %q",
		st.State, st.Step, st.Weight, st.Waiting, st.RouteApplied, st.Variants["canary"].Requests, st.Reason)
}

// published lists transitions as a wait's last state.
func published(trs []Transition) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d published", len(trs))
	for i, tr := range trs {
		fmt.Fprintf(&b, "; %d: to %s (%s)", i, tr.To, tr.Reason)
	}
	return b.String()
}

// waitLeader waits for c, named name, to hold the lease.
func waitLeader(t *testing.T, c *Controller, name string) {
	t.Helper()
	// A released lease is taken at the next try, every natsx.LeaseTTL/3.
	testpoll.For(t, 2*natsx.LeaseTTL, name+" to take the lease", func() error {
		if !c.Leader() {
			return errors.New(name + " does not lead")
		}
		return nil
	})
}

func TestGoodCanaryPromoted(t *testing.T) {
	e := newEnv(t)
	got := e.watchTransitions(t)
	c := e.controller(t, "a")
	e.metrics.set("canary", VariantMetrics{Requests: 500, Errors: 1, P99: 12 * time.Millisecond})
	e.metrics.set("stable", VariantMetrics{Requests: 4500, Errors: 2, P99: 10 * time.Millisecond})
	e.metrics.drift["fraud@2"] = 0.1

	st, err := c.Start(context.Background(), "fraud", spec(50*time.Millisecond, 10, 25, 50, 100))
	if err != nil {
		t.Fatal(err)
	}
	// The 50ms interval may already have moved it on; the start is step 0 at 10%.
	if st.State != Progressing || st.History[0].Weight != 10 || st.History[0].To != Progressing {
		t.Fatalf("after start: %+v", st)
	}
	st = waitState(t, c, Promoted)
	vs := e.variants(t)
	if len(vs) != 1 || vs["stable"].Version != "2" || vs["stable"].Weight != 100 {
		t.Fatalf("route after promotion: %+v", vs)
	}
	var weights []int
	for _, h := range st.History {
		weights = append(weights, h.Weight)
	}
	if want := []int{10, 25, 50, 100, 100}; !equal(weights, want) {
		t.Fatalf("history weights %v, want %v", weights, want)
	}
	if last := st.History[len(st.History)-1]; last.To != Promoted || !strings.Contains(last.Reason, "analysis passed at 100%") {
		t.Fatalf("last transition %+v", last)
	}
	if st.Variants["canary"].Requests != 500 || st.Variants["stable"].Requests != 4500 || st.Drift == nil || *st.Drift != 0.1 {
		t.Fatalf("status figures: %+v drift %v", st.Variants, st.Drift)
	}
	testpoll.For(t, 2*time.Second, "5 published transitions", func() error {
		if tr := got(); len(tr) != 5 {
			return errors.New(published(tr))
		}
		return nil
	})
	for i, tr := range got() {
		if tr.Route != "fraud" || tr.TS.IsZero() || tr.Weight != weights[i] || tr.By != "a" {
			t.Errorf("published transition %d: %+v", i, tr)
		}
	}
	if n := testutil.ToFloat64(c.transitions.WithLabelValues("fraud", "promoted")); n != 1 {
		t.Errorf("promoted counter %v", n)
	}
	if n := testutil.ToFloat64(c.transitions.WithLabelValues("fraud", "progressing")); n != 4 {
		t.Errorf("progressing counter %v", n)
	}
	// Each step's analysis window starts at that step's start.
	e.metrics.mu.Lock()
	defer e.metrics.mu.Unlock()
	for _, w := range e.metrics.windows {
		ok := false
		for _, h := range st.History {
			ok = ok || w.Equal(h.TS) || w.Equal(st.StartedAt)
		}
		if !ok {
			t.Errorf("metrics window from %v is no step start", w)
		}
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRollbacks(t *testing.T) {
	cases := []struct {
		name   string
		canary VariantMetrics
		drift  float64
		reason string
	}{
		{"error rate", VariantMetrics{Requests: 200, Errors: 40, P99: time.Millisecond}, 0, "error rate 0.2 over max_error_rate 0.01 at 10% (40 of 200 canary requests failed)"},
		{"p99", VariantMetrics{Requests: 200, P99: 80 * time.Millisecond}, 0, "p99 80ms over max_p99_ms 50 at 10% (200 canary requests)"},
		{"drift (absolute)", VariantMetrics{Requests: 200, P99: time.Millisecond}, 0.4, "drift 0.4 over max_drift 0.25 at 10%"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			got := e.watchTransitions(t)
			c := e.controller(t, "a")
			e.metrics.set("canary", tc.canary)
			e.metrics.drift["fraud@2"] = tc.drift
			s := spec(100*time.Millisecond, 10, 50, 100)
			s.DriftMode = DriftAbsolute
			if _, err := c.Start(context.Background(), "fraud", s); err != nil {
				t.Fatal(err)
			}
			st := waitState(t, c, RolledBack)
			// Rolled back at the first analysis: within one interval, still
			// on the first step.
			if st.Reason != tc.reason || st.Step != 0 || st.Decision != "rollback" || len(st.History) != 2 {
				t.Fatalf("status: reason %q step %d decision %s history %d", st.Reason, st.Step, st.Decision, len(st.History))
			}
			if vs := e.variants(t); vs["stable"].Weight != 100 || vs["canary"].Weight != 0 || vs["stable"].Version != "1" {
				t.Fatalf("route after rollback: %+v", vs)
			}
			testpoll.For(t, 2*time.Second, "the rollback transition published", func() error {
				if tr := got(); len(tr) != 2 || tr[1].To != RolledBack || tr[1].Reason != tc.reason {
					return errors.New(published(tr))
				}
				return nil
			})
			if n := testutil.ToFloat64(c.transitions.WithLabelValues("fraud", "rolled_back")); n != 1 {
				t.Errorf("rolled_back counter %v", n)
			}
		})
	}
}

func TestZeroTrafficWaits(t *testing.T) {
	e := newEnv(t)
	c := e.controller(t, "a")
	if _, err := c.Start(context.Background(), "fraud", spec(30*time.Millisecond, 10, 100)); err != nil {
		t.Fatal(err)
	}
	testpoll.For(t, 5*time.Second, "the rollout waiting with 0 of 100 requests", func() error {
		st, err := c.Status(context.Background(), "fraud")
		if err != nil {
			return err
		}
		if !(st.Waiting && st.Reason == "waiting: 0 of 100 requests" && st.State == Progressing) {
			return errors.New(brief(st))
		}
		return nil
	})
	e.metrics.set("canary", VariantMetrics{Requests: 12})
	testpoll.For(t, 5*time.Second, "the rollout waiting with 12 of 100 requests", func() error {
		st, err := c.Status(context.Background(), "fraud")
		if err != nil {
			return err
		}
		if !(st.Reason == "waiting: 12 of 100 requests" && st.Step == 0 && st.Variants["canary"].Requests == 12) {
			return errors.New(brief(st))
		}
		return nil
	})
	e.metrics.set("canary", VariantMetrics{Requests: 150})
	testpoll.For(t, 5*time.Second, "the rollout past step 0 with 150 requests", func() error {
		st, err := c.Status(context.Background(), "fraud")
		if err != nil {
			return err
		}
		if !(st.Step == 1 && !st.Waiting) {
			return errors.New(brief(st))
		}
		return nil
	})
}

func TestManualOperations(t *testing.T) {
	e := newEnv(t)
	got := e.watchTransitions(t)
	c := e.controller(t, "a")
	ctx := context.Background()
	long := spec(time.Hour, 20, 100)

	if _, err := c.Status(ctx, "fraud"); weirerr.KindOf(err) != weirerr.NotFound {
		t.Fatalf("status before any rollout: %v", err)
	}
	if _, err := c.Pause(ctx, "fraud"); weirerr.KindOf(err) != weirerr.NotFound {
		t.Fatalf("pause before any rollout: %v", err)
	}
	if _, err := c.Start(ctx, "nope", long); weirerr.KindOf(err) != weirerr.NotFound {
		t.Fatalf("unknown route: %v", err)
	}
	if _, err := c.Start(ctx, "fraud", long); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Start(ctx, "fraud", long); weirerr.KindOf(err) != weirerr.Conflict {
		t.Fatalf("second start: %v", err)
	}
	st, err := c.Pause(ctx, "fraud")
	if err != nil || st.State != Paused || st.Reason != "paused by user" {
		t.Fatalf("pause: %+v %v", st, err)
	}
	if st, err := c.Pause(ctx, "fraud"); err != nil || st.State != Paused {
		t.Fatalf("pause again: %v", err)
	}
	if vs := e.variants(t); vs["canary"].Weight != 20 {
		t.Fatalf("pause changed weights: %+v", vs)
	}
	if st, err = c.Resume(ctx, "fraud"); err != nil || st.State != Progressing {
		t.Fatalf("resume: %+v %v", st, err)
	}
	if st, err = c.Promote(ctx, "fraud"); err != nil || st.State != Promoted || !st.RouteApplied {
		t.Fatalf("promote: %+v %v", st, err)
	}
	if vs := e.variants(t); len(vs) != 1 || vs["stable"].Version != "2" || vs["stable"].Weight != 100 {
		t.Fatalf("route after promote: %+v", vs)
	}
	for _, op := range []func(context.Context, string) (*Status, error){c.Promote, c.Pause, c.Resume, c.Abort} {
		if _, err := op(ctx, "fraud"); weirerr.KindOf(err) != weirerr.Conflict {
			t.Fatalf("operation on a promoted rollout: %v", err)
		}
	}

	// A new rollout on the same route, aborted.
	next := long
	next.Version = "3"
	if st, err = c.Start(ctx, "fraud", next); err != nil || st.Weight != 20 {
		t.Fatalf("second rollout: %+v %v", st, err)
	}
	if vs := e.variants(t); vs["canary"].Version != "3" || vs["stable"].Version != "2" || vs["stable"].Weight != 80 {
		t.Fatalf("route during second rollout: %+v", vs)
	}
	if st, err = c.Abort(ctx, "fraud"); err != nil || st.State != RolledBack || st.Reason != "aborted by user" || st.Weight != 0 {
		t.Fatalf("abort: %+v %v", st, err)
	}
	if vs := e.variants(t); vs["stable"].Weight != 100 || vs["canary"].Weight != 0 {
		t.Fatalf("route after abort: %+v", vs)
	}
	wantTo := []State{Progressing, Paused, Progressing, Promoted, Progressing, RolledBack}
	testpoll.For(t, 2*time.Second, fmt.Sprintf("%d published transitions", len(wantTo)), func() error {
		if tr := got(); len(tr) != len(wantTo) {
			return errors.New(published(tr))
		}
		return nil
	})
	for i, tr := range got() {
		if tr.To != wantTo[i] {
			t.Errorf("transition %d to %s, want %s", i, tr.To, wantTo[i])
		}
	}
}

func TestStartValidation(t *testing.T) {
	e := newEnv(t)
	c := e.controller(t, "a")
	if _, err := e.routes.Put(context.Background(), "three", []byte(`{"variants":[{"name":"stable","model":"m","weight":80},{"name":"b","model":"m","weight":20}]}`)); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, route, body, want string
	}{
		{"steps not increasing", "fraud", `{"model":"fraud","version":"2","steps":[5,5,100]}`, "rollout field steps[1] is 5 after 5: expected strictly increasing weights"},
		{"steps not ending at 100", "fraud", `{"model":"fraud","version":"2","steps":[5,50]}`, "rollout field steps ends at 50: expected the last step to be 100"},
		{"step zero", "fraud", `{"model":"fraud","version":"2","steps":[0,100]}`, "rollout field steps[0] is 0: expected a weight from 1 to 100"},
		{"interval bad", "fraud", `{"model":"fraud","version":"2","interval":"soon"}`, `rollout field interval is "soon": expected a duration such as "30s" or "500ms"`},
		{"interval short", "fraud", `{"model":"fraud","version":"2","interval":"1ms"}`, "rollout field interval is 1ms: expected at least 10ms"},
		{"negative threshold", "fraud", `{"model":"fraud","version":"2","max_p99_ms":-1}`, "rollout field max_p99_ms is -1: expected a number >= 0"},
		{"no model", "fraud", `{"version":"2"}`, `rollout field model is "": expected the canary's model name`},
		{"unknown field", "fraud", `{"model":"fraud","stepz":[1]}`, `rollout has unknown field "stepz": expected variant, model, version, steps, interval, max_error_rate, max_p99_ms, max_drift, drift_mode, min_requests`},
		{"other variant has weight", "three", `{"model":"m","version":"2"}`, `route "three" has variant "b" with weight 20: a rollout moves traffic between the stable variant "stable" and the canary "canary" only; set other variants to weight 0 first`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSpec([]byte(tc.body))
			if err == nil {
				_, err = c.Start(context.Background(), tc.route, s)
			}
			if weirerr.KindOf(err) != weirerr.Invalid || err.Error() != tc.want {
				t.Fatalf("got %v (kind %v)\nwant %s", err, weirerr.KindOf(err), tc.want)
			}
		})
	}
	s, err := ParseSpec([]byte(`{"model":"fraud","version":"2"}`))
	if err != nil || s.Variant != "canary" || !equal(s.Steps, DefaultSteps) || time.Duration(s.Interval) != DefaultInterval {
		t.Fatalf("defaults: %+v %v", s, err)
	}
}

// Two controllers on one NATS: only the lease holder acts; when it stops,
// the other takes over and continues from the persisted step.
func TestLeaseTakeover(t *testing.T) {
	e := newEnv(t)
	a := e.controller(t, "a")
	waitLeader(t, a, "a") // a starts first and takes the lease
	b := e.controller(t, "b")
	e.metrics.set("canary", VariantMetrics{Requests: 500, P99: time.Millisecond})

	// Any replica can start a rollout; the lease holder drives it.
	if _, err := b.Start(context.Background(), "fraud", spec(40*time.Millisecond, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)); err != nil {
		t.Fatal(err)
	}
	testpoll.For(t, 5*time.Second, "a to move the rollout to step 2", func() error {
		st, err := a.Status(context.Background(), "fraud")
		if err != nil {
			return err
		}
		if st.Step < 2 {
			return errors.New(brief(st))
		}
		return nil
	})
	if b.Leader() {
		t.Fatal("both controllers hold the lease")
	}
	// Hold the rollout where it is, then stop the leader.
	e.metrics.set("canary", VariantMetrics{Requests: 0})
	a.Close(context.Background())
	waitLeader(t, b, "b")
	held, _ := b.Status(context.Background(), "fraud")
	e.metrics.set("canary", VariantMetrics{Requests: 500, P99: time.Millisecond})

	st := waitState(t, b, Promoted)
	prevStep, prevWeight := -1, 0
	for _, h := range st.History[1:] { // [0] is the start, made by b
		if h.Weight < prevWeight || (h.To == Progressing && h.Step <= prevStep) {
			t.Fatalf("rollout went backwards: %+v", st.History)
		}
		prevStep, prevWeight = h.Step, h.Weight
		wantBy := "a"
		if h.Step > held.Step || h.To == Promoted {
			wantBy = "b"
		}
		if h.By != wantBy {
			t.Errorf("step %d (weight %d) made by %q, want %q (held at step %d)", h.Step, h.Weight, h.By, wantBy, held.Step)
		}
	}
}

// A lease holder that loses NATS stops acting, and another replica takes
// over once the lease expires (no Close, no release).
func TestLeaseExpiry(t *testing.T) {
	e := newEnv(t)
	a, anc := e.controllerConn(t, "a")
	waitLeader(t, a, "a")
	b, _ := e.controllerConn(t, "b")
	anc.Close() // a is cut off from NATS without releasing its lease
	testpoll.For(t, 3*natsx.LeaseTTL, "b to take over the expired lease", func() error {
		if a, b := a.Leader(), b.Leader(); !b || a {
			return fmt.Errorf("a leads: %v, b leads: %v", a, b)
		}
		return nil
	})
}

// TestLeaseOnServerTime pins issue 27 item 8: a holder that died with its
// clock an hour ahead (its records say it holds the lease for an hour) holds
// it only until the server expires it, not until its own clock said.
func TestLeaseOnServerTime(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, js := e.srv.Connect(t)
	// The ghost took the lease (natsx's key, and a record of the former
	// format) and died.
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: natsx.LeaseBucket, TTL: natsx.LeaseTTL, History: 1, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, LeaseName, []byte("ghost")); err != nil {
		t.Fatal(err)
	}
	rollouts, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: Bucket, History: 5})
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := json.Marshal(map[string]any{"owner": "ghost", "expires": time.Now().Add(time.Hour)})
	if _, err := rollouts.Create(ctx, "lease", rec); err != nil {
		t.Fatal(err)
	}
	c := e.controller(t, "a")
	if c.Leader() {
		t.Fatal("took a lease the ghost still holds")
	}
	testpoll.For(t, 3*natsx.LeaseTTL, "a to take the lease once the server expired the ghost's", func() error {
		if !c.Leader() {
			return errors.New("a does not lead")
		}
		return nil
	})
}

func TestRouteDeletedEndsRollout(t *testing.T) {
	e := newEnv(t)
	c := e.controller(t, "a")
	waitLeader(t, c, "c")
	if _, err := c.Start(context.Background(), "fraud", spec(time.Hour, 50, 100)); err != nil {
		t.Fatal(err)
	}
	if err := e.routes.Delete(context.Background(), "fraud"); err != nil {
		t.Fatal(err)
	}
	testpoll.For(t, 5*time.Second, "the rollout rolled back after its route was deleted", func() error {
		st, err := c.Status(context.Background(), "fraud")
		if err != nil {
			return err
		}
		if !(st.State == RolledBack && st.Reason == "route deleted" && st.RouteApplied) {
			return errors.New(brief(st))
		}
		return nil
	})
}

// A promoted canary of a plugin version folds its chain into the route's,
// so the route names the version it runs and the old one is free; while
// another variant still runs the route's chain, the stable variant keeps
// its own instead.
func TestPromotedPluginCanaryFoldsIntoRoute(t *testing.T) {
	for _, tc := range []struct {
		name, other string
		fold        bool
	}{
		{"alone", "", true},
		{"another variant on the route's chain", `,{"name":"old","model":"fraud","version":"1","weight":0}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			c := e.controller(t, "a")
			ctx := context.Background()
			body := `{"plugins":[{"name":"ratio","version":"1","config":{"k":1}}],
				"postprocess":[{"name":"decision","version":"1"}],
				"variants":[{"name":"stable","model":"fraud","version":"1","weight":100}` + tc.other + `,
					{"name":"canary","model":"fraud","version":"1","weight":0,"plugins":[{"name":"ratio","version":"2","config":{"k":1}}]}]}`
			if _, err := e.routes.Put(ctx, "fraud", []byte(body)); err != nil {
				t.Fatal(err)
			}
			s := spec(time.Hour, 50, 100)
			s.Version = "1"
			if _, err := c.Start(ctx, "fraud", s); err != nil {
				t.Fatal(err)
			}
			if st, err := c.Promote(ctx, "fraud"); err != nil || !st.RouteApplied {
				t.Fatalf("promote: %+v %v", st, err)
			}
			r, _ := e.routes.Get("fraud")
			vs := e.variants(t)
			stable := vs["stable"]
			if _, ok := vs["canary"]; ok {
				t.Errorf("the canary variant is still there: %+v", vs)
			}
			if got := r.PluginsFor(&stable); len(got) != 1 || got[0].Version != "2" || string(got[0].Config) != `{"k":1}` {
				t.Errorf("stable runs %+v, want ratio@2 with its config", got)
			}
			if got := r.PostprocessFor(&stable); len(got) != 1 || got[0].Name != "decision" {
				t.Errorf("stable's postprocess %+v, want the route's decision@1", got)
			}
			if tc.fold {
				if p := r.Plugins(); len(p) != 1 || p[0].Version != "2" || stable.Plugins != nil {
					t.Errorf("route chain %+v, stable's own %v: want ratio@2 in the route's chain, none of its own", p, stable.Plugins)
				}
			} else if p := r.Plugins(); len(p) != 1 || p[0].Version != "1" || vs["old"].Plugins != nil {
				t.Errorf("route chain %+v: want ratio@1 kept for variant old", p)
			}
			if r.Postprocess()[0].Version != "1" || stable.Postprocess != nil {
				t.Errorf("the postprocess chain changed: %+v, stable's %v", r.Postprocess(), stable.Postprocess)
			}
		})
	}
}
