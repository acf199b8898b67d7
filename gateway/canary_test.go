package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/internal/testpoll"
)

func fastCanary(o *gateway.Options) {
	o.CanaryTick = 20 * time.Millisecond
	o.StatsBucket = time.Second
}

type rolloutStatus struct {
	State    string `json:"state"`
	Weight   int    `json:"weight"`
	Reason   string `json:"reason"`
	Waiting  bool   `json:"waiting"`
	Decision string `json:"decision"`
	// RouteApplied: the route's weights match the state (the state is
	// written first, then the route).
	RouteApplied bool `json:"route_applied"`
}

// settled reports a finished rollout whose weights are on the route.
func settled(st rolloutStatus) bool {
	return st.State != "progressing" && st.State != "paused" && st.RouteApplied
}

func rollout(t testing.TB, g *testgw.Gateway, route string) rolloutStatus {
	t.Helper()
	var st rolloutStatus
	if err := g.Client.Get(context.Background(), "/v1/routes/"+route+"/rollout", &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// canaryGateway serves route "r": stable m@1, and m@2 (good: its answers
// are the stable's), m@hot (miscalibrated: its scores are
// shifted by +4 logits) and m@bad (needs a feature callers never send)
// ready for a canary.
func canaryGateway(t *testing.T) *testgw.Gateway {
	g := testgw.Start(t, testgw.WithOptions(fastCanary))
	pushModel(t, g, "m", "1", scorer(t, []string{"x"}, []float32{1}, 0))
	pushModel(t, g, "m", "2", scorer(t, []string{"x"}, []float32{1}, 0))
	pushModel(t, g, "m", "hot", scorer(t, []string{"x"}, []float32{1}, 4))
	pushModel(t, g, "m", "bad", scorer(t, []string{"x", "velocity"}, []float32{1, 1}, 0))
	setRoute(t, g, "r", `{"variants":[{"name":"stable","model":"m","version":"1","weight":100}],"sticky":{"header":"X-User"}}`)
	return g
}

// drive sends bounded traffic to route r until done says stop (or the
// budget runs out), and reports how many requests failed.
func drive(t *testing.T, g *testgw.Gateway, maxRequests int, done func() bool) (sent, failed int) {
	for sent < maxRequests && !done() {
		a := call(t, "POST", g.URL+"/v1/routes/r/predict", "", []byte(fmt.Sprintf(`{"x":%d}`, sent%7)))
		sent++
		if a.status != 200 {
			failed++
		}
	}
	return sent, failed
}

func startRollout(t *testing.T, g *testgw.Gateway, spec string) {
	t.Helper()
	if _, err := g.Client.StartRollout(context.Background(), "r", json.RawMessage(spec)); err != nil {
		t.Fatalf("start rollout: %v", err)
	}
}

func TestCanaryPromotes(t *testing.T) {
	g := canaryGateway(t)
	startRollout(t, g, `{"model":"m","version":"2","steps":[20,50,100],"interval":"300ms","min_requests":5,"max_error_rate":0.05,"max_p99_ms":2000}`)
	sent, failed := drive(t, g, 20000, func() bool { return settled(rollout(t, g, "r")) })
	st := rollout(t, g, "r")
	if st.State != "promoted" || failed != 0 {
		t.Fatalf("after %d requests (%d failed): %+v, want promoted", sent, failed, st)
	}
	raw, _ := g.Client.GetRoute(context.Background(), "r")
	var rt struct {
		Variants []struct {
			Name, Model, Version string
			Weight               int
		}
	}
	json.Unmarshal(raw, &rt)
	if len(rt.Variants) != 1 || rt.Variants[0].Version != "2" || rt.Variants[0].Weight != 100 {
		t.Fatalf("route after promotion: %s", raw)
	}
	t.Logf("promoted after %d requests", sent)
}

// TestCanaryRollsBackAFailingVersion: failures of the gateway's side (here
// a plugin that traps: 502) roll the canary back.
func TestCanaryRollsBackAFailingVersion(t *testing.T) {
	g := canaryGateway(t)
	pushPlugin(t, g, "trap", "1", plugin(t, "trap"))
	setRoute(t, g, "r", `{"variants":[{"name":"stable","model":"m","version":"1","weight":100},`+
		`{"name":"canary","model":"m","version":"2","weight":0,"plugins":[{"name":"trap"}]}],"sticky":{"header":"X-User"}}`)
	startRollout(t, g, `{"model":"m","version":"2","steps":[50,100],"interval":"300ms","min_requests":10,"max_error_rate":0.05}`)
	drive(t, g, 20000, func() bool { return settled(rollout(t, g, "r")) })
	st := rollout(t, g, "r")
	if st.State != "rolled_back" || !strings.Contains(st.Reason, "error rate") {
		t.Fatalf("status %+v, want rolled_back on the error rate", st)
	}
	// All traffic is back on stable at once.
	for i := 0; i < 20; i++ {
		a := call(t, "POST", g.URL+"/v1/routes/r/predict", "", []byte(`{"x":1}`))
		if a.status != 200 || a.body["variant"] != "stable" {
			t.Fatalf("after rollback: %d %s", a.status, a.raw)
		}
	}
}

// TestClientErrorsDoNotRollBackACanary pins issue 25 defect 5: callers'
// own mistakes (bad JSON, a missing feature: 400) are counted apart and
// shown, and neither roll a canary back nor count toward min_requests.
func TestClientErrorsDoNotRollBackACanary(t *testing.T) {
	g := canaryGateway(t)
	startRollout(t, g, `{"model":"m","version":"2","steps":[50,100],"interval":"200ms","min_requests":5,"max_error_rate":0.05}`)
	bad := []string{`{"x":`, `{"y":1}`, `[1,2]`, `{"x":"abc"}`}
	for i := 0; i < 300; i++ {
		a := call(t, "POST", g.URL+"/v1/routes/r/predict", "", []byte(bad[i%len(bad)]))
		if a.status/100 != 4 {
			t.Fatalf("bad request %s: %d %s, want a 4xx", bad[i%len(bad)], a.status, a.raw)
		}
	}
	var st struct {
		rolloutStatus
		Variants map[string]struct {
			Requests     int64   `json:"requests"`
			Errors       int64   `json:"errors"`
			ClientErrors int64   `json:"client_errors"`
			ErrorRate    float64 `json:"error_rate"`
		} `json:"variants"`
	}
	// Analysed after the bad requests: still progressing, waiting for
	// requests it can judge, with the client errors shown.
	testpoll.For(t, 20*time.Second, "an analysis that saw the canary's client errors", func() error {
		if err := g.Client.Get(context.Background(), "/v1/routes/r/rollout", &st); err != nil {
			return err
		}
		if st.State != "progressing" {
			t.Fatalf("after 300 bad requests: %+v, want still progressing", st)
		}
		if c := st.Variants["canary"]; c.ClientErrors == 0 || c.Errors != 0 || c.ErrorRate != 0 || !st.Waiting {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	if !strings.Contains(st.Reason, "client errors not counted") {
		t.Errorf("waiting reason %q does not mention the client errors", st.Reason)
	}
	// Good traffic then promotes it.
	sent, failed := drive(t, g, 20000, func() bool { return settled(rollout(t, g, "r")) })
	if got := rollout(t, g, "r"); got.State != "promoted" || failed != 0 {
		t.Fatalf("after %d good requests (%d failed): %+v, want promoted", sent, failed, got)
	}
}

type gatedStatus struct {
	rolloutStatus
	Gates []struct {
		Gate   string   `json:"gate"`
		Limit  float64  `json:"limit"`
		Value  *float64 `json:"value"`
		Passed bool     `json:"passed"`
		Note   string   `json:"note"`
	} `json:"gates"`
	History []struct {
		Reason string `json:"reason"`
	} `json:"history"`
}

func gates(t *testing.T, g *testgw.Gateway) gatedStatus {
	t.Helper()
	var st gatedStatus
	if err := g.Client.Get(context.Background(), "/v1/routes/r/rollout", &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestCanaryJudgedOnAnswersByDefault pins issue 27 item 6: a rollout that
// gives no max_drift still judges the canary's answers against the
// stable's, over the same period (a shift in the inputs that both see does
// not count); max_drift "off" turns that off; the verdict lists the gates.
func TestCanaryJudgedOnAnswersByDefault(t *testing.T) {
	g := canaryGateway(t)
	// Miscalibrated, and no max_drift given: rolled back on its answers.
	startRollout(t, g, `{"model":"m","version":"hot","steps":[50,100],"interval":"1500ms","min_requests":5}`)
	drive(t, g, 20000, func() bool { return settled(rollout(t, g, "r")) })
	st := gates(t, g)
	if st.State != "rolled_back" || !strings.Contains(st.Reason, "answers differ from the stable's") || !strings.Contains(st.Reason, "over max_drift 0.25") {
		t.Fatalf("miscalibrated canary without max_drift: %+v, want rolled back on its answers", st)
	}
	if len(st.Gates) != 1 || st.Gates[0].Gate != "answers" || st.Gates[0].Value == nil || st.Gates[0].Passed || st.Gates[0].Limit != 0.25 {
		t.Errorf("gates %+v, want the answers gate, judged and failed against 0.25", st.Gates)
	}

	// A good canary while the inputs shift under both variants mid-rollout:
	// promoted, its answers gate judged and passed.
	startRollout(t, g, `{"model":"m","version":"2","steps":[50,100],"interval":"1500ms","min_requests":5,"max_error_rate":0.05}`)
	for sent := 0; sent < 20000 && !settled(rollout(t, g, "r")); sent++ {
		x := sent % 7
		if sent >= 150 {
			x += 4 // the traffic moves: both variants see it
		}
		if a := call(t, "POST", g.URL+"/v1/routes/r/predict", "", []byte(fmt.Sprintf(`{"x":%d}`, x))); a.status != 200 {
			t.Fatalf("predict: %d %s", a.status, a.raw)
		}
	}
	st = gates(t, g)
	if st.State != "promoted" {
		t.Fatalf("good canary under shifted inputs: %+v, want promoted", st)
	}
	// Judged at 50%; at 100% the stable variant has no answers to compare.
	advanced := st.History[len(st.History)-2].Reason
	if !strings.Contains(advanced, "analysis passed at 50%") || !strings.Contains(advanced, "judged: error_rate, answers; moving to 100%") {
		t.Errorf("the step to 100%%: %q, want error_rate and answers judged", advanced)
	}
	if !strings.Contains(st.Reason, "judged: error_rate; not judged: answers (not judged at 100%") {
		t.Errorf("verdict %q, gates %+v: want error_rate judged, answers not at 100%%", st.Reason, st.Gates)
	}

	// max_drift "off": the operator's explicit choice, answers not judged.
	startRollout(t, g, `{"model":"m","version":"hot","steps":[50,100],"interval":"200ms","min_requests":5,"max_drift":"off"}`)
	drive(t, g, 20000, func() bool { return settled(rollout(t, g, "r")) })
	st = gates(t, g)
	if st.State != "promoted" || len(st.Gates) != 1 || st.Gates[0].Value != nil || !strings.Contains(st.Reason, "not judged: answers") {
		t.Fatalf("max_drift off: %+v, want promoted with the answers gate off", st)
	}
}

func TestCanaryWaitsForTraffic(t *testing.T) {
	g := canaryGateway(t)
	startRollout(t, g, `{"model":"m","version":"2","steps":[10,100],"interval":"100ms","min_requests":50}`)
	testpoll.For(t, 10*time.Second, "the rollout to say it waits", func() error {
		if st := rollout(t, g, "r"); !st.Waiting {
			return fmt.Errorf("rollout %+v", st)
		}
		return nil
	})
	st := rollout(t, g, "r")
	if st.State != "progressing" || !strings.Contains(st.Reason, "of 50 requests") {
		t.Fatalf("status %+v, want progressing and waiting for requests", st)
	}
	// Abort: straight back to stable.
	if _, err := g.Client.RolloutAction(context.Background(), "r", "abort"); err != nil {
		t.Fatal(err)
	}
	testpoll.For(t, 5*time.Second, "the abort to reach the route", func() error {
		if st := rollout(t, g, "r"); !settled(st) {
			return fmt.Errorf("rollout %+v", st)
		}
		return nil
	})
	if st := rollout(t, g, "r"); st.State != "rolled_back" || st.Weight != 0 {
		t.Fatalf("after abort: %+v", st)
	}
}

func TestRolloutSeenByEveryGateway(t *testing.T) {
	a := canaryGateway(t)
	b := testgw.Start(t, testgw.WithNATS(a.NATSURL()), testgw.WithOptions(fastCanary))
	startRollout(t, a, `{"model":"m","version":"2","steps":[30,100],"interval":"1h","min_requests":1}`)
	testpoll.For(t, 5*time.Second, "the second gateway to serve the canary at 30%", func() error {
		raw, err := b.Client.GetRoute(context.Background(), "r")
		if err != nil {
			return err
		}
		if !strings.Contains(string(raw), `"weight":30`) {
			return fmt.Errorf("route r on B: %s", raw)
		}
		return nil
	})
	if st := rollout(t, b, "r"); st.State != "progressing" || st.Weight != 30 {
		t.Fatalf("rollout seen from the second gateway: %+v", st)
	}
}

func TestShadowCostsTheCallerNothing(t *testing.T) {
	g := canaryGateway(t)
	setRoute(t, g, "r", `{"variants":[{"name":"stable","model":"m","version":"1","weight":100}],"shadow":{"model":"m","version":"bad","percent":100}}`)
	for i := 0; i < 50; i++ {
		if a := call(t, "POST", g.URL+"/v1/routes/r/predict", "", []byte(`{"x":1}`)); a.status != 200 {
			t.Fatalf("a failing shadow failed the caller: %d %s", a.status, a.raw)
		}
	}
	testpoll.For(t, 10*time.Second, "50 failed shadow requests counted", func() error {
		m := call(t, "GET", g.URL+"/metrics", "", nil).raw
		if !strings.Contains(m, `weir_shadow_requests_total{code="400",route="r"} 50`) {
			return fmt.Errorf("shadow metrics:\n%s", grepLines(m, "weir_shadow_requests_total{"))
		}
		return nil
	})
}

func TestEveryInferencePublishesOneEvent(t *testing.T) {
	g := canaryGateway(t)
	const n = 200
	for i := 0; i < n; i++ {
		path := "/v1/routes/r/predict"
		body := fmt.Sprintf(`{"x":%d}`, i)
		if i%2 == 1 { // OIP requests count too
			path = "/v2/models/r/infer"
			body = fmt.Sprintf(`{"inputs":[{"name":"features","shape":[1,1],"datatype":"FP32","data":[%d]}]}`, i)
		}
		if a := call(t, "POST", g.URL+path, "", []byte(body)); a.status != 200 {
			t.Fatalf("%s: %d %s", path, a.status, a.raw)
		}
	}
	evs := eventsOf(t, g, "r", n)
	if len(evs) != n {
		t.Fatalf("%d events for %d requests", len(evs), n)
	}
	var ev map[string]any
	json.Unmarshal(evs[0], &ev)
	for _, k := range []string{"id", "ts", "route", "variant", "model", "version", "features", "outputs", "latency_us", "status"} {
		if _, ok := ev[k]; !ok {
			t.Errorf("event lacks %q: %s", k, evs[0])
		}
	}
	if ev["route"] != "r" || ev["model"] != "m" || ev["variant"] != "stable" {
		t.Errorf("event: %s", evs[0])
	}
}

// Shadow traffic runs on both paths (predict and OIP infer) against the
// shadow's own version, and the caller is answered before its shadow runs.
func TestShadowOnBothPathsOffTheCallersPath(t *testing.T) {
	g := canaryGateway(t)
	setRoute(t, g, "r", `{"variants":[{"name":"stable","model":"m","version":"1","weight":100}],"shadow":{"model":"m","version":"2","percent":100}}`)
	release := gateway.HoldShadows(g.Gateway)
	const n = 10
	for i := 0; i < n; i++ {
		if a := call(t, "POST", g.URL+"/v1/routes/r/predict", "", []byte(`{"x":1}`)); a.status != 200 {
			t.Fatalf("predict: %d %s", a.status, a.raw)
		}
		oip := `{"inputs":[{"name":"features","shape":[1,1],"datatype":"FP32","data":[1]}]}`
		if a := call(t, "POST", g.URL+"/v2/models/r/infer", "", []byte(oip)); a.status != 200 {
			t.Fatalf("infer: %d %s", a.status, a.raw)
		}
	}
	// Every caller has its answer while every shadow is still held.
	if m := call(t, "GET", g.URL+"/metrics", "", nil).raw; strings.Contains(m, "weir_shadow_requests_total{") {
		t.Fatalf("a shadow ran before it was released; callers waited for it:\n%s", grepLines(m, "weir_shadow"))
	}
	release()
	testpoll.For(t, 10*time.Second, "every shadow (predict and OIP) to succeed", func() error {
		m := call(t, "GET", g.URL+"/metrics", "", nil).raw
		if !strings.Contains(m, fmt.Sprintf(`weir_shadow_requests_total{code="200",route="r"} %d`, 2*n)) {
			return fmt.Errorf("want %d shadows with code 200; shadow metrics:\n%s", 2*n, grepLines(m, "weir_shadow_requests_total{"))
		}
		return nil
	})

	evs := eventsOf(t, g, "r", 4*n) // callers' and shadows'
	shadows := 0
	for _, data := range evs {
		var ev struct {
			Shadow  bool           `json:"shadow"`
			Model   string         `json:"model"`
			Version string         `json:"version"`
			Status  int            `json:"status"`
			Outputs map[string]any `json:"outputs"`
		}
		json.Unmarshal(data, &ev)
		if !ev.Shadow {
			continue
		}
		shadows++
		if ev.Model != "m" || ev.Version != "2" || ev.Status != 200 || len(ev.Outputs) == 0 {
			t.Errorf("shadow event %s: want model m version 2, status 200, outputs", data)
		}
	}
	if shadows != 2*n {
		t.Errorf("%d shadow events, want %d", shadows, 2*n)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A versioned OIP call (/v2/models/{route}/versions/{v}/infer) bypasses the
// route's split: it is counted apart, as "pinned:<model>@<version>" marked
// pinned, never as a pseudo-variant "pinned" nor as the variant it names,
// so the canary analysis and the split's charts see only split traffic.
func TestPinnedCallsCountedApartFromTheSplit(t *testing.T) {
	g := canaryGateway(t)
	setRoute(t, g, "r", `{"variants":[{"name":"stable","model":"m","version":"1","weight":100},{"name":"canary","model":"m","version":"2","weight":0}]}`)
	oip := []byte(`{"inputs":[{"name":"features","shape":[1,1],"datatype":"FP32","data":[1]}]}`)
	for path, n := range map[string]int{"/v2/models/r/infer": 5, "/v2/models/r/versions/2/infer": 3, "/v2/models/r/versions/canary/infer": 2} {
		for range n {
			if a := call(t, "POST", g.URL+path, "", oip); a.status != 200 {
				t.Fatalf("%s: %d %s", path, a.status, a.raw)
			}
		}
	}
	type summary struct {
		Requests int64 `json:"requests"`
		Pinned   bool  `json:"pinned"`
		Shadow   bool  `json:"shadow"`
	}
	var stats struct {
		Variants map[string]summary `json:"variants"`
	}
	testpoll.For(t, 30*time.Second, "stats to count the 10 calls", func() error {
		if err := g.Client.Get(context.Background(), "/v1/routes/r/stats", &stats); err != nil {
			return err
		}
		total := int64(0)
		for _, s := range stats.Variants {
			total += s.Requests
		}
		if total < 10 {
			return fmt.Errorf("%d counted: %+v", total, stats.Variants)
		}
		return nil
	})
	want := map[string]summary{"stable": {Requests: 5}, "pinned:m@2": {Requests: 5, Pinned: true}}
	if fmt.Sprint(stats.Variants) != fmt.Sprint(want) {
		t.Errorf("route stats %+v, want %+v (pinned calls apart from the split)", stats.Variants, want)
	}
	var ts struct {
		Variants []struct {
			Variant string `json:"variant"`
			Pinned  bool   `json:"pinned"`
		} `json:"variants"`
	}
	if err := g.Client.Get(context.Background(), "/v1/routes/r/timeseries?since=5m", &ts); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(ts.Variants); got != "[{pinned:m@2 true} {stable false}]" {
		t.Errorf("timeseries series %s, want the pinned series marked pinned beside stable", got)
	}
}

// GET /v1/rollouts lists every route's current rollout (the contract's
// dashboard call): it answered 404.
func TestRolloutsListsEveryRoutesRollout(t *testing.T) {
	g := canaryGateway(t)
	setRoute(t, g, "quiet", `{"variants":[{"name":"stable","model":"m","version":"1","weight":100}]}`)
	list := func() []rolloutStatus {
		var out struct {
			Rollouts []struct {
				Route string `json:"route"`
				rolloutStatus
			} `json:"rollouts"`
		}
		if err := g.Client.Get(context.Background(), "/v1/rollouts", &out); err != nil {
			t.Fatalf("GET /v1/rollouts: %v", err)
		}
		if out.Rollouts == nil {
			t.Fatal(`GET /v1/rollouts has no "rollouts" array`)
		}
		var sts []rolloutStatus
		for _, r := range out.Rollouts {
			if r.Route != "r" {
				t.Errorf("GET /v1/rollouts lists route %q, which has no rollout", r.Route)
			}
			sts = append(sts, r.rolloutStatus)
		}
		return sts
	}
	if sts := list(); len(sts) != 0 {
		t.Fatalf("before any rollout: %+v, want none", sts)
	}
	startRollout(t, g, `{"model":"m","version":"2","steps":[10,100],"interval":"1h","min_requests":50}`)
	if sts := list(); len(sts) != 1 || sts[0].State != "progressing" || sts[0].Weight != 10 {
		t.Fatalf("after starting one: %+v, want route r progressing at weight 10", sts)
	}
}
