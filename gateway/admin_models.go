package gateway

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/models"
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
	batching, err := g.batchingQuery(c)
	if err != nil {
		return err
	}
	// The body goes to a temporary file, which ONNX Runtime loads and the
	// artifact store reads: a model is never whole in the Go heap.
	f, err := g.receiveUpload(c, "model")
	if err != nil {
		return err
	}
	defer os.Remove(f.Path) // moved into the model cache when it loads
	v, created, err := g.models.Push(c.UserContext(), name, version, f, models.UploadOptions{Features: features, Batching: batching})
	if err != nil {
		return err
	}
	a := pushAnswer{VersionState: models.VersionState{Version: v.Version, State: v.State, SHA256: v.Meta.Blob, Size: v.Meta.Size}, Created: created}
	if m, ok := g.models.Model(name); ok {
		for _, s := range m.Versions {
			if s.Version == v.Version {
				a.VersionState = s
			}
		}
	}
	if !created {
		a.Message = fmt.Sprintf("model %s@%s is already there with these bytes: nothing changed", name, version)
		return c.JSON(a)
	}
	a.Message = fmt.Sprintf("model %s@%s uploaded and ready", name, version)
	return c.Status(fiber.StatusCreated).JSON(a)
}

// pushAnswer is the answer to a push: the version as listed, and whether
// this push created it (201) or found it there with the same bytes (200).
type pushAnswer struct {
	models.VersionState
	Created bool   `json:"created"`
	Message string `json:"message"`
}

// batchingQuery reads an upload's dynamic batching query parameters
// (max_batch_size, max_queue_delay, preferred_batch_sizes); nil when none
// is given.
func (g *Gateway) batchingQuery(c *fiber.Ctx) (*models.Batching, error) {
	size, delay, pref := c.Query("max_batch_size"), c.Query("max_queue_delay"), c.Query("preferred_batch_sizes")
	if size == "" && delay == "" && pref == "" {
		return nil, nil
	}
	var b models.Batching
	var err error
	if size != "" {
		if b.MaxBatchSize, err = strconv.Atoi(size); err != nil {
			return nil, weirerr.Invalidf("max_batch_size %q is not a whole number", size)
		}
	}
	if delay != "" {
		if b.MaxQueueDelay, err = models.ParseQueueDelay(delay); err != nil {
			return nil, err
		}
	}
	if pref != "" {
		if b.PreferredBatchSizes, err = models.ParseBatchSizes(pref); err != nil {
			return nil, err
		}
	}
	return &b, g.checkBatching(&b)
}

// checkBatching validates a batching setting's numbers and keeps its
// batches within this gateway's --max-rows.
func (g *Gateway) checkBatching(b *models.Batching) error {
	if err := b.Validate(); err != nil {
		return err
	}
	if b.MaxBatchSize > g.opts.MaxRows {
		return weirerr.Invalidf("max_batch_size %d is past this gateway's limit of %d rows a request (--max-rows)", b.MaxBatchSize, g.opts.MaxRows)
	}
	return nil
}

// putBatching changes a version's dynamic batching setting on every
// replica: {"max_batch_size": 32, "max_queue_delay": "500us",
// "preferred_batch_sizes": [8, 16]}; {"max_batch_size": 0} turns it off.
func (g *Gateway) putBatching(c *fiber.Ctx) error {
	name, version, err := modelParams(c)
	if err != nil {
		return err
	}
	body, err := g.requestBody(c)
	if err != nil {
		return err
	}
	var b models.Batching
	if err := b.UnmarshalJSON(body); err != nil {
		return err
	}
	if err := g.checkBatching(&b); err != nil {
		return err
	}
	if err := g.models.SetBatching(c.UserContext(), name, version, b); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"model": name, "version": version, "batching": b})
}

// putReference stores a version's reference (training) data: CSV with a
// header row, or a JSON array of objects. It must parse before anything is
// stored; every replica's drift monitor then measures against it.
func (g *Gateway) putReference(c *fiber.Ctx) error {
	name, version, err := modelParams(c)
	if err != nil {
		return err
	}
	body, err := g.readUpload(c, "reference data")
	if err != nil {
		return err
	}
	ref, err := drift.ParseReference(body, c.Get(fiber.HeaderContentType))
	if err != nil {
		return err
	}
	unmatched, err := g.models.SetReference(c.UserContext(), name, version, body, ref.Features())
	if err != nil {
		return err
	}
	g.drift.SetReference(name, version, ref)
	a := fiber.Map{"model": name, "version": version, "features": ref.Features(), "rows": ref.Rows()}
	if len(unmatched) > 0 {
		a["unmatched"] = unmatched
		a["message"] = fmt.Sprintf("columns %s name none of the model's features", strings.Join(unmatched, ", "))
	}
	return c.Status(fiber.StatusCreated).JSON(a)
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
