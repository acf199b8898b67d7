package drift

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weirhq/weir/internal/natsx/natstest"
	"github.com/weirhq/weir/internal/testpoll"
	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/monitor"
	"github.com/weirhq/weir/monitor/event"
)

// env is a real embedded NATS server with the events stream.
type env struct {
	nc *nats.Conn
	js jetstream.JetStream
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s := natstest.Start(t)
	nc, js := s.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The event publisher owns this stream in the gateway; tests create it.
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:     monitor.StreamEvents,
		Subjects: []string{monitor.SubjectEventsPrefix + ">"},
	}); err != nil {
		t.Fatal(err)
	}
	return &env{nc: nc, js: js}
}

// start builds and starts a Monitor on the env, closed when the test ends.
func (e *env) start(t *testing.T, o Options) *Monitor {
	t.Helper()
	o.JS = e.js
	o.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return m
}

// publish sends events as JSON on weir.events.<route> and waits for
// JetStream to store them all.
func (e *env) publish(t *testing.T, evs ...monitor.Event) {
	t.Helper()
	wait := func() {
		select {
		case <-e.js.PublishAsyncComplete():
		case <-time.After(20 * time.Second):
			t.Fatal("events not stored within 20s")
		}
	}
	for i := range evs {
		data, err := json.Marshal(&evs[i])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.js.PublishAsync(monitor.SubjectEventsPrefix+evs[i].Route, data); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 999 { // stay well under the client's 4000 outstanding publishes
			wait()
		}
	}
	wait()
}

// alertSink collects the drift alerts published on NATS. It uses a channel
// subscription: the connection's reader puts each message into the channel
// before it reads anything after it, so once a Flush round trip returns every
// alert published before it is in the channel (a callback subscription could
// still be running behind).
type alertSink struct {
	t   *testing.T
	nc  *nats.Conn
	ch  chan *nats.Msg
	got []Alert
}

func (e *env) subscribeAlerts(t *testing.T, model string) *alertSink {
	t.Helper()
	s := &alertSink{t: t, nc: e.nc, ch: make(chan *nats.Msg, 4096)}
	sub, err := e.nc.ChanSubscribe(monitor.SubjectDriftPrefix+model, s.ch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return s
}

// all returns every alert published so far. The monitor publishes on the
// same connection, so the flush orders its alerts before the drain.
func (s *alertSink) all() []Alert {
	s.t.Helper()
	if err := s.nc.Flush(); err != nil {
		s.t.Fatal(err)
	}
	for {
		select {
		case msg := <-s.ch:
			var a Alert
			if err := json.Unmarshal(msg.Data, &a); err != nil {
				s.t.Fatalf("alert is not JSON: %v: %s", err, msg.Data)
			}
			s.got = append(s.got, a)
		default:
			return append([]Alert(nil), s.got...)
		}
	}
}

// gen makes events whose features are drawn by f, one millisecond apart.
type gen struct {
	model, version string
	rng            *rand.Rand
	t0             time.Time
	n              int
}

func newGen(model, version string, seed uint64) *gen {
	return &gen{model: model, version: version, rng: rand.New(rand.NewPCG(seed, seed+1)), t0: time.Now().UTC()}
}

func (g *gen) events(count int, f func(r *rand.Rand) (features, outputs map[string]any)) []monitor.Event {
	out := make([]monitor.Event, count)
	for i := range out {
		feats, outs := f(g.rng)
		out[i] = monitor.Event{
			ID: fmt.Sprintf("%s-%d", g.model, g.n), TS: g.t0.Add(time.Duration(g.n) * time.Millisecond),
			Route: g.model, Variant: "stable", Model: g.model, Version: g.version,
			Features: feats, Outputs: outs, Status: 200,
		}
		g.n++
	}
	return out
}

// normalRef is a reference CSV of amount ~ N(0,1), score ~ N(10,2) and
// channel ∈ {web .6, app .3, pos .1}.
func normalRef(t *testing.T, rows int, seed uint64) *Reference {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed))
	var b strings.Builder
	b.WriteString("amount,score,channel\n")
	for range rows {
		fmt.Fprintf(&b, "%.6f,%.6f,%s\n", r.NormFloat64(), 10+2*r.NormFloat64(), channel(r, false))
	}
	ref, err := ParseReference([]byte(b.String()), "text/csv")
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func channel(r *rand.Rand, shifted bool) string {
	u := r.Float64()
	if shifted { // web .2, app .3, pos .2, kiosk (unseen) .3
		switch {
		case u < .2:
			return "web"
		case u < .5:
			return "app"
		case u < .7:
			return "pos"
		}
		return "kiosk"
	}
	switch {
	case u < .6:
		return "web"
	case u < .9:
		return "app"
	}
	return "pos"
}

func drawNormal(shiftAmount float64, shiftChannel bool) func(r *rand.Rand) (map[string]any, map[string]any) {
	return func(r *rand.Rand) (map[string]any, map[string]any) {
		return map[string]any{
			"amount":  r.NormFloat64() + shiftAmount,
			"score":   10 + 2*r.NormFloat64(),
			"channel": channel(r, shiftChannel),
		}, nil
	}
}

// waitApplied waits for m to have applied want events in all; a timeout
// reports how many it had applied and ignored.
func waitApplied(t *testing.T, m *Monitor, timeout time.Duration, want int64, what string) {
	t.Helper()
	testpoll.For(t, timeout, what, func() error {
		if a, ig := m.Stats(); a != want {
			return fmt.Errorf("%d of %d events applied, %d ignored", a, want, ig)
		}
		return nil
	})
}

// ackState is a durable consumer's acknowledgement state in one line, for
// a wait's last state.
func ackState(info *jetstream.ConsumerInfo) string {
	return fmt.Sprintf("ack pending %d, pending %d, redelivered %d, ack floor %d", info.NumAckPending, info.NumPending, info.NumRedelivered, info.AckFloor.Stream)
}

func findFeature(t *testing.T, res []FeatureDrift, name string) FeatureDrift {
	t.Helper()
	for _, f := range res {
		if f.Feature == name {
			return f
		}
	}
	t.Fatalf("no result for feature %q in %+v", name, res)
	return FeatureDrift{}
}

// Traffic drawn from the reference distribution for 20 full windows must not
// raise a single alert: about 600 judgements (3 features, every 100 values)
// with no false alarm bounds the false-alarm rate well below 1%.
func TestNoAlertsWithoutDrift(t *testing.T) {
	e := newEnv(t)
	sink := e.subscribeAlerts(t, "fraud")
	m := e.start(t, Options{RecomputeEvery: 100, Default: Config{WindowCount: 1000}})
	m.SetReference("fraud", "1", normalRef(t, 5000, 1))

	g := newGen("fraud", "1", 42)
	const total = 20 * 1000
	for range 4 {
		e.publish(t, g.events(total/4, drawNormal(0, false))...)
	}
	waitApplied(t, m, 30*time.Second, total, "all events applied")

	res, err := m.Results("fraud", "1")
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 {
		t.Fatalf("got %d results, want 3: %+v", len(res), res)
	}
	judged := m.judged.Load()
	if judged < 3*total/100 {
		t.Fatalf("only %d judgements for %d events, want at least %d", judged, total, 3*total/100)
	}
	if got := sink.all(); len(got) != 0 {
		t.Fatalf("false alarms: %d alerts in %d judgements of undrifted traffic: %+v", len(got), judged, got)
	}
	for _, f := range res {
		if f.Drifted || f.State != StateOK || f.Window.Count != 1000 || f.Reference != "uploaded" {
			t.Errorf("feature %s: %+v, want ok, not drifted, 1000 values, uploaded reference", f.Feature, f)
		}
		// PSI of 1000 values from the reference itself is about
		// (bins-1)·(1/1000+1/5000) ≈ 0.01; a tenth of the threshold is ample.
		if f.Value > 0.1*f.Threshold {
			t.Errorf("feature %s: psi %v on undrifted traffic, want below %v", f.Feature, f.Value, 0.1*f.Threshold)
		}
	}
	if v, ok := m.MaxDrift("fraud", "1"); !ok || v > 0.025 {
		t.Errorf("MaxDrift = %v, %v; want a small value and ok", v, ok)
	}
	if got := len(m.RecentAlerts(10)); got != 0 {
		t.Errorf("RecentAlerts holds %d alerts, want 0", got)
	}
}

// A shift of one standard deviation in one feature raises exactly one alert,
// for that feature, before one window of shifted traffic has passed; the
// webhook gets it too, and the metrics say so.
func TestShiftRaisesOneAlertWithinOneWindow(t *testing.T) {
	e := newEnv(t)
	sink := e.subscribeAlerts(t, "fraud")
	var hookMu sync.Mutex
	var hooks []Alert
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var a Alert
		if err := json.Unmarshal(body, &a); err != nil || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("webhook got %q (%s): %v", body, r.Header.Get("Content-Type"), err)
		}
		hookMu.Lock()
		hooks = append(hooks, a)
		hookMu.Unlock()
	}))
	t.Cleanup(hook.Close)
	reg := prometheus.NewRegistry()
	m := e.start(t, Options{RecomputeEvery: 50, Registerer: reg})
	if err := m.SetConfig("fraud", Config{Webhook: hook.URL, WindowCount: 1000}); err != nil {
		t.Fatal(err)
	}
	m.SetReference("fraud", "1", normalRef(t, 5000, 1))

	g := newGen("fraud", "1", 7)
	e.publish(t, g.events(1000, drawNormal(0, false))...)
	waitApplied(t, m, 20*time.Second, 1000, "baseline applied")

	shiftedSeen := -1
	for chunk := 1; chunk <= 10 && shiftedSeen < 0; chunk++ {
		e.publish(t, g.events(100, drawNormal(1, false))...)
		want := int64(1000 + 100*chunk)
		waitApplied(t, m, 20*time.Second, want, "chunk applied")
		if _, err := m.Results("fraud", "1"); err != nil { // judges what is pending
			t.Fatal(err)
		}
		if len(sink.all()) > 0 {
			shiftedSeen = 100 * chunk
		}
	}
	if shiftedSeen < 0 {
		t.Fatal("no alert after a full window of shifted traffic")
	}
	t.Logf("alert after %d shifted events", shiftedSeen)
	// The rest of the window drifts further: still only the one alert.
	e.publish(t, g.events(1000, drawNormal(1, false))...)
	waitApplied(t, m, 20*time.Second, int64(2000+shiftedSeen), "all applied")
	res, err := m.Results("fraud", "1")
	if err != nil {
		t.Fatal(err)
	}
	got := sink.all()
	if len(got) != 1 {
		t.Fatalf("got %d alerts, want exactly 1: %+v", len(got), got)
	}
	a := got[0]
	if a.Model != "fraud" || a.Version != "1" || a.Feature != "amount" || a.State != StateDrifted ||
		a.Metric != MetricPSI || a.Threshold != 0.25 || a.Value < 0.25 || a.Kind != KindNumeric || a.TS.IsZero() {
		t.Errorf("alert = %+v, want fraud/1 amount drifted psi >= 0.25", a)
	}
	amount := findFeature(t, res, "amount")
	if !amount.Drifted || amount.State != StateDrifted || amount.Metrics == nil || amount.Metrics.KSP == nil || *amount.Metrics.KSP > 1e-6 {
		t.Errorf("amount = %+v, want drifted with a tiny KS p-value", amount)
	}
	if f := findFeature(t, res, "score"); f.Drifted {
		t.Errorf("score drifted without a shift: %+v", f)
	}
	if v, ok := m.MaxDrift("fraud", "1"); !ok || v != amount.Value {
		t.Errorf("MaxDrift = %v, %v; want amount's %v", v, ok, amount.Value)
	}
	if recent := m.RecentAlerts(5); len(recent) != 1 || recent[0].Feature != "amount" {
		t.Errorf("RecentAlerts = %+v, want the one alert", recent)
	}
	testpoll.For(t, 10*time.Second, "webhook delivery", func() error {
		hookMu.Lock()
		defer hookMu.Unlock()
		if len(hooks) != 1 || hooks[0].Feature != "amount" || hooks[0].State != StateDrifted {
			return fmt.Errorf("%d webhooks delivered: %+v", len(hooks), hooks)
		}
		return nil
	})
	if v := testutil.ToFloat64(m.met.drifted.WithLabelValues("fraud", "1", "amount")); v != 1 {
		t.Errorf("weir_drift_drifted{feature=amount} = %v, want 1", v)
	}
	if v := testutil.ToFloat64(m.met.alerts.WithLabelValues("fraud")); v != 1 {
		t.Errorf("weir_drift_alerts_total = %v, want 1", v)
	}
	if n, err := testutil.GatherAndCount(reg, "weir_drift_score"); err != nil || n != 3*5+2*2+1 {
		t.Errorf("weir_drift_score series = %d (%v), want 20 (5 per feature, ks and ks_p for 2 numeric, chi2_p for 1 categorical)", n, err)
	}
}

// Hysteresis: a drifted feature stays drifted while its value is between
// RecoverRatio·threshold and threshold, recovers below, and drifts again
// above the threshold: three alerts, one per crossing.
func TestRecoveryAndRealertWithHysteresis(t *testing.T) {
	e := newEnv(t)
	sink := e.subscribeAlerts(t, "risk")
	m := e.start(t, Options{RecomputeEvery: 50, MinCount: 50})
	if err := m.SetConfig("risk", Config{WindowCount: 400}); err != nil {
		t.Fatal(err)
	}
	m.SetReference("risk", "3", normalRef(t, 4000, 3))
	g := newGen("risk", "3", 9)
	total := int64(0)
	feed := func(n int, shift float64) {
		t.Helper()
		e.publish(t, g.events(n, drawNormal(shift, false))...)
		total += int64(n)
		waitApplied(t, m, 20*time.Second, total, "events applied")
	}
	amount := func() FeatureDrift {
		t.Helper()
		res, err := m.Results("risk", "3")
		if err != nil {
			t.Fatal(err)
		}
		return findFeature(t, res, "amount")
	}
	states := func() []string {
		var s []string
		for _, a := range sink.all() {
			s = append(s, a.Feature+":"+a.State)
		}
		return s
	}

	feed(400, 2) // a whole window far off
	first := amount()
	if !first.Drifted {
		t.Fatalf("amount not drifted after a 2σ shift: %+v", first)
	}
	v := first.Value
	// Threshold just above the value, but the value above 0.8 of it: stays
	// drifted, no alert.
	if err := m.SetConfig("risk", Config{WindowCount: 400, Threshold: v / 0.9}); err != nil {
		t.Fatal(err)
	}
	if f := amount(); !f.Drifted {
		t.Errorf("recovered while value %v >= 0.8·threshold %v", f.Value, f.Threshold)
	}
	// Threshold so high the value is below 0.8 of it: recovers.
	if err := m.SetConfig("risk", Config{WindowCount: 400, Threshold: v / 0.7}); err != nil {
		t.Fatal(err)
	}
	if f := amount(); f.Drifted || f.State != StateOK {
		t.Errorf("not recovered with value %v below 0.8·threshold %v: %+v", f.Value, f.Threshold, f)
	}
	// In-distribution traffic refills the window; back at the default
	// threshold it stays recovered.
	feed(400, 0)
	if err := m.SetConfig("risk", Config{WindowCount: 400}); err != nil {
		t.Fatal(err)
	}
	if f := amount(); f.Drifted || f.Value > 0.1 {
		t.Errorf("drifted on normal traffic: %+v", f)
	}
	// Shift again: drifts again.
	feed(400, 2)
	if f := amount(); !f.Drifted {
		t.Errorf("not drifted after the second shift: %+v", f)
	}
	want := []string{"amount:drifted", "amount:recovered", "amount:drifted"}
	if got := states(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("alerts = %v, want %v", got, want)
	}
}

func TestCategoricalDrift(t *testing.T) {
	e := newEnv(t)
	sink := e.subscribeAlerts(t, "fraud")
	m := e.start(t, Options{RecomputeEvery: 100})
	m.SetReference("fraud", "2", normalRef(t, 5000, 5))
	g := newGen("fraud", "2", 11)
	e.publish(t, g.events(1000, drawNormal(0, false))...)
	e.publish(t, g.events(1000, drawNormal(0, true))...)
	waitApplied(t, m, 20*time.Second, 2000, "events applied")
	res, err := m.Results("fraud", "2")
	if err != nil {
		t.Fatal(err)
	}
	ch := findFeature(t, res, "channel")
	if ch.Kind != KindCategorical || !ch.Drifted || ch.Metrics == nil || ch.Metrics.Chi2P == nil || *ch.Metrics.Chi2P > 1e-6 || ch.Metrics.KS != nil {
		t.Errorf("channel = %+v, want categorical, drifted, tiny chi2 p-value, no KS", ch)
	}
	// web .6→.2, app .3→.3, pos .1→.2, other 0→.3: tvd = ½(.4+0+.1+.3) = 0.4.
	if math.Abs(ch.Metrics.TVD-0.4) > 0.06 {
		t.Errorf("channel tvd = %v, want about 0.4", ch.Metrics.TVD)
	}
	got := sink.all()
	if len(got) != 1 || got[0].Feature != "channel" || got[0].Kind != KindCategorical {
		t.Errorf("alerts = %+v, want one for channel", got)
	}
}

// With no uploaded reference, features and outputs take their first
// InferCount values as reference; prediction drift (a scalar output and the
// elements of an array output) is then detected like feature drift.
func TestInferredReferenceAndOutputDrift(t *testing.T) {
	e := newEnv(t)
	sink := e.subscribeAlerts(t, "churn")
	m := e.start(t, Options{RecomputeEvery: 50, InferCount: 500, Default: Config{WindowCount: 500}})
	g := newGen("churn", "1", 13)
	draw := func(lo float64) func(r *rand.Rand) (map[string]any, map[string]any) {
		return func(r *rand.Rand) (map[string]any, map[string]any) {
			p := lo + 0.3*r.Float64()
			return map[string]any{"tenure": 12 + 3*r.NormFloat64(), "plan": []string{"basic", "pro"}[r.IntN(2)]},
				map[string]any{"prob": p, "probs": []any{[]any{1 - p, p}}, "label": []string{"stay", "go"}[r.IntN(2)]}
		}
	}
	e.publish(t, g.events(300, draw(0))...)
	waitApplied(t, m, 20*time.Second, 300, "first events applied")
	res, err := m.Results("churn", "1")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res {
		if f.State != StateCollecting || f.Reference != "inferring from first 500 events (300 so far)" {
			t.Errorf("%s before the reference is complete: %+v", f.Feature, f)
		}
	}
	if _, ok := m.MaxDrift("churn", "1"); ok {
		t.Error("MaxDrift ok before any window exists")
	}

	e.publish(t, g.events(200+500, draw(0))...) // completes the reference, then one window
	waitApplied(t, m, 20*time.Second, 1000, "window applied")
	res, err = m.Results("churn", "1")
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, f := range res {
		names = append(names, f.Feature+"/"+f.Kind)
		if f.Reference != "inferred from first 500 events" || f.State != StateOK || f.Window.Count != 500 {
			t.Errorf("%s after the reference: %+v, want ok over 500 values, inferred reference", f.Feature, f)
		}
		if f.Window.From.IsZero() || !f.Window.To.After(f.Window.From) {
			t.Errorf("%s window span %v..%v", f.Feature, f.Window.From, f.Window.To)
		}
	}
	// Inputs first (by name), then outputs; arrays per element.
	if want := "plan/categorical,tenure/numeric,label/output,prob/output,probs[0]/output,probs[1]/output"; strings.Join(names, ",") != want {
		t.Errorf("features = %s, want %s", strings.Join(names, ","), want)
	}

	e.publish(t, g.events(500, draw(0.5))...) // the model now predicts higher
	waitApplied(t, m, 20*time.Second, 1500, "shift applied")
	if _, err := m.Results("churn", "1"); err != nil {
		t.Fatal(err)
	}
	drifted := map[string]bool{}
	for _, a := range sink.all() {
		if a.State != StateDrifted || a.Kind != KindOutput {
			t.Errorf("unexpected alert %+v", a)
		}
		drifted[a.Feature] = true
	}
	if len(drifted) != 3 || !drifted["prob"] || !drifted["probs[0]"] || !drifted["probs[1]"] {
		t.Errorf("drifted outputs = %v, want prob, probs[0], probs[1]", drifted)
	}
}

// A consumer restarted on the same durable name resumes after the last
// acknowledged event: nothing is lost and nothing is counted twice.
func TestRestartResumesWithoutDoubleCounting(t *testing.T) {
	e := newEnv(t)
	ref := normalRef(t, 2000, 17)
	opts := Options{Durable: "drift-restart", Default: Config{WindowCount: 5000}}
	g := newGen("fraud", "1", 19)

	m1 := e.start(t, opts)
	m1.SetReference("fraud", "1", ref)
	e.publish(t, g.events(300, drawNormal(0, false))...)
	waitApplied(t, m1, 20*time.Second, 300, "first monitor applied 300")
	if err := m1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.publish(t, g.events(200, drawNormal(0, false))...) // while no one consumes

	m2 := e.start(t, opts)
	m2.SetReference("fraud", "1", ref)
	waitApplied(t, m2, 20*time.Second, 200, "second monitor applied 200")
	e.publish(t, g.events(1, drawNormal(0, false))...) // a marker after everything
	waitApplied(t, m2, 20*time.Second, 201, "marker applied")

	for name, n := range m1.windowCounts("fraud", "1") {
		if n != 300 {
			t.Errorf("first monitor: %s window has %d values, want 300", name, n)
		}
	}
	for name, n := range m2.windowCounts("fraud", "1") {
		if n != 201 {
			t.Errorf("second monitor: %s window has %d values, want 201 (no redelivery)", name, n)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	testpoll.For(t, 10*time.Second, "consumer fully acknowledged", func() error {
		c, err := e.js.Consumer(ctx, monitor.StreamEvents, "drift-restart")
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending != 0 || info.NumPending != 0 || info.AckFloor.Stream != 501 || info.NumRedelivered != 0 {
			return errors.New(ackState(info))
		}
		return nil
	})
}

func TestIgnoresFailedAndTerminatesGarbage(t *testing.T) {
	e := newEnv(t)
	m := e.start(t, Options{InferCount: 10})
	g := newGen("m", "1", 1)
	evs := g.events(5, drawNormal(0, false))
	evs[0].Status, evs[0].Error = 400, "bad input"
	e.publish(t, evs...)
	if _, err := e.js.Publish(context.Background(), monitor.SubjectEventsPrefix+"m", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	testpoll.For(t, 10*time.Second, "events handled", func() error {
		if a, ig := m.Stats(); a != 4 || ig != 1 {
			return fmt.Errorf("%d applied, %d ignored; want 4 and 1", a, ig)
		}
		return nil
	})
	res, err := m.Results("m", "1")
	if err != nil {
		t.Fatal(err)
	}
	if f := findFeature(t, res, "amount"); f.Reference != "inferring from first 10 events (4 so far)" {
		t.Errorf("amount: %+v, want 4 values collected (the failed event skipped)", f)
	}
}

func TestResultsErrorsAndJSONShape(t *testing.T) {
	m, err := New(Options{InferCount: 2, MinCount: 2, RecomputeEvery: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	if _, err := m.Results("nope", "1"); weirerr.KindOf(err) != weirerr.NotFound || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown model: %v, want NotFound naming it", err)
	}
	g := newGen("m", "1", 1)
	for _, ev := range g.events(6, drawNormal(0, false)) {
		m.Apply(&ev)
	}
	if _, err := m.Results("m", "9"); weirerr.KindOf(err) != weirerr.NotFound || !strings.Contains(err.Error(), `[1]`) {
		t.Errorf("unknown version: %v, want NotFound listing version 1", err)
	}
	if got := m.Versions("m"); len(got) != 1 || got[0] != "1" {
		t.Errorf("Versions = %v, want [1]", got)
	}
	res, err := m.Results("m", "1")
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(res[0])
	if err != nil {
		t.Fatal(err)
	}
	var shape map[string]any
	if err := json.Unmarshal(data, &shape); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"feature", "metric", "value", "threshold", "drifted", "window", "kind", "reference", "state", "metrics"} {
		if _, ok := shape[k]; !ok {
			t.Errorf("result JSON %s lacks %q", data, k)
		}
	}
	win, _ := shape["window"].(map[string]any)
	for _, k := range []string{"from", "to", "count"} {
		if _, ok := win[k]; !ok {
			t.Errorf("window JSON %s lacks %q", data, k)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	m, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Metric: "ks_p"}, "not supported"},
		{Config{Threshold: -1}, "negative"},
		{Config{RecoverRatio: 1.5}, "recover_ratio"},
		{Config{WindowCount: 1}, "window_count"},
		{Config{Webhook: "ftp://x"}, "webhook"},
	} {
		if err := m.SetConfig("m", c.cfg); weirerr.KindOf(err) != weirerr.Invalid || !strings.Contains(err.Error(), c.want) {
			t.Errorf("SetConfig(%+v) = %v, want Invalid mentioning %q", c.cfg, err, c.want)
		}
	}
	if err := m.SetConfig("m", Config{Metric: MetricGeneralDrift}); err != nil {
		t.Fatal(err)
	}
	if c := m.Config("m"); c.Threshold != 0.5 || c.RecoverRatio != 0.8 || c.WindowCount != 1000 || c.WindowAge != 5*time.Minute {
		t.Errorf("general_drift config = %+v, want threshold 0.5 and defaults", c)
	}
	if _, err := New(Options{Default: Config{Metric: "bogus"}}); weirerr.KindOf(err) != weirerr.Invalid {
		t.Errorf("New with a bad default metric: %v, want Invalid", err)
	}
	if err := m.Start(context.Background()); err == nil {
		t.Error("Start without JS succeeded")
	}
}

func TestStartWithoutStreamIsUnavailable(t *testing.T) {
	s := natstest.Start(t)
	_, js := s.Connect(t)
	m, err := New(Options{JS: js})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	if err := m.Start(context.Background()); weirerr.KindOf(err) != weirerr.Unavailable || !strings.Contains(err.Error(), monitor.StreamEvents) {
		t.Errorf("Start without the stream: %v, want Unavailable naming %s", err, monitor.StreamEvents)
	}
}

// A webhook that fails is logged and counted; event processing goes on.
func TestWebhookFailureIsCounted(t *testing.T) {
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nope", http.StatusInternalServerError)
	}))
	t.Cleanup(hook.Close)
	m, err := New(Options{RecomputeEvery: 50, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	if err := m.SetConfig("fraud", Config{Webhook: hook.URL}); err != nil {
		t.Fatal(err)
	}
	m.SetReference("fraud", "1", normalRef(t, 2000, 23))
	g := newGen("fraud", "1", 29)
	for _, ev := range g.events(1000, drawNormal(3, false)) {
		m.Apply(&ev)
	}
	testpoll.For(t, 10*time.Second, "webhook failure counted", func() error {
		if n := testutil.ToFloat64(m.met.webhookFailure.WithLabelValues("fraud")); n != 1 {
			return fmt.Errorf("%v webhook failures counted", n)
		}
		return nil
	})
	if got := m.RecentAlerts(10); len(got) != 1 || got[0].Feature != "amount" {
		t.Errorf("RecentAlerts = %+v, want the amount alert", got)
	}
}

// Arrays become one feature per element, row-major, nulls keeping their
// position, at most MaxElements of them; objects are not features.
func TestArrayValuesBecomeElementFeatures(t *testing.T) {
	m, err := New(Options{InferCount: 1, MaxElements: 4, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	m.Apply(&monitor.Event{Model: "m", Version: "1", Status: 200,
		Features: map[string]any{"input": []any{[]any{1.0, nil}, []any{3.0, 4.0, 5.0}}, "meta": map[string]any{"a": 1.0}},
		Outputs:  map[string]any{"label": "yes"}})
	got := m.windowCounts("m", "1")
	want := map[string]int{"input[0]": 0, "input[2]": 0, "input[3]": 0, "label": 0}
	if len(got) != len(want) {
		t.Fatalf("features = %v, want %v", got, want)
	}
	for name := range want {
		if _, ok := got[name]; !ok {
			t.Errorf("features = %v, want %v", got, want)
		}
	}
}

// TestForgetOutlivesLateEvents deletes a version while its events are still
// in flight: they must not bring its state back (memory would grow with
// every version ever deleted), and a version pushed again counts again.
func TestForgetOutlivesLateEvents(t *testing.T) {
	m, err := New(Options{InferCount: 2, MinCount: 2, RecomputeEvery: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	g := newGen("m", "1", 1)
	evs := g.events(6, drawNormal(0, false))
	for _, ev := range evs[:3] {
		m.Apply(&ev)
	}
	m.Forget("m", "1")
	for _, ev := range evs[3:] { // late: published before the delete
		m.Apply(&ev)
	}
	if _, err := m.Results("m", "1"); weirerr.KindOf(err) != weirerr.NotFound {
		t.Fatalf("results of a deleted version after late events: %v, want NotFound", err)
	}
	if v := m.Versions("m"); len(v) != 0 {
		t.Errorf("versions after delete = %v, want none", v)
	}
	m.Track("m", "1") // pushed again
	for _, ev := range evs[3:] {
		m.Apply(&ev)
	}
	if _, err := m.Results("m", "1"); err != nil {
		t.Errorf("results of a version pushed again: %v", err)
	}
}

// A wide tensor's summary becomes its statistics' series, per channel too;
// series past the version's cap are ignored and counted.
func TestSummariesBecomeSeriesUnderTheCap(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(Options{InferCount: 1, Registerer: reg, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	stats := func(mean float64) map[string]any {
		return map[string]any{"mean": mean, "std": 0.1, "min": 0.0, "max": 1.0}
	}
	sum := stats(0.5)
	sum["shape"], sum["datatype"], sum["hash"] = []any{1.0, 2.0, 32.0, 32.0}, "FP32", "fnv64a:0"
	sum["channels"] = []any{stats(0.4), stats(0.6)}
	m.Apply(&monitor.Event{Model: "m", Version: "1", Status: 200,
		Features: map[string]any{"pixels": map[string]any{event.SummaryKey: sum}}})
	got := m.windowCounts("m", "1")
	if len(got) != 12 {
		t.Errorf("series = %v, want pixels.{mean,std,min,max} and pixels.c0.* and pixels.c1.*", got)
	}
	for _, name := range []string{"pixels.mean", "pixels.max", "pixels.c0.mean", "pixels.c1.std"} {
		if _, ok := got[name]; !ok {
			t.Errorf("no series %s in %v", name, got)
		}
	}
	many := map[string]any{}
	for i := range maxFeaturesPerVersion {
		many[fmt.Sprintf("f%d", i)] = float64(i)
	}
	m.Apply(&monitor.Event{Model: "m", Version: "1", Status: 200, Features: many})
	if n := len(m.windowCounts("m", "1")); n != maxFeaturesPerVersion {
		t.Errorf("%d series tracked, want the cap of %d", n, maxFeaturesPerVersion)
	}
	if got := testutil.ToFloat64(m.met.untracked.WithLabelValues("m")); got != 12 {
		t.Errorf("weir_drift_untracked_total = %v, want the 12 values past the cap", got)
	}
}

// A spool replayed after a NATS outage delivers old events after new ones.
// They are older than the window: counting them flapped a drifted feature
// to recovered and back within milliseconds.
func TestOldEventsAfterNewOnesDoNotFlap(t *testing.T) {
	e := newEnv(t)
	sink := e.subscribeAlerts(t, "risk")
	m := e.start(t, Options{RecomputeEvery: 50, MinCount: 50})
	if err := m.SetConfig("risk", Config{WindowCount: 400, WindowAge: time.Minute}); err != nil {
		t.Fatal(err)
	}
	m.SetReference("risk", "3", normalRef(t, 4000, 3))
	now := newGen("risk", "3", 9)
	e.publish(t, now.events(400, drawNormal(2, false))...)
	waitApplied(t, m, 20*time.Second, 400, "shifted events applied")
	// The replayed events: from an hour ago, in distribution.
	old := newGen("risk", "3", 10)
	old.t0 = now.t0.Add(-time.Hour)
	e.publish(t, old.events(800, drawNormal(0, false))...)
	waitApplied(t, m, 20*time.Second, 1200, "old events applied")
	res, err := m.Results("risk", "3")
	if err != nil {
		t.Fatal(err)
	}
	if f := findFeature(t, res, "amount"); !f.Drifted {
		t.Errorf("amount recovered on hour-old events: %+v", f)
	}
	var states []string
	for _, a := range sink.all() {
		states = append(states, a.Feature+":"+a.State)
	}
	if want := "amount:drifted"; strings.Join(states, ",") != want {
		t.Errorf("alerts = %v, want %v", states, want)
	}
}
