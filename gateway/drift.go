package gateway

import (
	"encoding/json"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/monitor/drift"
)

// getDrift serves GET /v1/drift/{model}[/versions/{v}].
func (g *Gateway) getDrift(c *fiber.Ctx) error {
	name, version, err := modelParams(c)
	if err != nil {
		return err
	}
	var res []drift.FeatureDrift
	if version == "" {
		res, err = g.drift.ModelResults(name)
	} else {
		res, err = g.drift.Results(name, version)
	}
	if weirerr.KindOf(err) == weirerr.NotFound && g.models.Has(name) {
		res, err = nil, nil // a model with no traffic yet
	}
	if err != nil {
		return err
	}
	if res == nil {
		res = []drift.FeatureDrift{}
	}
	return c.JSON(fiber.Map{"model": name, "config": g.drift.Config(name), "results": res})
}

// putDriftConfig serves PUT /v1/drift/{model}/config: the model's drift
// policy (metric, threshold, window, webhook). window_age takes a duration
// string such as "5m".
func (g *Gateway) putDriftConfig(c *fiber.Ctx) error {
	name, _, err := modelParams(c)
	if err != nil {
		return err
	}
	var in struct {
		drift.Config
		WindowAge string `json:"window_age"`
	}
	body, err := g.requestBody(c)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return weirerr.Invalidf("drift config is not valid JSON: %w", err)
	}
	cfg := in.Config
	if in.WindowAge != "" {
		d, err := time.ParseDuration(in.WindowAge)
		if err != nil {
			return weirerr.Invalidf("window_age %q: expected a duration such as 5m", in.WindowAge)
		}
		cfg.WindowAge = d
	}
	if err := g.drift.SetConfig(name, cfg); err != nil {
		return err
	}
	return c.JSON(g.drift.Config(name))
}

// getAlerts serves GET /v1/alerts?n=50: the newest drift alerts.
func (g *Gateway) getAlerts(c *fiber.Ctx) error {
	n := c.QueryInt("n", 50)
	if n <= 0 || n > 1000 {
		return weirerr.Invalidf("n=%d: expected 1 to 1000", n)
	}
	return c.JSON(fiber.Map{"alerts": g.drift.RecentAlerts(n)})
}
