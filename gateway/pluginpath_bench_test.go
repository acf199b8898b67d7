package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/weirhq/weir/examples/fraud"
	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/plugins"
)

// Plugin routes over the same 4-feature model (bench4): no plugins, the WAT
// echo plugin, and the Go fraud-features plugin.
const (
	pathNone = "/v1/routes/bench-none/predict"
	pathEcho = "/v1/routes/bench-echo/predict"
	pathGo   = "/v1/routes/bench-go/predict"
)

// A ~200-byte transaction; the no-plugin and echo routes get it with the
// features already computed, the Go plugin computes them.
var (
	benchTxWithFeatures = []byte(`{"tx_id":"tx-000123","account_id":"acct-00042","amount":120.5,"merchant":"grocer",` +
		`"country":"DE","ts":1764039600,"amount_log":4.8,"amount_zscore":0.3,"merchant_risk":0.05,"is_night":0}`)
	benchTxRaw = []byte(`{"tx_id":"tx-000123","account_id":"acct-00042","amount":120.5,"merchant":"grocer",` +
		`"country":"DE","ts":1764039600}`)
)

// setupPluginRoutes pushes bench4, the wat-echo and fraud-features
// plugins, and the routes bench-none, bench-echo and bench-go.
func setupPluginRoutes(b *testing.B, g *testgw.Gateway) {
	ctx := context.Background()
	m, err := onnx.MLP("bench4", []int{4, 8, 1}, 3)
	if err != nil {
		b.Fatal(err)
	}
	if err := g.Client.PushModel(ctx, "bench4", "1", bytes.NewReader(m), fraud.FeaturesV1); err != nil {
		b.Fatal(err)
	}
	dir := testgw.PluginDir(b)
	for _, p := range []string{"wat-echo", "fraud-features"} {
		wasm, err := os.ReadFile(filepath.Join(dir, p+".wasm"))
		if err != nil {
			b.Fatal(err)
		}
		if err := g.Client.PushPluginLimits(ctx, p, "1", bytes.NewReader(wasm), fraud.PluginLimits); err != nil {
			b.Fatal(err)
		}
	}
	variants := `"variants":[{"name":"v","model":"bench4","version":"1","weight":100}]`
	for name, plugins := range map[string]string{
		"bench-none": `[]`,
		"bench-echo": `[{"name":"wat-echo"}]`,
		"bench-go":   `[{"name":"fraud-features","config":{"merchant_risk":{"grocer":0.05},"default_risk":0.1}}]`,
	} {
		if err := g.Client.SetRoute(ctx, name, json.RawMessage(`{"plugins":`+plugins+`,`+variants+`}`)); err != nil {
			b.Fatal(err)
		}
	}
}

// predictCall runs one predict request through the gateway's handler in
// process and fails the benchmark unless it answers 200.
type predictCall struct {
	h    fasthttp.RequestHandler
	ctx  fasthttp.RequestCtx
	path string
	body []byte
}

func (p *predictCall) do(b *testing.B) {
	p.ctx.Request.Reset()
	p.ctx.Response.Reset()
	p.ctx.ResetUserValues() // as fasthttp's server does between requests: fiber keeps the request's context there
	p.ctx.Request.Header.SetMethod("POST")
	p.ctx.Request.SetRequestURI(p.path)
	p.ctx.Request.SetBody(p.body)
	p.h(&p.ctx)
	if p.ctx.Response.StatusCode() != 200 {
		b.Fatalf("%s: status %d: %s", p.path, p.ctx.Response.StatusCode(), p.ctx.Response.Body())
	}
}

// BenchmarkPluginPath is a plugin call's cost in the real request path:
// predict through the gateway's handler in process (fiber, the route, the
// plugin chain, the plugin host's pool, deadline and copies, the model,
// the response and the event), on a route with the WAT echo plugin and on
// the same route without plugins.
//
//   - none, echo: each route alone (ns/op and allocs/op of a request).
//   - paired: one request of each per op, in alternating order, so that
//     the machine's load moves both alike; plugin-ns/op is the mean of
//     echo minus none, plugin-p50-ns their p50s' difference, and
//     plugin-allocs/op the difference of their allocations. This is
//     README's "a plugin call in the real path".
//   - chain-none, chain-echo: the part of that path that differs, alone,
//     without fiber, the model or the event: what predict does between
//     reading the body and packing the model's input (decode the body; or
//     check it, run the route's chain on it as raw JSON and decode the
//     output), under a request's context. chain-echo minus chain-none is
//     the plugin's cost with less noise than paired's.
//   - shortcut: the plugin host alone (plugins.Host.AppendCall, as
//     plugins' BenchmarkEchoCall), which leaves out everything the
//     gateway does around a call.
//
// Run: go test -run '^$' -bench '^BenchmarkPluginPath$' -count 6 ./gateway/
func BenchmarkPluginPath(b *testing.B) {
	g := testgw.Start(b)
	setupPluginRoutes(b, g)
	h := g.Handler()
	none := &predictCall{h: h, path: pathNone, body: benchTxWithFeatures}
	echo := &predictCall{h: h, path: pathEcho, body: benchTxWithFeatures}
	for range 200 { // warm both
		none.do(b)
		echo.do(b)
	}
	for _, c := range []*predictCall{none, echo} {
		name := "none"
		if c == echo {
			name = "echo"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.do(b)
			}
		})
	}
	b.Run("paired", func(b *testing.B) {
		allocs := testing.AllocsPerRun(200, func() { echo.do(b) }) - testing.AllocsPerRun(200, func() { none.do(b) })
		var dn, de []time.Duration
		i := 0
		for b.Loop() {
			first, second := none, echo
			if i++; i%2 == 0 {
				first, second = echo, none
			}
			t0 := time.Now()
			first.do(b)
			t1 := time.Now()
			second.do(b)
			t2 := time.Now()
			if first == none {
				dn, de = append(dn, t1.Sub(t0)), append(de, t2.Sub(t1))
			} else {
				de, dn = append(de, t1.Sub(t0)), append(dn, t2.Sub(t1))
			}
		}
		var sum time.Duration
		for i := range dn {
			sum += de[i] - dn[i]
		}
		slices.Sort(dn)
		slices.Sort(de)
		b.ReportMetric(float64(sum.Nanoseconds())/float64(len(dn)), "plugin-ns/op")
		b.ReportMetric(float64((de[len(de)/2] - dn[len(dn)/2]).Nanoseconds()), "plugin-p50-ns")
		b.ReportMetric(allocs, "plugin-allocs/op")
	})
	for _, route := range []string{"bench-none", "bench-echo"} {
		run, err := gateway.PluginChainForTest(g.Gateway, route)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("chain-"+strings.TrimPrefix(route, "bench-"), func(b *testing.B) {
			// A request's context, as the gateway's deadline middleware
			// makes it.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			b.ReportAllocs()
			for b.Loop() {
				if err := run(ctx, benchTxWithFeatures); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("shortcut", func(b *testing.B) {
		ph, err := plugins.NewHost(context.Background(), plugins.Options{PoolSize: 2})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ph.Close(context.Background()) })
		if err := ph.Load(context.Background(), "wat-echo", "1", testgw.Plugin(b, "wat-echo"), plugins.Limits{Timeout: time.Second}); err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		dst := make([]byte, 0, 1024)
		b.ReportAllocs()
		for b.Loop() {
			if dst, err = ph.AppendCall(ctx, dst[:0], "wat-echo", "1", nil, benchTxWithFeatures, plugins.Limits{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
