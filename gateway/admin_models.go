package gateway

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/weirhq/weir/internal/weirerr"
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
// header row, or a JSON array of objects.
func (g *Gateway) putReference(c *fiber.Ctx) error {
	name, version, err := modelParams(c)
	if err != nil {
		return err
	}
	body := bytes.Clone(c.Body())
	header, err := referenceHeader(body)
	if err != nil {
		return err
	}
	if err := g.models.SetReference(c.UserContext(), name, version, body, header); err != nil {
		return err
	}
	if g.onReference != nil {
		g.onReference(name, version, body)
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"model": name, "version": version, "features": header})
}

// referenceHeader returns the feature names of reference data and checks
// that it parses.
func referenceHeader(body []byte) ([]string, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, weirerr.Invalidf("reference data is empty: send CSV with a header row or a JSON array of objects")
	}
	if trimmed[0] == '[' {
		var rows []map[string]any
		if err := json.Unmarshal(trimmed, &rows); err != nil {
			return nil, weirerr.Invalidf("reference data is not a JSON array of objects: %v", err)
		}
		if len(rows) == 0 {
			return nil, weirerr.Invalidf("reference data holds no rows")
		}
		// Keys in first-seen order, as the first object lists them.
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		var names []string
		depth := 0
		for {
			tok, err := dec.Token()
			if err != nil {
				break
			}
			switch t := tok.(type) {
			case json.Delim:
				if t == '{' || t == '[' {
					depth++
				} else {
					depth--
				}
				if depth == 1 && t == '}' {
					return names, nil
				}
			case string:
				if depth == 2 && dec.More() {
					names = append(names, t)
					var skip json.RawMessage
					if err := dec.Decode(&skip); err != nil {
						return names, nil
					}
				}
			}
		}
		return names, nil
	}
	r := csv.NewReader(bytes.NewReader(trimmed))
	header, err := r.Read()
	if err != nil {
		return nil, weirerr.Invalidf("reference data is not CSV with a header row: %v", err)
	}
	n := 0
	for {
		rec, err := r.Read()
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			return nil, weirerr.Invalidf("reference CSV row %d: %v", n+2, err)
		}
		if len(rec) != len(header) {
			return nil, weirerr.Invalidf("reference CSV row %d has %d fields, the header has %d", n+2, len(rec), len(header))
		}
		n++
	}
	if n == 0 {
		return nil, weirerr.Invalidf("reference CSV has a header but no rows")
	}
	for i := range header {
		header[i] = strings.TrimSpace(header[i])
	}
	return header, nil
}

func (g *Gateway) deleteModel(c *fiber.Ctx) error {
	name, version, err := modelParams(c)
	if err != nil {
		return err
	}
	if g.modelInUse != nil {
		if routes := g.modelInUse(name, version); len(routes) > 0 {
			return weirerr.Conflictf("model %s@%s still gets traffic from route(s) %s: change those routes first", name, version, strings.Join(routes, ", "))
		}
	}
	if err := g.models.Delete(c.UserContext(), name, version); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
