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
	if status := p.send(); status != 200 {
		b.Fatalf("%s: status %d: %s", p.path, status, p.ctx.Response.Body())
	}
}

// send runs the request and returns its status.
func (p *predictCall) send() int {
	p.ctx.Request.Reset()
	p.ctx.Response.Reset()
	p.ctx.ResetUserValues() // as fasthttp's server does between requests: fiber keeps the request's context there
	p.ctx.Request.Header.SetMethod("POST")
	p.ctx.Request.SetRequestURI(p.path)
	p.ctx.Request.SetBody(p.body)
	p.h(&p.ctx)
	return p.ctx.Response.StatusCode()
}

// BenchmarkPluginPath is a plugin call's cost in the real request path,
// on a route with the WAT echo plugin and on the same route without
// plugins, over the same model.
//
//   - chain-none, chain-echo: what predict does between reading the body
//     and packing the model's input, through the gateway's own code
//     (readRows, the route's variant, runChain, the plugin registry and
//     host: pool, deadline, copies), under a request's context: decode the
//     body; or check it, run the chain on it as raw JSON and decode the
//     output. chain-echo minus chain-none, ns/op and allocs/op, is the
//     plugin call's cost without the noise of the rest of the request.
//   - shortcut: the plugin host alone (plugins.Host.AppendCall, as
//     plugins' BenchmarkEchoCall), which leaves out everything the
//     gateway does around a call.
//   - none, echo: predict through the gateway's handler in process
//     (fiber, the route, the chain, the model, the response and the event).
//   - paired: one request of each route per op, in alternating order, so
//     that the machine's load moves both alike; plugin-p50-ns is the
//     difference of their p50s. This is README's "a plugin call's host
//     cost in the real path".
//
// The handler's sub-benchmarks run last: each request's event is handled
// by the event pipeline in the background, whose work (and allocations,
// which testing counts process-wide) would otherwise spill into the
// others. For the same reason their ns/op and allocs/op include some of
// that work; the paired p50s are the figure to read.
//
// Run: go test -run '^$' -bench '^BenchmarkPluginPath$' -count 6 ./gateway/
func BenchmarkPluginPath(b *testing.B) {
	g := testgw.Start(b)
	setupPluginRoutes(b, g)
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
		slices.Sort(dn)
		slices.Sort(de)
		pn, pe := dn[len(dn)/2], de[len(de)/2]
		b.ReportMetric(float64(pn.Nanoseconds()), "none-p50-ns")
		b.ReportMetric(float64(pe.Nanoseconds()), "echo-p50-ns")
		b.ReportMetric(float64((pe - pn).Nanoseconds()), "plugin-p50-ns")
	})
}
