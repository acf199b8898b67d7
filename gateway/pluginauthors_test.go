package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/internal/testpoll"
	"github.com/weirhq/weir/sdk/client"
)

func TestPredictTrace(t *testing.T) {
	g := fraudGateway(t)
	body := []byte(`{"account_id":"a1","amount":900,"merchant":"giftcards"}`)
	if a := call(t, "POST", g.URL+"/v1/routes/tx/predict?trace=1", "", body); a.status != 401 {
		t.Fatalf("trace without the admin token: %d %s", a.status, a.raw)
	}
	if a := call(t, "POST", g.URL+"/v1/routes/tx/predict", "", body); a.status != 200 || a.body["trace"] != nil {
		t.Fatalf("predict without trace: %d %s", a.status, a.raw)
	}
	a := call(t, "POST", g.URL+"/v1/routes/tx/predict?trace=1", g.Token, body)
	if a.status != 200 {
		t.Fatalf("trace: %d %s", a.status, a.raw)
	}
	var tr struct {
		Trace struct {
			Plugins []struct {
				Stage, Plugin, Version string
				Input, Output          map[string]any
				TimeUS                 float64 `json:"time_us"`
			}
			ModelInput struct {
				Name     string
				Shape    []int
				Features []string
				Data     []float64
			} `json:"model_input"`
			ModelOutput []struct {
				Name string
				Data []float64
			} `json:"model_output"`
		}
	}
	if err := json.Unmarshal([]byte(a.raw), &tr); err != nil {
		t.Fatal(err)
	}
	steps := tr.Trace.Plugins
	if len(steps) != 2 || steps[0].Stage != "plugins" || steps[0].Plugin != "fraud-features" || steps[0].Version != "1" ||
		steps[1].Stage != "postprocess" || steps[1].Plugin != "decision" {
		t.Fatalf("trace steps: %s", a.raw)
	}
	if steps[0].Input["amount"] != 900.0 || steps[0].Output["merchant_risk"] != 0.9 || steps[0].TimeUS <= 0 {
		t.Errorf("enrichment step: %+v", steps[0])
	}
	if steps[1].Output["decision"] != "block" || steps[1].Input["outputs"] == nil {
		t.Errorf("post-processing step: %+v", steps[1])
	}
	in := tr.Trace.ModelInput
	if strings.Join(in.Features, ",") != strings.Join(txFeatures, ",") || len(in.Data) != 3 || in.Data[2] != 0.9 || len(in.Shape) != 2 {
		t.Errorf("model input: %+v", in)
	}
	if len(tr.Trace.ModelOutput) == 0 || len(tr.Trace.ModelOutput[0].Data) == 0 {
		t.Errorf("model output: %s", a.raw)
	}
}

func TestPluginErrorsNameTheCulprit(t *testing.T) {
	g := testgw.Start(t)
	pushModel(t, g, "m", "1", scorer(t, []string{"x"}, []float32{1}, 0))
	pushPlugin(t, g, "badjson", "1", plugin(t, "badjson"))
	pushPlugin(t, g, "goplugin", "3", plugin(t, "goplugin"))
	pushPlugin(t, g, "guesterr", "1", plugin(t, "guesterr"))
	setRoute(t, g, "bad", `{"plugins":[{"name":"badjson"}],"variants":[{"name":"a","model":"m","weight":100}]}`)
	setRoute(t, g, "go", `{"plugins":[{"name":"goplugin","timeout":"2s"}],"variants":[{"name":"a","model":"m","weight":100}]}`)
	setRoute(t, g, "dflt", `{"postprocess":[{"name":"guesterr","on_error":{"default":{"decision":"review"}}}],"variants":[{"name":"a","model":"m","weight":100}]}`)
	for _, c := range []struct {
		route, body string
		status      int
		want        []string
	}{
		{"bad", `{"x":1}`, 502, []string{`plugin "badjson@1" returned invalid JSON at byte 12 of 12`, `{"x":1,"y":}`}},
		{"go", `{"do":"convert","x":1}`, 502, []string{`plugin "goplugin@3": failed (status 1): panic: interface conversion: interface {} is nil, not string [at main.handle (main.go:`}},
		{"go", `[{"x":1},{"do":"fail","x":2}]`, 502, []string{`row 1: plugin "goplugin@3": failed (status 1): asked to fail`}},
	} {
		a := call(t, "POST", g.URL+"/v1/routes/"+c.route+"/predict", "", []byte(c.body))
		msg, _ := a.body["error"].(string)
		for _, w := range c.want {
			if a.status != c.status || !strings.Contains(msg, w) {
				t.Errorf("%s %s: %d %s, want %d containing %q", c.route, c.body, a.status, a.raw, c.status, w)
			}
		}
	}
	// A traced failure carries the trace up to the failing plugin.
	a := call(t, "POST", g.URL+"/v1/routes/bad/predict?trace=1", g.Token, []byte(`{"x":1}`))
	if a.status != 502 || !strings.Contains(a.raw, `"trace":{"plugins":[{"stage":"plugins","row":0,"plugin":"badjson","version":"1","input":{"x":1},"error":"plugin \"badjson@1\" returned invalid JSON`) {
		t.Errorf("traced failure: %d %s", a.status, a.raw)
	}
	// on_error default: the failing post-processor's answer is the default.
	a = call(t, "POST", g.URL+"/v1/routes/dflt/predict", "", []byte(`{"x":1}`))
	if a.status != 200 || a.body["result"].(map[string]any)["decision"] != "review" {
		t.Errorf("on_error default: %d %s", a.status, a.raw)
	}
}

// pluginDetail is one version's entry in GET /v1/plugins.
func pluginTimeout(t *testing.T, g *testgw.Gateway, name, version string) string {
	t.Helper()
	var out struct {
		Plugins []struct {
			Name    string
			Details []struct{ Version, Timeout string }
		}
	}
	if err := g.Client.Get(context.Background(), "/v1/plugins", &out); err != nil {
		t.Fatal(err)
	}
	for _, p := range out.Plugins {
		for _, d := range p.Details {
			if p.Name == name && d.Version == version {
				return d.Timeout
			}
		}
	}
	return "(not listed)"
}

// TestPluginLimitsBelongToTheVersion: a re-push of the same bytes without
// limits keeps the stored ones, a re-push with limits changes them, and
// every replica (and a restarted one) runs under the stored limits. A
// route's plugin entry overrides them.
func TestPluginLimitsBelongToTheVersion(t *testing.T) {
	dir := t.TempDir()
	a := testgw.Start(t, testgw.WithDataDir(dir))
	b := testgw.Start(t, testgw.WithNATS(a.NATSURL()))
	ctx := context.Background()
	loop := plugin(t, "loop") // loops forever on inputs over 10 bytes
	push := func(l client.PluginLimits) {
		t.Helper()
		if err := a.Client.PushPluginLimits(ctx, "loop", "1", bytes.NewReader(loop), l); err != nil {
			t.Fatal(err)
		}
	}
	push(client.PluginLimits{Timeout: 150 * time.Millisecond})
	push(client.PluginLimits{}) // same bytes, no limits: kept
	if got := pluginTimeout(t, a, "loop", "1"); got != "150ms" {
		t.Errorf("after a re-push without limits the stored timeout is %q, want 150ms", got)
	}
	pushModel(t, a, "m", "1", scorer(t, []string{"x"}, []float32{1}, 0))
	setRoute(t, a, "r", `{"plugins":[{"name":"loop"}],"variants":[{"name":"a","model":"m","weight":100}]}`)
	setRoute(t, a, "fast", `{"plugins":[{"name":"loop","timeout":"30ms"}],"variants":[{"name":"a","model":"m","weight":100}]}`)
	long := []byte(`{"x":1,"padding":"makes it loop"}`)
	deadline := func(g *testgw.Gateway, route, want string) func() (bool, string) {
		return func() (bool, string) {
			r := call(t, "POST", g.URL+"/v1/routes/"+route+"/predict", "", long)
			msg, _ := r.body["error"].(string)
			return r.status == 502 && strings.Contains(msg, want), r.raw
		}
	}
	eventually(t, 20*time.Second, deadline(a, "r", "deadline of 150ms exceeded"), "stored limit on the gateway pushed to")
	eventually(t, 20*time.Second, deadline(b, "r", "deadline of 150ms exceeded"), "stored limit on the second gateway")
	eventually(t, 20*time.Second, deadline(a, "fast", "deadline of 30ms exceeded"), "the route's override")

	// Changing them is explicit, and reaches the other replica.
	push(client.PluginLimits{Timeout: 80 * time.Millisecond})
	eventually(t, 20*time.Second, deadline(b, "r", "deadline of 80ms exceeded"), "changed limit on the second gateway")

	// A restart applies the stored limits.
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := b.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	a2 := testgw.Start(t, testgw.WithDataDir(dir))
	eventually(t, 20*time.Second, deadline(a2, "r", "deadline of 80ms exceeded"), "stored limit after a restart")
	if got := pluginTimeout(t, a2, "loop", "1"); got != "80ms" {
		t.Errorf("after a restart the listed timeout is %q, want 80ms", got)
	}
}

// eventually polls cond until it holds (testpoll.For), failing with the
// last state it reported.
func eventually(t *testing.T, timeout time.Duration, cond func() (bool, string), what string) {
	t.Helper()
	testpoll.For(t, timeout, what, func() error {
		if ok, state := cond(); !ok {
			return errors.New(state)
		}
		return nil
	})
}

// pluginCanaryGateway serves route "r" on model m@1 through plugin
// wat-echo@1 (stable), with a canary variant at weight 0 on the same model
// running canaryPlugin instead.
func pluginCanaryGateway(t *testing.T, canaryPlugin string) *testgw.Gateway {
	g := canaryGateway(t)
	pushPlugin(t, g, "echo", "1", plugin(t, "wat-echo"))
	pushPlugin(t, g, "echo", "2", plugin(t, canaryPlugin))
	setRoute(t, g, "r", `{"plugins":[{"name":"echo","version":"1","timeout":"2s"}],
		"variants":[{"name":"stable","model":"m","version":"1","weight":100},
		{"name":"canary","model":"m","version":"1","weight":0,"plugins":[{"name":"echo","version":"2","timeout":"2s"}]}],
		"sticky":{"header":"X-User"}}`)
	return g
}

type routeVariants struct {
	Plugins  []struct{ Name, Version string }
	Variants []struct {
		Name, Model, Version string
		Weight               int
		Plugins              *[]struct{ Name, Version string }
	}
}

func getRoute(t *testing.T, g *testgw.Gateway, name string) (routeVariants, string) {
	t.Helper()
	raw, err := g.Client.GetRoute(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	var rt routeVariants
	if err := json.Unmarshal(raw, &rt); err != nil {
		t.Fatal(err)
	}
	return rt, string(raw)
}

func TestPluginVersionCanaryPromotes(t *testing.T) {
	g := pluginCanaryGateway(t, "c-normalize")
	// c-normalize answers differently on purpose: the answers gate is off.
	startRollout(t, g, `{"model":"m","version":"1","steps":[50,100],"interval":"300ms","min_requests":5,"max_error_rate":0.05,"max_p99_ms":2000,"max_drift":"off"}`)
	sent, failed := drive(t, g, 20000, func() bool { return settled(rollout(t, g, "r")) })
	if st := rollout(t, g, "r"); st.State != "promoted" || failed != 0 {
		t.Fatalf("after %d requests (%d failed): %+v, want promoted", sent, failed, st)
	}
	// The promoted chain is the route's own: the route names echo@2, and
	// echo@1, which nothing runs any more, can be deleted.
	rt, raw := getRoute(t, g, "r")
	if len(rt.Variants) != 1 || rt.Variants[0].Weight != 100 || rt.Variants[0].Plugins != nil ||
		len(rt.Plugins) != 1 || rt.Plugins[0].Version != "2" {
		t.Fatalf("route after promotion: %s, want the route's chain on echo@2", raw)
	}
	a := call(t, "POST", g.URL+"/v1/routes/r/predict?trace=1", g.Token, []byte(`{"x":1}`))
	if a.status != 200 || !strings.Contains(a.raw, `"plugin":"echo","version":"2"`) {
		t.Errorf("after promotion the request ran: %d %s", a.status, a.raw)
	}
	if a := call(t, "DELETE", g.URL+"/v1/plugins/echo/versions/1", g.Token, nil); a.status != 204 {
		t.Errorf("deleting echo@1 after promotion: %d %s, want 204", a.status, a.raw)
	}
}

func TestPluginVersionCanaryRollsBack(t *testing.T) {
	g := pluginCanaryGateway(t, "guesterr") // echo@2 fails every call
	startRollout(t, g, `{"model":"m","version":"1","steps":[50,100],"interval":"300ms","min_requests":10,"max_error_rate":0.05}`)
	drive(t, g, 20000, func() bool { return settled(rollout(t, g, "r")) })
	if st := rollout(t, g, "r"); st.State != "rolled_back" || !strings.Contains(st.Reason, "error rate") {
		t.Fatalf("status %+v, want rolled_back on the error rate", st)
	}
	rt, raw := getRoute(t, g, "r")
	if len(rt.Plugins) != 1 || rt.Plugins[0].Version != "1" || len(rt.Variants) != 2 || rt.Variants[0].Plugins != nil || rt.Variants[1].Weight != 0 {
		t.Fatalf("route after rollback: %s", raw)
	}
	for i := 0; i < 20; i++ {
		if a := call(t, "POST", g.URL+"/v1/routes/r/predict", "", []byte(`{"x":1}`)); a.status != 200 || a.body["variant"] != "stable" {
			t.Fatalf("after rollback: %d %s", a.status, a.raw)
		}
	}
}
