package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/internal/testpoll"
	"github.com/weirhq/weir/sdk/client"
)

// plugin returns an example plugin or a plugins/testdata test plugin.
func plugin(t testing.TB, name string) []byte { return testgw.Plugin(t, name) }

func pushPlugin(t testing.TB, g *testgw.Gateway, name, version string, wasm []byte) {
	t.Helper()
	if err := g.Client.PushPlugin(context.Background(), name, version, bytes.NewReader(wasm)); err != nil {
		t.Fatalf("push plugin %s@%s: %v", name, version, err)
	}
}

func setRoute(t testing.TB, g *testgw.Gateway, name, body string) {
	t.Helper()
	if err := g.Client.SetRoute(context.Background(), name, json.RawMessage(body)); err != nil {
		t.Fatalf("set route %s: %v", name, err)
	}
}

// scorer is a logistic regression over named features.
func scorer(t testing.TB, features []string, weights []float32, bias float32) []byte {
	t.Helper()
	b, err := onnx.LogisticRegression("scorer", features, weights, bias)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var txFeatures = []string{"amount_log", "amount_zscore", "merchant_risk"}

// fraudGateway serves a route "tx": fraud-features -> scorer@1 -> decision.
func fraudGateway(t *testing.T) *testgw.Gateway {
	g := testgw.Start(t)
	pushModel(t, g, "scorer", "1", scorer(t, txFeatures, []float32{0.5, 0.8, 3}, -4))
	// Go plugins under a generous deadline: the machines tests run on are
	// shared and loaded, and a 20ms default fails on a scheduling stall.
	for _, p := range []string{"fraud-features", "decision"} {
		if err := g.Client.PushPluginLimits(context.Background(), p, "1", bytes.NewReader(plugin(t, p)), client.PluginLimits{Timeout: 5 * time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	setRoute(t, g, "tx", `{
		"plugins":[{"name":"fraud-features","config":{"merchant_risk":{"giftcards":0.9}}}],
		"postprocess":[{"name":"decision","config":{"review":0.5,"block":0.8}}],
		"variants":[{"name":"stable","model":"scorer","version":"1","weight":100}],
		"sticky":{"field":"account_id"}}`)
	return g
}

func TestPredictThroughPlugins(t *testing.T) {
	g := fraudGateway(t)
	// The plugin reads accounts' online features through the host.
	for account, f := range map[string]map[string]any{
		"a1": {"amount_mean_24h": 50, "amount_std_24h": 25},
		"a2": {"amount_mean_24h": 900, "amount_std_24h": 100},
	} {
		if err := g.Client.Send(context.Background(), "PUT", "/v1/features/"+account, f, nil); err != nil {
			t.Fatal(err)
		}
	}
	a := call(t, "POST", g.URL+"/v1/routes/tx/predict", "", []byte(`{"account_id":"a1","amount":900,"merchant":"giftcards","ts":"2026-11-25T03:00:00Z"}`))
	if a.status != 200 {
		t.Fatalf("predict: %d %s", a.status, a.raw)
	}
	if a.body["route"] != "tx" || a.body["variant"] != "stable" || a.body["model"] != "scorer" || a.body["version"] != "1" {
		t.Errorf("predict answer: %s", a.raw)
	}
	if a.header.Get("X-Weir-Variant") != "stable" || a.header.Get("X-Weir-Model-Version") != "1" {
		t.Errorf("headers: %v", a.header)
	}
	score := a.body["outputs"].(map[string]any)["score"].(float64)
	result := a.body["result"].(map[string]any)
	if score < 0.8 || result["decision"] != "block" {
		t.Errorf("a large gift-card charge scored %v -> %v, want block", score, result)
	}
	low := call(t, "POST", g.URL+"/v1/routes/tx/predict", "", []byte(`{"account_id":"a1","amount":20,"merchant":"grocer","ts":1764039600}`))
	if low.status != 200 || low.body["result"].(map[string]any)["decision"] != "allow" {
		t.Errorf("a small grocery charge: %s", low.raw)
	}

	usual := call(t, "POST", g.URL+"/v1/routes/tx/predict", "", []byte(`{"account_id":"a2","amount":900,"merchant":"giftcards"}`))
	if usual.status != 200 || usual.body["outputs"].(map[string]any)["score"].(float64) >= score {
		t.Errorf("an amount usual for the account should score lower than for a1: %s", usual.raw)
	}
}

func TestPredictErrors(t *testing.T) {
	g := fraudGateway(t)
	cases := []struct {
		name, route, body string
		status            int
		want              string
	}{
		{"not json", "tx", `{"amount":`, 400, "not a JSON object"},
		{"plugin rejects", "tx", `{"account_id":"a1","merchant":"x"}`, 502, `amount`},
		{"unknown route", "nope", `{}`, 404, `"nope" not found`},
		{"bad route name", "a%20b", `{}`, 400, "not valid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := call(t, "POST", g.URL+"/v1/routes/"+c.route+"/predict", "", []byte(c.body))
			msg, _ := a.body["error"].(string)
			if a.status != c.status || !strings.Contains(msg, c.want) {
				t.Fatalf("%d %q, want %d containing %q", a.status, msg, c.status, c.want)
			}
		})
	}
	// A model feature that the plugin chain does not produce: 502 naming
	// the feature, the chain and the keys it returned.
	pushModel(t, g, "needs-more", "1", scorer(t, []string{"amount_log", "velocity"}, []float32{1, 1}, 0))
	setRoute(t, g, "more", `{"plugins":[{"name":"fraud-features"}],"variants":[{"name":"a","model":"needs-more","weight":100}]}`)
	a := call(t, "POST", g.URL+"/v1/routes/more/predict", "", []byte(`{"account_id":"a1","amount":5}`))
	msg, _ := a.body["error"].(string)
	for _, want := range []string{`missing feature "velocity"`, "plugin chain fraud-features@1 returned keys [", " amount_log ", "model needs-more@1 needs features amount_log,velocity"} {
		if a.status != 502 || !strings.Contains(msg, want) {
			t.Errorf("missing feature from a plugin: %d %s, want 502 containing %q", a.status, a.raw, want)
		}
	}
	// Without plugins the client's event lacks it: 400 naming its keys.
	// In a batch, the row is named.
	setRoute(t, g, "bare", `{"variants":[{"name":"a","model":"needs-more","weight":100}]}`)
	a = call(t, "POST", g.URL+"/v1/routes/bare/predict", "", []byte(`[{"amount_log":1,"velocity":2},{"amount_log":1,"velocity":"fast"}]`))
	msg, _ = a.body["error"].(string)
	if a.status != 400 || !strings.Contains(msg, `feature "velocity" in row 1 is fast (string), expected a number`) || !strings.Contains(msg, "the request has keys [amount_log velocity]") {
		t.Errorf("wrong-typed feature in the event: %d %s", a.status, a.raw)
	}
}

func TestRouteValidation(t *testing.T) {
	g := fraudGateway(t)
	for body, want := range map[string]string{
		`{"variants":[{"name":"a","model":"ghost","weight":100}]}`:                                           `model "ghost" not found`,
		`{"variants":[{"name":"a","model":"scorer","version":"9","weight":100}]}`:                            `no version "9"`,
		`{"plugins":[{"name":"ghost"}],"variants":[{"name":"a","model":"scorer","weight":100}]}`:             `plugin "ghost" not found`,
		`{"variants":[{"name":"a","model":"scorer","weight":60},{"name":"b","model":"scorer","weight":30}]}`: "100",
	} {
		err := g.Client.SetRoute(context.Background(), "bad", json.RawMessage(body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("route %s: %v, want an error containing %q", body, err, want)
		}
	}
	// In use: 409 on model and plugin delete.
	if err := g.Client.DeleteModel(context.Background(), "scorer", "1"); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("deleting a model a route uses: %v", err)
	}
	if err := g.Client.DeletePlugin(context.Background(), "decision", "1"); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("deleting a plugin a route uses: %v", err)
	}
}

func TestFailingPluginFailsOnlyItsRequest(t *testing.T) {
	g := testgw.Start(t)
	pushModel(t, g, "scorer", "1", scorer(t, []string{"x"}, []float32{1}, 0))
	pushPlugin(t, g, "loop", "1", plugin(t, "loop"))
	pushPlugin(t, g, "trap", "1", plugin(t, "trap"))
	setRoute(t, g, "looping", `{"plugins":[{"name":"loop"}],"variants":[{"name":"a","model":"scorer","weight":100}]}`)
	setRoute(t, g, "open", `{"plugins":[{"name":"trap","on_error":"skip"}],"variants":[{"name":"a","model":"scorer","weight":100}]}`)

	start := time.Now()
	a := call(t, "POST", g.URL+"/v1/routes/looping/predict", "", []byte(`{"x": 1, "padding": "make it long"}`))
	if a.status != 502 || !strings.Contains(a.body["error"].(string), "loop") {
		t.Fatalf("looping plugin: %d %s", a.status, a.raw)
	}
	t.Logf("looping plugin failed its request after %v", time.Since(start))
	// Short input: the same plugin echoes, and the pool still serves.
	if a := call(t, "POST", g.URL+"/v1/routes/looping/predict", "", []byte(`{"x":1}`)); a.status != 200 {
		t.Fatalf("the next request after a loop: %d %s", a.status, a.raw)
	}
	// Fail open: the trapping plugin is skipped and counted.
	if a := call(t, "POST", g.URL+"/v1/routes/open/predict", "", []byte(`{"x":2}`)); a.status != 200 {
		t.Fatalf("on_error skip: %d %s", a.status, a.raw)
	}
	m := call(t, "GET", g.URL+"/metrics", "", nil)
	if !strings.Contains(m.raw, `weir_plugin_skipped_total{plugin="trap",route="open"} 1`) {
		t.Errorf("skipped plugin not counted:\n%s", grep(m.raw, "skipped"))
	}
}

// A plugin's invalid output is its failure wherever it is in the chain:
// the last plugin's output is checked by decoding it, the others' by a
// check, and on_error applies to both alike.
func TestInvalidOutputFollowsOnErrorAnywhereInTheChain(t *testing.T) {
	g := testgw.Start(t)
	pushModel(t, g, "scorer", "1", scorer(t, []string{"x"}, []float32{1}, 0))
	pushPlugin(t, g, "echo", "1", plugin(t, "wat-echo"))
	pushPlugin(t, g, "badjson", "1", plugin(t, "badjson"))
	variants := `"variants":[{"name":"a","model":"scorer","weight":100}]`
	for _, c := range []struct {
		route, plugins string
		x              float64 // the model's input: the event's 3 or the default's
		fail           string  // the 502's message, when the request fails
	}{
		{"last-skipped", `[{"name":"echo"},{"name":"badjson","on_error":"skip"}]`, 3, ""},
		{"first-skipped", `[{"name":"badjson","on_error":"skip"},{"name":"echo"}]`, 3, ""},
		{"only-skipped", `[{"name":"badjson","on_error":"skip"}]`, 3, ""},
		{"last-default", `[{"name":"echo"},{"name":"badjson","on_error":{"default":{"x":-2}}}]`, -2, ""},
		{"last-fails", `[{"name":"echo"},{"name":"badjson"}]`, 0, `plugin "badjson@1" returned invalid JSON at byte 12 of 12`},
		{"first-fails", `[{"name":"badjson"},{"name":"echo"}]`, 0, `plugin "badjson@1" returned invalid JSON at byte 12 of 12`},
	} {
		setRoute(t, g, c.route, `{"plugins":`+c.plugins+`,`+variants+`}`)
		a := call(t, "POST", g.URL+"/v1/routes/"+c.route+"/predict", "", []byte(`{"x":3}`))
		if c.fail != "" {
			if msg, _ := a.body["error"].(string); a.status != 502 || !strings.Contains(msg, c.fail) {
				t.Errorf("%s: %d %s, want 502 containing %q", c.route, a.status, a.raw, c.fail)
			}
			continue
		}
		if a.status != 200 {
			t.Errorf("%s: %d %s, want 200", c.route, a.status, a.raw)
			continue
		}
		score, _ := a.body["outputs"].(map[string]any)["score"].(float64)
		if want := 1 / (1 + math.Exp(-c.x)); math.Abs(score-want) > 1e-5 {
			t.Errorf("%s: score %v, want %v (the model's input x=%v): %s", c.route, score, want, c.x, a.raw)
		}
	}
	m := call(t, "GET", g.URL+"/metrics", "", nil)
	for _, route := range []string{"last-skipped", "first-skipped", "only-skipped", "last-default"} {
		if want := `weir_plugin_skipped_total{plugin="badjson",route="` + route + `"} 1`; !strings.Contains(m.raw, want) {
			t.Errorf("want %s in:\n%s", want, grep(m.raw, "skipped"))
		}
	}
}

// TestMissingFeatureNamesSkippedPlugins pins issue 30 item 13: when a
// plugin marked on_error: skip failed, a missing feature's message named
// it in the chain that "returned keys", as if it had run.
func TestMissingFeatureNamesSkippedPlugins(t *testing.T) {
	g := testgw.Start(t)
	pushModel(t, g, "xy", "1", scorer(t, []string{"x", "y"}, []float32{1, 1}, 0))
	pushPlugin(t, g, "echo", "1", plugin(t, "wat-echo"))
	pushPlugin(t, g, "badjson", "1", plugin(t, "badjson"))
	variants := `"variants":[{"name":"a","model":"xy","weight":100}]`
	for _, c := range []struct {
		route, plugins string
		want           []string
	}{
		{"some-skipped", `[{"name":"echo"},{"name":"badjson","on_error":"skip"}]`, []string{
			`missing feature "y"`, "plugin chain echo@1 -> badjson@1 (failed and skipped: on_error skip) returned keys [x]"}},
		{"all-skipped", `[{"name":"badjson","on_error":"skip"}]`, []string{
			`missing feature "y"`, "every plugin of the route's chain badjson@1 failed and was skipped (on_error skip): the model got the request's keys [x]"}},
	} {
		setRoute(t, g, c.route, `{"plugins":`+c.plugins+`,`+variants+`}`)
		a := call(t, "POST", g.URL+"/v1/routes/"+c.route+"/predict", "", []byte(`{"x":3}`))
		msg, _ := a.body["error"].(string)
		for _, want := range c.want {
			if a.status != 502 || !strings.Contains(msg, want) {
				t.Errorf("%s: %d %q, want 502 containing %q", c.route, a.status, msg, want)
			}
		}
	}
}

func TestRouteSwapUnderLoad(t *testing.T) {
	g := testgw.Start(t)
	pushModel(t, g, "m", "1", scorer(t, []string{"x"}, []float32{1}, 0))
	pushModel(t, g, "m", "2", scorer(t, []string{"x"}, []float32{-1}, 0))
	pushPlugin(t, g, "echo", "1", plugin(t, "wat-echo"))
	// The swap is what is tested, not the plugin's deadline: 20 ms by
	// default, which a starved machine can exceed between two instructions.
	routes := []string{
		`{"plugins":[{"name":"echo","timeout":"2s"}],"variants":[{"name":"v1","model":"m","version":"1","weight":100}]}`,
		`{"variants":[{"name":"v2","model":"m","version":"2","weight":100}]}`,
	}
	setRoute(t, g, "swap", routes[0])
	var failed, served atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if a := call(t, "POST", g.URL+"/v1/routes/swap/predict", "", []byte(`{"x":1}`)); a.status != 200 {
					failed.Add(1)
					t.Errorf("request failed during a route swap: %d %s", a.status, a.raw)
				}
				served.Add(1)
			}
		}()
	}
	for i := 0; i < 20; i++ {
		setRoute(t, g, "swap", routes[i%2])
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || served.Load() == 0 {
		t.Fatalf("%d of %d requests failed", failed.Load(), served.Load())
	}
}

func TestOverloadAnswers429(t *testing.T) {
	g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) { o.MaxInFlight = 1 }))
	pushModel(t, g, "scorer", "1", scorer(t, []string{"x"}, []float32{1}, 0))
	pushPlugin(t, g, "loop", "1", plugin(t, "loop"))
	// Each request holds the only slot for the plugin's 20ms deadline.
	setRoute(t, g, "slow", `{"plugins":[{"name":"loop"}],"variants":[{"name":"a","model":"scorer","weight":100}]}`)
	statuses := make(chan int, 64)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 8; j++ {
				statuses <- call(t, "POST", g.URL+"/v1/routes/slow/predict", "", []byte(`{"x":1,"padding":"long enough to loop"}`)).status
			}
		}()
	}
	wg.Wait()
	close(statuses)
	seen := map[int]int{}
	for s := range statuses {
		seen[s]++
	}
	if seen[429] == 0 || seen[502] == 0 || seen[429]+seen[502] != 64 {
		t.Fatalf("statuses %v: want only 429 (over the limit) and 502 (the looping plugin)", seen)
	}
}

func TestShutdownDrainsRequestsInFlight(t *testing.T) {
	g := testgw.Start(t)
	pushModel(t, g, "scorer", "1", scorer(t, []string{"x"}, []float32{1}, 0))
	// A plugin that loops until its 300ms deadline: a request in flight
	// that long.
	err := g.Client.PushPluginLimits(context.Background(), "loop", "1", bytes.NewReader(plugin(t, "loop")), client.PluginLimits{Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	setRoute(t, g, "slow", `{"plugins":[{"name":"loop"}],"variants":[{"name":"a","model":"scorer","weight":100}]}`)
	done := make(chan answer, 1)
	go func() {
		done <- call(t, "POST", g.URL+"/v1/routes/slow/predict", "", []byte(`{"x":1,"padding":"long enough to loop"}`))
	}()
	testpoll.For(t, 5*time.Second, "the slow request to be in flight", func() error {
		if m := call(t, "GET", g.URL+"/metrics", "", nil).raw; !strings.Contains(m, "weir_inflight_requests 1") {
			return fmt.Errorf("metrics say %q, want weir_inflight_requests 1", grepLines(m, "weir_inflight_requests "))
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	a := <-done
	if a.status != 502 || !strings.Contains(a.raw, "deadline of 300ms") {
		t.Fatalf("the request in flight at shutdown got %d %s, want its own answer (the plugin's deadline)", a.status, a.raw)
	}
}

func TestBadPluginUploadStoresNothing(t *testing.T) {
	g := testgw.Start(t)
	for name, wasm := range map[string][]byte{
		"not wasm":        []byte("definitely not wasm"),
		"foreign imports": plugin(t, "foreign"),
	} {
		err := g.Client.PushPlugin(context.Background(), "p", "1", bytes.NewReader(wasm))
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Status != 400 {
			t.Errorf("%s: %v, want 400", name, err)
		}
	}
	if list, err := g.Client.ListPlugins(context.Background()); err != nil || len(list) != 0 {
		t.Fatalf("bad uploads left plugins behind: %+v %v", list, err)
	}
}

// TestPredictPassesJSONThroughPlugins: an event goes to the plugins as the
// client's JSON and from plugin to plugin as each returns it, decoded once
// at the end; a body that is not a JSON object is still the client's 400,
// not a plugin's 502, when nothing decoded it before the plugins.
func TestPredictPassesJSONThroughPlugins(t *testing.T) {
	g := testgw.Start(t)
	pushModel(t, g, "scorer", "1", scorer(t, txFeatures, []float32{0.5, 0.8, 3}, -4))
	pushPlugin(t, g, "echo", "1", plugin(t, "wat-echo"))
	setRoute(t, g, "raw", `{"plugins":[{"name":"echo"},{"name":"echo"}],"variants":[{"name":"a","model":"scorer","weight":100}]}`)
	body := `{"amount_log":1,"amount_zscore":2,"merchant_risk":0.5,"note":"caf\u00e9 \"x\"","n":[1,{"k":null}]}`
	a := call(t, "POST", g.URL+"/v1/routes/raw/predict", "", []byte(body))
	if a.status != 200 {
		t.Fatalf("predict: %d %s", a.status, a.raw)
	}
	// 0.5*1 + 0.8*2 + 3*0.5 - 4 = -0.4
	if s := a.body["outputs"].(map[string]any)["score"].(float64); math.Abs(s-1/(1+math.Exp(0.4))) > 1e-5 {
		t.Errorf("score %v, want sigmoid(-0.4)", s)
	}
	for _, bad := range []string{`{"amount_log":`, `{"amount_log":1}x`, `{"a":01}`, "{\"a\":\"\x01\"}"} {
		a := call(t, "POST", g.URL+"/v1/routes/raw/predict", "", []byte(bad))
		if msg, _ := a.body["error"].(string); a.status != 400 || !strings.Contains(msg, "not a JSON object") {
			t.Errorf("body %q: %d %s, want 400 saying it is not a JSON object", bad, a.status, a.raw)
		}
	}
}
