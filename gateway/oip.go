package gateway

import (
	"encoding/json"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/models"
)

func (g *Gateway) serverMetadata(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{
		"name":        "weir",
		"version":     Version,
		"extensions":  []string{"model_repository", "routes", "plugins", "canary", "drift", "features"},
		"onnxruntime": models.RuntimeVersion(),
	})
}

// modelParams reads and checks {name} and {version} (version may be absent).
func modelParams(c *fiber.Ctx) (name, version string, err error) {
	name, version = c.Params("name"), c.Params("version")
	if err := checkName("model", name); err != nil {
		return "", "", err
	}
	if version != "" {
		if err := checkName("version", version); err != nil {
			return "", "", err
		}
	}
	return name, version, nil
}

func (g *Gateway) modelMetadata(c *fiber.Ctx) error {
	name, version, err := modelParams(c)
	if err != nil {
		return err
	}
	v, err := g.resolve(name, version)
	if err != nil {
		return err
	}
	m, _ := g.models.Model(v.Name)
	versions := make([]string, 0, len(m.Versions))
	for _, mv := range m.Versions {
		versions = append(versions, mv.Version)
	}
	out := fiber.Map{
		"name":     v.Name,
		"versions": versions,
		"platform": "onnxruntime_onnx",
		"inputs":   tensorMeta(v.Session.Inputs()),
		"outputs":  tensorMeta(v.Session.Outputs()),
	}
	if version != "" || len(versions) > 1 {
		out["version"] = v.Version
	}
	if len(v.Features) > 0 {
		out["parameters"] = fiber.Map{"features": v.Features}
	}
	return c.JSON(out)
}

type tensorMetadata struct {
	Name     string          `json:"name"`
	Datatype models.Datatype `json:"datatype"`
	Shape    []int64         `json:"shape"`
}

func tensorMeta(ts []models.TensorInfo) []tensorMetadata {
	out := make([]tensorMetadata, len(ts))
	for i, t := range ts {
		out[i] = tensorMetadata{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape}
	}
	return out
}

func (g *Gateway) modelReady(c *fiber.Ctx) error {
	name, version, err := modelParams(c)
	if err != nil {
		return err
	}
	if _, err := g.resolve(name, version); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusOK)
}

// resolve finds the version an unrouted request for name means.
func (g *Gateway) resolve(name, version string) (*models.Version, error) {
	return g.models.Get(name, version)
}

// infer serves POST /v2/models/{name}[/versions/{v}]/infer.
func (g *Gateway) infer(c *fiber.Ctx) error {
	start := time.Now()
	g.met.inflight.Inc()
	defer g.met.inflight.Dec()
	name, version, err := modelParams(c)
	if err != nil {
		return err
	}
	var req models.InferRequest
	if err := json.Unmarshal(c.Body(), &req); err != nil {
		return weirerr.Invalidf("request body is not a valid inference request: %v", err)
	}
	v, err := g.resolve(name, version)
	if err != nil {
		return err
	}
	c.Set("X-Weir-Model", v.Name)
	c.Set("X-Weir-Model-Version", v.Version)
	resp, _, err := v.Infer(&req)
	code := fiber.StatusOK
	if err != nil {
		code = httpStatus(err)
	}
	g.met.observe(name, "", v.Name, v.Version, code, time.Since(start))
	if err != nil {
		return err
	}
	return writeJSON(c, resp)
}

// writeJSON encodes v as the response body.
func writeJSON(c *fiber.Ctx, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(b)
}
