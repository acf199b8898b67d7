package gateway

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/weirhq/weir/canary"
	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/monitor"
)

// canaryMetrics adapts the monitor's live per-variant stats (built from
// every replica's events) to what the canary analysis reads.
type canaryMetrics struct{ stats *monitor.Stats }

func (m canaryMetrics) VariantMetrics(route, variant string, from, to time.Time) (canary.VariantMetrics, error) {
	s, ok := m.stats.Summary(route, from, to)[variant]
	if !ok {
		return canary.VariantMetrics{}, nil
	}
	return canary.VariantMetrics{
		Requests:     s.Requests,
		Errors:       s.Errors,
		ClientErrors: s.ClientErrors,
		P99:          time.Duration(s.P99Ms * float64(time.Millisecond)),
	}, nil
}

// AnswerShifts compares two variants' answers over the same range, for the
// canary's answers gate.
func (m canaryMetrics) AnswerShifts(route, variant, base string, from, to time.Time) map[string]canary.AnswerShift {
	shifts := m.stats.AnswerShifts(route, variant, base, from, to)
	out := make(map[string]canary.AnswerShift, len(shifts))
	for name, sh := range shifts {
		out[name] = canary.AnswerShift{PSI: sh.PSI, Count: sh.Count, BaseCount: sh.BaseCount}
	}
	return out
}

// startRollout serves POST /v1/routes/{route}/rollout.
func (g *Gateway) startRollout(c *fiber.Ctx) error {
	name, err := routeParam(c)
	if err != nil {
		return err
	}
	body, err := g.requestBody(c)
	if err != nil {
		return err
	}
	spec, err := canary.ParseSpec(body)
	if err != nil {
		return err
	}
	if _, err := g.models.Get(spec.Model, spec.Version); weirerr.KindOf(err) == weirerr.NotFound {
		return weirerr.Invalidf("rollout target: %w", err)
	}
	st, err := g.rollouts.Start(c.UserContext(), name, spec)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(st)
}

func (g *Gateway) getRollout(c *fiber.Ctx) error {
	name, err := routeParam(c)
	if err != nil {
		return err
	}
	st, err := g.rollouts.Status(c.UserContext(), name)
	if err != nil {
		return err
	}
	return c.JSON(st)
}

// listRollouts serves GET /v1/rollouts: every route's current rollout
// (finished ones too, until the next starts), by route name, for
// dashboards. A route that never had one is left out.
func (g *Gateway) listRollouts(c *fiber.Ctx) error {
	out := []*canary.Status{}
	for _, rt := range g.routes.List() {
		st, err := g.rollouts.Status(c.UserContext(), rt.Name())
		if weirerr.KindOf(err) == weirerr.NotFound {
			continue
		}
		if err != nil {
			return err
		}
		out = append(out, st)
	}
	return c.JSON(fiber.Map{"rollouts": out})
}

// rolloutAction serves POST /v1/routes/{route}/rollout/{promote|pause|resume|abort}.
func (g *Gateway) rolloutAction(c *fiber.Ctx) error {
	name, err := routeParam(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	var st *canary.Status
	switch action := c.Params("action"); action {
	case "promote":
		st, err = g.rollouts.Promote(ctx, name)
	case "pause":
		st, err = g.rollouts.Pause(ctx, name)
	case "resume":
		st, err = g.rollouts.Resume(ctx, name)
	case "abort":
		st, err = g.rollouts.Abort(ctx, name)
	default:
		return weirerr.NotFoundf("unknown rollout action %q: use promote, pause, resume or abort", action)
	}
	if err != nil {
		return err
	}
	return c.JSON(st)
}
