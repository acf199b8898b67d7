package gateway

import (
	"context"
	"net/http/httptest"
	"time"

	"github.com/gofiber/fiber/v2"
)

// RequestDeadlineForTest runs a request through g's deadline middleware and
// returns how long its context had left.
func RequestDeadlineForTest(g *Gateway) (left time.Duration, ok bool) {
	app := fiber.New()
	app.Use(g.requestDeadline)
	app.Get("/", func(c *fiber.Ctx) error {
		var d time.Time
		d, ok = c.UserContext().Deadline()
		left = time.Until(d)
		return nil
	})
	if _, err := app.Test(httptest.NewRequest("GET", "/", nil), -1); err != nil {
		return 0, false
	}
	return left, ok
}

// HoldShadows makes shadow requests wait until release is called, so a test
// can show that callers are answered without waiting for their shadow.
func HoldShadows(g *Gateway) (release func()) {
	g.shadowGate = make(chan struct{})
	return func() { close(g.shadowGate) }
}

// PluginChainForTest returns what predict does with a single-object body
// on route between reading it and the model: read the body (readRows),
// then run the chosen variant's plugin chain on it (runChain), as raw JSON
// when the route allows, decoding the last output. It is the plugin part
// of the real request path, for benchmarks.
func PluginChainForTest(g *Gateway, route string) (func(ctx context.Context, body []byte) error, error) {
	rt, _, err := g.routeFor(route)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, body []byte) error {
		rows, raw, err := readRows(body, g.opts.MaxRows, rawEnough(rt))
		if err != nil {
			return err
		}
		var row map[string]any
		if len(rows) == 1 {
			row = rows[0]
		}
		variant := rt.Choose("", false, func(string) string { return "" })
		_, err = g.runChain(ctx, rt.Name(), rt.PluginsFor(variant), row, raw, 0, nil, nil)
		return err
	}, nil
}

// RoutesForTest lists the HTTP endpoints g registered, as "METHOD /path"
// with fiber's parameters (":name", "*"), HEAD and middleware left out.
func RoutesForTest(g *Gateway) []string {
	var out []string
	for _, r := range g.app.GetRoutes(true) {
		if r.Method != fiber.MethodHead {
			out = append(out, r.Method+" "+r.Path)
		}
	}
	return out
}

// ChargeBudget charges n bytes against g's memory budget, as requests in
// flight would, until release is called.
func ChargeBudget(g *Gateway, n int64) (release func(), err error) {
	if err := g.budget.Acquire(context.Background(), n); err != nil {
		return nil, err
	}
	return func() { g.budget.Release(n) }, nil
}

// OnCloseForTest registers close to run at Shutdown, first of the parts.
func OnCloseForTest(g *Gateway, close func(context.Context) error) { g.onClose(close) }
