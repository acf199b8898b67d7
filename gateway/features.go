package gateway

import (
	"bytes"
	"encoding/json"

	"github.com/gofiber/fiber/v2"

	"github.com/weirhq/weir/internal/weirerr"
)

// putFeatures merges a JSON object into an entity's online features.
func (g *Gateway) putFeatures(c *fiber.Ctx) error {
	entity := c.Params("entity")
	body, err := g.requestBody(c)
	if err != nil {
		return err
	}
	var obj map[string]any
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		return weirerr.Invalidf("features of %q must be a JSON object: %w", entity, err)
	}
	merged, err := g.features.Merge(c.UserContext(), entity, obj)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"entity": entity, "features": merged})
}

func (g *Gateway) getFeatures(c *fiber.Ctx) error {
	entity := c.Params("entity")
	f, ok, err := g.features.Get(c.UserContext(), entity)
	if err != nil {
		return err
	}
	if !ok {
		return weirerr.NotFoundf("entity %q has no features", entity)
	}
	return c.JSON(fiber.Map{"entity": entity, "features": f})
}

func featureSetParam(c *fiber.Ctx) (string, error) {
	name := c.Params("name")
	return name, checkName("feature set", name)
}

func (g *Gateway) putFeatureSet(c *fiber.Ctx) error {
	name, err := featureSetParam(c)
	if err != nil {
		return err
	}
	body, err := g.requestBody(c)
	if err != nil {
		return err
	}
	fs, err := g.features.DefineSet(c.UserContext(), name, body)
	if err != nil {
		return err
	}
	return c.JSON(fs)
}

func (g *Gateway) getFeatureSet(c *fiber.Ctx) error {
	name, err := featureSetParam(c)
	if err != nil {
		return err
	}
	fs, err := g.features.GetSet(c.UserContext(), name)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"set": fs, "stats": g.features.Stats(name)})
}

func (g *Gateway) listFeatureSets(c *fiber.Ctx) error {
	sets, err := g.features.ListSets(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"featuresets": sets})
}

func (g *Gateway) deleteFeatureSet(c *fiber.Ctx) error {
	name, err := featureSetParam(c)
	if err != nil {
		return err
	}
	if err := g.features.DeleteSet(c.UserContext(), name); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// ingestFeatureSet accepts a batch of raw events (JSON array, object, or
// one object per line) for a feature set's aggregations.
func (g *Gateway) ingestFeatureSet(c *fiber.Ctx) error {
	name, err := featureSetParam(c)
	if err != nil {
		return err
	}
	body, err := g.requestBody(c)
	if err != nil {
		return err
	}
	accepted, rejected, err := g.features.Ingest(c.UserContext(), name, body)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"set": name, "accepted": accepted, "rejected": rejected})
}

// backfillFeatureSet replays a historical file (the body: CSV with a header
// row, or Parquet) through a feature set's aggregations, in timestamp order
// (features.Store.Backfill). The format is the query's format=csv|parquet,
// else the Content-Type, else Parquet's magic bytes, else CSV. This is what
// `weir features backfill` calls, so it needs only --server and the admin
// token, not a NATS connection.
func (g *Gateway) backfillFeatureSet(c *fiber.Ctx) error {
	name, err := featureSetParam(c)
	if err != nil {
		return err
	}
	body, err := g.requestBody(c)
	if err != nil {
		return err
	}
	format := c.Query("format")
	if format == "" {
		switch ct := string(c.Request().Header.ContentType()); {
		case bytes.HasPrefix([]byte(ct), []byte("text/csv")):
			format = "csv"
		case bytes.Contains([]byte(ct), []byte("parquet")):
			format = "parquet"
		case bytes.HasPrefix(body, []byte("PAR1")):
			format = "parquet"
		default:
			format = "csv"
		}
	}
	n, err := g.features.Backfill(c.UserContext(), name, bytes.NewReader(body), format, nil)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"set": name, "accepted": n, "format": format})
}
