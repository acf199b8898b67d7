package gateway

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/weirhq/weir/models"
	"github.com/weirhq/weir/monitor"
	"github.com/weirhq/weir/router"
)

// serverExtensions are the protocol extensions GET /v2 and gRPC's
// ServerMetadata report.
var serverExtensions = []string{"model_repository", "binary_tensor_data", "routes", "plugins", "canary", "drift", "features"}

func (g *Gateway) serverMetadata(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{
		"name":        "weir",
		"version":     Version,
		"extensions":  serverExtensions,
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
	md, err := g.modelMeta(name, version)
	if err != nil {
		return err
	}
	return c.JSON(md)
}

// modelMetadataResponse answers GET /v2/models/{name}[/versions/{v}] (and
// gRPC's ModelMetadata).
type modelMetadataResponse struct {
	Name       string           `json:"name"`
	Versions   []string         `json:"versions"`
	Version    string           `json:"version,omitempty"`
	Platform   string           `json:"platform"`
	Inputs     []tensorMetadata `json:"inputs"`
	Outputs    []tensorMetadata `json:"outputs"`
	Parameters map[string]any   `json:"parameters,omitempty"`
}

// modelMeta describes the version name (a model or route) and version mean.
func (g *Gateway) modelMeta(name, version string) (*modelMetadataResponse, error) {
	v, err := g.resolve(name, version)
	if err != nil {
		return nil, err
	}
	m, _ := g.models.Model(v.Name)
	versions := make([]string, 0, len(m.Versions))
	for _, mv := range m.Versions {
		versions = append(versions, mv.Version)
	}
	out := &modelMetadataResponse{
		Name:     v.Name,
		Versions: versions,
		Platform: "onnxruntime_onnx",
		Inputs:   tensorMeta(v.Session.Inputs()),
		Outputs:  tensorMeta(v.Session.Outputs()),
	}
	if version != "" || len(versions) > 1 {
		out.Version = v.Version
	}
	if len(v.Features) > 0 {
		out.Parameters = map[string]any{"features": v.Features}
	}
	return out, nil
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
	return c.JSON(fiber.Map{"name": name, "ready": true})
}

// resolve finds the version a metadata or readiness request for name
// means: a model's version, or for a route its first variant's version (a
// variant name or a version of that model when {v} is given).
func (g *Gateway) resolve(name, version string) (*models.Version, error) {
	if rt, ok := g.routes.Get(name); ok {
		if vr, ok := rt.Variant(version); ok {
			return g.models.Get(vr.Model, vr.Version)
		}
		first := rt.Variants()[0]
		if version == "" {
			version = first.Version
		}
		return g.models.Get(first.Model, version)
	}
	return g.models.Get(name, version)
}

// infer serves POST /v2/models/{name}[/versions/{v}]/infer, with JSON or
// the binary tensor extension (binary.go).
func (g *Gateway) infer(c *fiber.Ctx) error {
	start := time.Now()
	if err := g.admit(); err != nil {
		return err
	}
	defer g.release()
	name, version, err := modelParams(c)
	if err != nil {
		return err
	}
	var req models.InferRequest
	decode := func(s *models.Session) error { return g.decodeInferRequest(c, s, &req) }
	resp, res, err := g.inferOIP(oipCall{ctx: c.UserContext(), start: start, name: name, version: version, req: &req, decode: decode, header: headerOf(c)})
	if res.Variant != "" {
		c.Set("X-Weir-Variant", res.Variant)
	}
	if res.Version != "" {
		c.Set("X-Weir-Model", res.Model)
		c.Set("X-Weir-Model-Version", res.Version)
	}
	if err != nil {
		return err
	}
	return writeInferResponse(c, &req, resp)
}

// oipCall is one OIP inference request, whichever transport brought it.
type oipCall struct {
	ctx           context.Context // the caller's: its deadline bounds a wait for a batch
	start         time.Time
	name, version string // model or route name; pinned version or variant, or ""
	req           *models.InferRequest
	// decode, when not nil, fills req from the request's body for the model
	// that will run it (HTTP), once it is resolved: a request for an unknown
	// model costs nothing, and a known one bounds what the body may build.
	// Without it, req came decoded (gRPC).
	decode func(*models.Session) error
	header func(string) string // request headers (HTTP) or metadata (gRPC)
}

// oipServed says which model version served (or failed) a call, and the
// route variant to report (empty for a model's implicit route).
type oipServed struct {
	Model, Version, Variant string
}

// inferOIP is the inference core that HTTP and gRPC share: when name is a
// route, its split picks the variant (sticky by header); a pinned version
// bypasses the split. It publishes the call's event and mirrors it to the
// route's shadow.
func (g *Gateway) inferOIP(call oipCall) (*models.InferResponse, oipServed, error) {
	name, version, req := call.name, call.version, call.req
	var served oipServed
	ev := &monitor.Event{TS: call.start.UTC(), Route: name}
	var rt *router.Route
	if version != "" {
		ev.Model, ev.Version, ev.Pinned = name, version, true
		if r, ok := g.routes.Get(name); ok {
			// On a route, {v} names a variant or a version of the first
			// variant's model.
			rt = r
			if vr, ok := r.Variant(version); ok {
				ev.Model, ev.Version, ev.Variant = vr.Model, vr.Version, vr.Name
				served.Variant = vr.Name
			} else {
				ev.Model = r.Variants()[0].Model
			}
		}
	} else {
		var implicit bool
		var err error
		if rt, implicit, err = g.routeFor(name); err != nil {
			return nil, served, err
		}
		key, hasKey := headerStickyKey(rt, call.header)
		variant := rt.Choose(key, hasKey, call.header)
		ev.Model, ev.Version, ev.Variant = variant.Model, variant.Version, variant.Name
		if !implicit {
			served.Variant = variant.Name
		}
	}
	v, err := g.models.Get(ev.Model, ev.Version)
	if err == nil {
		ev.Model, ev.Version = v.Name, v.Version
	}
	if ev.Version != "" {
		served.Model, served.Version = ev.Model, ev.Version
	}
	if err == nil && call.decode != nil && v.Session != nil {
		// A body that is no request for this model is refused before the
		// model is asked: no event, as when it was decoded first.
		if err := call.decode(v.Session); err != nil {
			return nil, served, err
		}
	}
	var resp *models.InferResponse
	if err == nil {
		resp, err = g.runInfer(call.ctx, v, req, ev)
	}
	err = g.finish(ev, call.start, err)
	if err != nil {
		return nil, served, err
	}
	if rt != nil {
		if sh, ok := rt.Shadow(); ok {
			// The shadow runs after the handler has returned, when the body
			// the request's data points into is reused.
			sreq := *req
			sreq.Detach()
			g.mirror(name, sh, func(ctx context.Context, v *models.Version) (*monitor.Event, error) {
				// The shadow's own model version, not the caller's.
				sev := &monitor.Event{Model: v.Name, Version: v.Version}
				_, err := g.runInfer(ctx, v, &sreq, sev)
				return sev, err
			})
		}
	}
	return resp, served, nil
}

// headerStickyKey reads a route's sticky key from a header (OIP requests
// have no body fields to be sticky by).
func headerStickyKey(rt *router.Route, header func(string) string) (string, bool) {
	s, ok := rt.Sticky()
	if !ok || s.Header == "" {
		return "", false
	}
	k := header(s.Header)
	return k, k != ""
}

// runInfer runs an OIP request on v, recording the features and outputs
// in ev.
func (g *Gateway) runInfer(ctx context.Context, v *models.Version, req *models.InferRequest, ev *monitor.Event) (*models.InferResponse, error) {
	resp, inputs, err := v.Infer(ctx, req)
	ev.Features = inputFeatures(v, inputs)
	models.Release(inputs) // the event holds copies of what it needs
	if err != nil {
		return nil, err
	}
	outs := make([]models.Tensor, len(resp.Outputs))
	for i, o := range resp.Outputs {
		outs[i] = models.Tensor{Name: o.Name, Datatype: o.Datatype, Shape: o.Shape, Data: o.Data}
	}
	rows := 1
	if len(outs) > 0 && len(outs[0].Shape) > 0 && outs[0].Shape[0] > 0 {
		rows = int(outs[0].Shape[0])
	}
	if rows == 1 {
		ev.Outputs = eventOutputs(outs, 1, nil)
	}
	return resp, nil
}

// inputFeatures names an OIP request's first row for its event: by the
// model's feature list when it has one, else one-value inputs by value and
// wide inputs (rows wider than event.WideElements) by their summary; other
// inputs are left out.
func inputFeatures(v *models.Version, inputs []models.Tensor) map[string]any {
	if len(inputs) == 0 {
		return nil
	}
	if len(v.Features) > 0 {
		return featureMap(v.Features, inputs[0])
	}
	m := map[string]any{}
	for _, in := range inputs {
		switch {
		case in.Data.Len() == 1:
			m[in.Name] = scalarAt(in.Data, 0)
		case wide(in):
			m[in.Name] = summaryOf(in)
		}
	}
	return m
}

var respBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// writeInferJSON encodes resp as a JSON response body without reflection.
func writeInferJSON(c *fiber.Ctx, resp *models.InferResponse) error {
	buf := respBufs.Get().(*[]byte)
	b, err := models.AppendInferResponse((*buf)[:0], resp)
	if err != nil {
		respBufs.Put(buf)
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Response().SetBody(b) // copies: the buffer goes back to the pool
	if cap(b) <= 1<<20 {
		*buf = b
		respBufs.Put(buf)
	}
	return nil
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
