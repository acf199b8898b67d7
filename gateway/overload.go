package gateway

import (
	"context"
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weirhq/weir/internal/overload"
	"github.com/weirhq/weir/internal/weirerr"
)

// What an inference request is charged against the memory budget
// (--memory-budget) for each byte of its body (inflated, as decoded): an
// estimate of what decoding it and running it hold, with margin.
// docs/rationale.md ("A budget of bytes in flight") has the measurements.
const (
	// tensorFactor: an OIP request (HTTP JSON or binary, gRPC) decodes
	// against the model's signature into typed tensors, which the runtime
	// copies, and whose outputs are encoded again: at worst (INT64 data of
	// one digit, "1,") each 2 bytes become 8 decoded, 8 in the runtime, 8
	// out, and the JSON read and written.
	tensorFactor = 16
	// treeFactor: a predict body decodes into Go maps and slices; an empty
	// object "{}" (3 bytes with its comma) costs a map of about 150.
	treeFactor = 64
)

// budgetWait is how long a request waits for room in the budget (or less,
// until its deadline) before it is answered 503.
const budgetWait = 100 * time.Millisecond

// chargeKey holds a request's charge (int64 bytes) until it ends.
const chargeKey = "weir.charge"

// newBudget makes the gateway's memory budget from --memory-budget (0:
// half the memory limit; negative: none) and registers its metrics.
func (g *Gateway) newBudget() *overload.Budget {
	size := g.opts.MemoryBudget
	if size == 0 {
		limit, err := overload.MemoryLimit()
		if err != nil {
			g.log.Warn("no memory budget: the memory limit is unknown (set --memory-budget)", "err", err)
			size = -1
		} else {
			size = overload.DefaultBudget(limit.Bytes)
			g.log.Info("memory budget", "bytes", size, "limit", limit.Bytes, "from", limit.Source)
		}
	}
	b := overload.New(size, budgetWait)
	g.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "weir_overload_budget_bytes",
			Help: "The memory budget of bytes in flight (--memory-budget); 0: none.",
		}, func() float64 { return float64(b.Size()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "weir_overload_inflight_bytes",
			Help: "Bytes charged against the memory budget by requests being served.",
		}, func() float64 { return float64(b.InFlight()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "weir_overload_shed_total",
			Help: "Requests refused because the memory budget had no room for them (503) or was smaller than they (413).",
		}, func() float64 { return float64(b.Shed()) }),
	)
	return b
}

// chargeBody charges c's request n body bytes times factor against the
// memory budget, before it decodes them; releaseCharge gives it back when
// the request ends.
func (g *Gateway) chargeBody(c *fiber.Ctx, n int, factor int64) error {
	if _, charged := c.Locals(chargeKey).(int64); charged {
		return nil
	}
	cost := int64(n) * factor
	if err := g.charge(c.UserContext(), cost, n, factor); err != nil {
		return err
	}
	c.Locals(chargeKey, cost)
	return nil
}

// releaseCharge gives back what chargeBody charged, once the handler has
// returned.
func (g *Gateway) releaseCharge(c *fiber.Ctx) error {
	err := c.Next()
	if cost, ok := c.Locals(chargeKey).(int64); ok {
		g.budget.Release(cost)
	}
	return err
}

// charge charges cost bytes (n received bytes times factor) against the
// memory budget, waiting briefly for room.
func (g *Gateway) charge(ctx context.Context, cost int64, n int, factor int64) error {
	err := g.budget.Acquire(ctx, cost)
	switch {
	case errors.Is(err, overload.ErrExhausted):
		return weirerr.Unavailablef("the gateway's memory budget of %s (--memory-budget) is in use by other requests, and this one needs %s (%d bytes × %d to decode): try again shortly",
			sizeString(g.budget.Size()), sizeString(cost), n, factor)
	case errors.Is(err, overload.ErrTooLarge):
		return weirerr.TooLargef("this request needs %s of memory (%d bytes × %d to decode), more than the gateway's whole memory budget of %s (--memory-budget): send less at once",
			sizeString(cost), n, factor, sizeString(g.budget.Size()))
	}
	return err
}
