package gateway

import (
	"sort"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/router"
)

func (g *Gateway) listRoutes(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"routes": g.routes.List()})
}

func routeParam(c *fiber.Ctx) (string, error) {
	name := c.Params("route")
	return name, checkName("route", name)
}

func (g *Gateway) getRoute(c *fiber.Ctx) error {
	name, err := routeParam(c)
	if err != nil {
		return err
	}
	rt, ok := g.routes.Get(name)
	if !ok {
		return weirerr.NotFoundf("route %q not found", name)
	}
	return c.JSON(rt)
}

// putRoute validates a route against what this gateway serves (every
// model version and plugin it names must exist) and stores it.
func (g *Gateway) putRoute(c *fiber.Ctx) error {
	name, err := routeParam(c)
	if err != nil {
		return err
	}
	body, err := g.requestBody(c)
	if err != nil {
		return err
	}
	rt, err := router.Parse(name, body)
	if err != nil {
		return err
	}
	if err := g.checkRouteTargets(rt); err != nil {
		return err
	}
	stored, err := g.routes.Put(c.UserContext(), name, body)
	if err != nil {
		return err
	}
	return c.JSON(stored)
}

// checkRouteTargets reports the first model, version or plugin a route
// names that does not exist.
func (g *Gateway) checkRouteTargets(rt *router.Route) error {
	for _, v := range rt.Variants() {
		if !g.models.Has(v.Model) {
			return weirerr.Invalidf("variant %q: model %q not found", v.Name, v.Model)
		}
		if _, err := g.models.Get(v.Model, v.Version); weirerr.KindOf(err) == weirerr.NotFound {
			return weirerr.Invalidf("variant %q: %w", v.Name, err)
		}
	}
	cfg := rt.Config()
	if sh := cfg.Shadow; sh != nil {
		if _, err := g.models.Get(sh.Model, sh.Version); weirerr.KindOf(err) == weirerr.NotFound {
			return weirerr.Invalidf("shadow: %w", err)
		}
	}
	for _, chain := range [][]router.PluginRef{cfg.Plugins, cfg.Postprocess} {
		for _, p := range chain {
			if _, err := g.plugins.Resolve(p.Name, p.Version); weirerr.KindOf(err) == weirerr.NotFound {
				return weirerr.Invalidf("plugin %q: %w", p.Name, err)
			}
		}
	}
	return nil
}

func (g *Gateway) deleteRoute(c *fiber.Ctx) error {
	name, err := routeParam(c)
	if err != nil {
		return err
	}
	if err := g.routes.Delete(c.UserContext(), name); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// modelRoutes lists the routes that send traffic to model@version, for the
// 409 on delete: explicit references, and routes on "latest" when this is
// the model's last version.
func (g *Gateway) modelRoutes(model, version string) []string {
	routes := g.routes.References(model, version)
	if m, ok := g.models.Model(model); ok && len(m.Versions) == 1 {
		routes = append(routes, g.routes.References(model, "latest")...)
	}
	sort.Strings(routes)
	return routes
}

// routeStats serves GET /v1/routes/{route}/stats: per variant request
// count, error rate, latency and output distributions over a window
// (?window=15m, default 1h), for A/B comparisons.
func (g *Gateway) routeStats(c *fiber.Ctx) error {
	name, err := routeParam(c)
	if err != nil {
		return err
	}
	window, err := durationQuery(c, "window", time.Hour)
	if err != nil {
		return err
	}
	to := time.Now()
	return c.JSON(fiber.Map{"route": name, "from": to.Add(-window).UTC(), "to": to.UTC(),
		"variants": g.stats.Summary(name, to.Add(-window), to)})
}

// routeTimeseries serves GET /v1/routes/{route}/timeseries?since=1h.
func (g *Gateway) routeTimeseries(c *fiber.Ctx) error {
	name, err := routeParam(c)
	if err != nil {
		return err
	}
	since, err := durationQuery(c, "since", time.Hour)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"route": name, "bucket_seconds": 10, "variants": g.stats.Timeseries(name, since)})
}

func durationQuery(c *fiber.Ctx, key string, def time.Duration) (time.Duration, error) {
	s := c.Query(key)
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d > 24*time.Hour {
		return 0, weirerr.Invalidf("%s=%q: expected a duration such as 15m, at most 24h", key, s)
	}
	return d, nil
}
