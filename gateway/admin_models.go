package gateway

import (
	"bytes"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/monitor/drift"
)

func (g *Gateway) listModels(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"models": g.models.List()})
}

func (g *Gateway) getModel(c *fiber.Ctx) error {
	name, _, err := modelParams(c)
	if err != nil {
		return err
	}
	m, ok := g.models.Model(name)
	if !ok {
		return weirerr.NotFoundf("model %q not found", name)
	}
	return c.JSON(m)
}

// putModel stores an uploaded ONNX model version (201 when loaded and ready).
func (g *Gateway) putModel(c *fiber.Ctx) error {
	name, version, err := modelParams(c)
	if err != nil {
		return err
	}
	var features []string
	if f := c.Query("features"); f != "" {
		for _, s := range strings.Split(f, ",") {
			if s = strings.TrimSpace(s); s != "" {
				features = append(features, s)
			}
		}
	}
	body := bytes.Clone(c.Body()) // fasthttp reuses the body after we return
	v, err := g.models.Upload(c.UserContext(), name, version, body, features)
	if err != nil {
		return err
	}
	summary, _ := g.models.Model(name)
	for _, s := range summary.Versions {
		if s.Version == v.Version {
			return c.Status(fiber.StatusCreated).JSON(s)
		}
	}
	return c.SendStatus(fiber.StatusCreated)
}

// putReference stores a version's reference (training) data: CSV with a
// header row, or a JSON array of objects. It must parse before anything is
// stored; every replica's drift monitor then measures against it.
func (g *Gateway) putReference(c *fiber.Ctx) error {
	name, version, err := modelParams(c)
	if err != nil {
		return err
	}
	body := bytes.Clone(c.Body())
	ref, err := drift.ParseReference(body, c.Get(fiber.HeaderContentType))
	if err != nil {
		return err
	}
	if err := g.models.SetReference(c.UserContext(), name, version, body, ref.Features()); err != nil {
		return err
	}
	g.drift.SetReference(name, version, ref)
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"model": name, "version": version, "features": ref.Features(), "rows": ref.Rows()})
}

func (g *Gateway) deleteModel(c *fiber.Ctx) error {
	name, version, err := modelParams(c)
	if err != nil {
		return err
	}
	{
		if routes := g.modelRoutes(name, version); len(routes) > 0 {
			return weirerr.Conflictf("model %s@%s still gets traffic from route(s) %s: change those routes first", name, version, strings.Join(routes, ", "))
		}
	}
	if err := g.models.Delete(c.UserContext(), name, version); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
