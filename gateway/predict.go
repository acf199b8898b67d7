package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/weirhq/weir/internal/clip"
	"github.com/weirhq/weir/internal/jsonx"
	"github.com/weirhq/weir/internal/reqbody"
	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/models"
	"github.com/weirhq/weir/monitor"
	"github.com/weirhq/weir/plugins"
	"github.com/weirhq/weir/router"
)

// implicitVariant names the one variant of a model's implicit route.
const implicitVariant = "default"

// routeFor returns the route serving name: a configured route, else the
// implicit route of a model of that name. implicit says which.
func (g *Gateway) routeFor(name string) (rt *router.Route, implicit bool, err error) {
	if rt, ok := g.routes.Get(name); ok {
		return rt, false, nil
	}
	if !g.models.Has(name) {
		return nil, false, weirerr.NotFoundf("model or route %q not found", name)
	}
	if v, ok := g.implicitRoutes.Load(name); ok {
		return v.(*router.Route), true, nil
	}
	rt, err = router.Compile(name, router.Config{Variants: []router.Variant{{Name: implicitVariant, Model: name, Weight: 100}}})
	if err != nil {
		return nil, false, err
	}
	g.implicitRoutes.Store(name, rt)
	return rt, true, nil
}

// stickyKey reads the route's sticky key from a header or a body field.
func stickyKey(rt *router.Route, c *fiber.Ctx, body map[string]any) (string, bool) {
	s, ok := rt.Sticky()
	if !ok {
		return "", false
	}
	if s.Header != "" {
		k := c.Get(s.Header)
		return k, k != ""
	}
	switch v := body[s.Field].(type) {
	case string:
		return v, v != ""
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}

// predictResponse is the answer of POST /v1/routes/{route}/predict.
type predictResponse struct {
	Route   string          `json:"route"`
	Variant string          `json:"variant"`
	Model   string          `json:"model"`
	Version string          `json:"version"`
	Outputs map[string]any  `json:"outputs"`
	Result  json.RawMessage `json:"result,omitempty"`
	Trace   *predictTrace   `json:"trace,omitempty"`
}

// predict serves POST /v1/routes/{route}/predict: raw JSON -> the route's
// plugins -> features packed by the model's feature list -> the model ->
// post-processing plugins.
func (g *Gateway) predict(c *fiber.Ctx) error {
	start := time.Now()
	if err := g.admit(); err != nil {
		return err
	}
	defer g.release()
	name := c.Params("route")
	if err := checkName("route", name); err != nil {
		return err
	}
	var tr *predictTrace
	if t := c.Query("trace"); t != "" && t != "0" && t != "false" {
		if err := g.checkAdmin(c, "trace=1"); err != nil {
			return err
		}
		tr = &predictTrace{Plugins: []traceStep{}}
	}
	rt, implicit, err := g.routeFor(name)
	if err != nil {
		return err // before the body is read: an unknown route costs nothing
	}
	body, err := g.requestBody(c)
	if err != nil {
		return err
	}
	if err := g.chargeBody(c, len(body), treeFactor); err != nil {
		return err
	}
	rows, raw, err := readRows(body, g.opts.MaxRows, tr == nil && rawEnough(rt))
	if err != nil {
		return err
	}
	var first map[string]any
	if len(rows) > 0 {
		first = rows[0]
	}
	key, hasKey := stickyKey(rt, c, first)
	variant := rt.Choose(key, hasKey, headerOf(c))
	if !implicit {
		c.Set("X-Weir-Variant", variant.Name)
	}
	ev := &monitor.Event{TS: start.UTC(), Route: name, Variant: variant.Name, Model: variant.Model, Version: variant.Version}
	resp, shadowRows, err := g.runPredict(c.UserContext(), rt, variant, rows, raw, ev, tr)
	if ev.Version != "" {
		c.Set("X-Weir-Model", ev.Model)
		c.Set("X-Weir-Model-Version", ev.Version)
	}
	err = g.finish(ev, start, err)
	if err != nil {
		if status := httpStatus(err); tr != nil && status != fiber.StatusInternalServerError {
			// A traced failure shows how far the request got.
			return c.Status(status).JSON(fiber.Map{"error": err.Error(), "trace": tr})
		}
		return err
	}
	if sh, ok := rt.Shadow(); ok && shadowRows != nil {
		g.mirror(name, sh, func(ctx context.Context, v *models.Version) (*monitor.Event, error) {
			t, err := v.PackFeatures(shadowRows)
			if err != nil {
				return nil, err
			}
			outs, err := v.RunTensors(ctx, []models.Tensor{t})
			if err != nil {
				return nil, err
			}
			return &monitor.Event{Features: featureMap(v.Features, t), Outputs: eventOutputs(outs, len(shadowRows), nil)}, nil
		})
	}
	return writeJSON(c, resp)
}

// rawEnough says whether a route can take its event as raw JSON, decoded
// only after its plugins: it has plugins, and neither its sticky key nor a
// feature join reads the event's fields first.
func rawEnough(rt *router.Route) bool {
	if len(rt.Plugins()) == 0 {
		return false
	}
	if s, ok := rt.Sticky(); ok && s.Field != "" {
		return false
	}
	_, joins := rt.Features()
	return !joins
}

// readRows reads the request's rows. A single JSON object also comes back
// as raw (trimmed body), which the first plugin gets as it is; with lazy,
// the object is only checked, not decoded (rows is nil).
func readRows(body []byte, maxRows int, lazy bool) (rows []map[string]any, raw []byte, err error) {
	b := bytes.TrimSpace(body)
	if len(b) > 0 && b[0] == '{' {
		if lazy && jsonx.ValidObject(b) {
			return nil, b, nil
		}
		row, err := jsonx.DecodeObject(b)
		if err != nil {
			return nil, nil, weirerr.Invalidf("request body is not a JSON object: %w", err)
		}
		return []map[string]any{row}, b, nil
	}
	rows, err = reqbody.DecodeRows(body, maxRows)
	return rows, nil, err
}

// runPredict does the work of predict once the variant is chosen, filling
// ev as it learns things, and tr when tracing. It returns the enriched rows
// for a shadow.
//
// raw, when not nil, is the single row's JSON as the client sent it, and
// rows may then be nil (see readRows).
func (g *Gateway) runPredict(ctx context.Context, rt *router.Route, variant *router.Variant, rows []map[string]any, raw []byte, ev *monitor.Event, tr *predictTrace) (*predictResponse, []map[string]any, error) {
	v, err := g.models.Get(variant.Model, variant.Version)
	if err != nil {
		return nil, nil, err
	}
	ev.Version = v.Version
	if _, joins := rt.Features(); joins {
		raw = nil // the join changes the row
		if err := g.joinFeatures(ctx, rt, rows); err != nil {
			return nil, nil, err
		}
	}
	chain := rt.PluginsFor(variant)
	var skips []chainSkip
	if raw != nil {
		row := map[string]any(nil)
		if len(rows) == 1 {
			row = rows[0]
		}
		if row, err = g.runChain(ctx, rt.Name(), chain, row, raw, 0, tr, &skips); err != nil {
			return nil, nil, err
		}
		rows = []map[string]any{row}
	} else {
		for i := range rows {
			if rows[i], err = g.runChain(ctx, rt.Name(), chain, rows[i], nil, i, tr, &skips); err != nil {
				return nil, nil, inRow(err, i, len(rows))
			}
		}
	}
	t, err := v.PackFeatures(rows)
	ev.Features = featureMap(v.Features, t)
	if err != nil {
		return nil, nil, g.blameFeatures(err, v, chain, rows, skips)
	}
	if tr != nil {
		tr.ModelInput = &traceTensor{Name: t.Name, Datatype: string(t.Datatype), Shape: t.Shape, Features: v.Features, Data: t.Data}
	}
	outs, err := v.RunTensors(ctx, []models.Tensor{t})
	if err != nil {
		return nil, nil, err
	}
	if tr != nil {
		for _, o := range outs {
			tr.ModelOutput = append(tr.ModelOutput, traceTensor{Name: o.Name, Datatype: string(o.Datatype), Shape: o.Shape, Data: o.Data})
		}
	}
	resp := &predictResponse{Route: rt.Name(), Variant: variant.Name, Model: v.Name, Version: v.Version, Outputs: outputMap(outs, len(rows)), Trace: tr}
	ev.Outputs = eventOutputs(outs, len(rows), resp.Outputs)
	if post := rt.PostprocessFor(variant); len(post) > 0 {
		in := map[string]any{"route": rt.Name(), "variant": variant.Name, "model": v.Name, "version": v.Version,
			"features": ev.Features, "outputs": resp.Outputs}
		if len(rows) == 1 {
			in["event"] = rows[0]
		} else {
			in["events"] = rows
		}
		for k := range post {
			out, _, _, err := g.callPlugin(ctx, rt.Name(), "postprocess", -1, &post[k], nil, in, false, tr)
			if err != nil {
				return nil, nil, err
			}
			if out != nil {
				resp.Result = out
				in["result"] = json.RawMessage(out)
			}
		}
	}
	return resp, rows, nil
}

// inRow names the row of a batch an error is about.
func inRow(err error, i, n int) error {
	if n <= 1 {
		return err
	}
	var we *weirerr.Error
	if errors.As(err, &we) {
		return &weirerr.Error{Kind: we.Kind, Msg: fmt.Sprintf("row %d: %s", i, we.Msg), Err: err}
	}
	return fmt.Errorf("row %d: %w", i, err)
}

// blameFeatures says where a feature the model could not read came from.
// With a plugin chain, the chain's output is at fault: 502 naming the
// chain and the keys it returned. Without one, the client's event lacks
// it: 400 naming the event's keys. Plugins that failed and were skipped
// (skips) are named as such.
func (g *Gateway) blameFeatures(err error, v *models.Version, chain []router.PluginRef, rows []map[string]any, skips []chainSkip) error {
	var fe *models.FeatureError
	if !errors.As(err, &fe) || fe.Row < 0 || fe.Row >= len(rows) {
		return err
	}
	keys := keyList(rows[fe.Row])
	if len(chain) == 0 {
		return weirerr.Invalidf("%s: model %s@%s needs features %s; the request has keys %s", fe, v.Name, v.Version, strings.Join(v.Features, ","), keys)
	}
	skipped, n := make([]bool, len(chain)), 0
	for _, s := range skips {
		if s.row == fe.Row {
			skipped[s.plugin] = true
			n++
		}
	}
	if n == len(chain) {
		return weirerr.Upstreamf("%s: model %s@%s needs features %s; every plugin of the route's chain %s failed and was skipped (on_error skip): the model got the request's keys %s",
			fe, v.Name, v.Version, strings.Join(v.Features, ","), g.chainLabel(chain, nil), keys)
	}
	return weirerr.Upstreamf("%s: model %s@%s needs features %s, and the route's plugin chain %s returned keys %s (the last plugin's output is the model's input: return the event with your features added)",
		fe, v.Name, v.Version, strings.Join(v.Features, ","), g.chainLabel(chain, skipped), keys)
}

// chainSkip is a plugin (its index in the chain) that failed for a row
// and was skipped (on_error skip).
type chainSkip struct{ row, plugin int }

// chainLabel names a plugin chain with resolved versions: a@1 -> b@3.
// A plugin whose entry in skipped is true is marked as failed and skipped.
func (g *Gateway) chainLabel(chain []router.PluginRef, skipped []bool) string {
	names := make([]string, len(chain))
	for i, p := range chain {
		ver, err := g.plugins.Resolve(p.Name, p.Version)
		if err != nil {
			ver = p.Version
		}
		names[i] = p.Name + "@" + ver
		if i < len(skipped) && skipped[i] {
			names[i] += " (failed and skipped: on_error skip)"
		}
	}
	return strings.Join(names, " -> ")
}

// keyList is a row's keys, sorted and bounded, for error messages.
func keyList(row map[string]any) string {
	const maxKeys = 32
	keys := make([]string, 0, len(row))
	for k := range row {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	more := ""
	if len(keys) > maxKeys {
		more = fmt.Sprintf(" and %d more", len(keys)-maxKeys)
		keys = keys[:maxKeys]
	}
	for i, k := range keys {
		if len(k) > 64 {
			keys[i] = k[:64] + "..."
		}
	}
	return "[" + strings.Join(keys, " ") + "]" + more
}

// joinFeatures merges an entity's online features into each row (fields
// the row already has win), for routes that name feature sets.
func (g *Gateway) joinFeatures(ctx context.Context, rt *router.Route, rows []map[string]any) error {
	f, ok := rt.Features()
	if !ok {
		return nil
	}
	for _, row := range rows {
		key, ok := row[f.KeyField].(string)
		if !ok || key == "" {
			return weirerr.Invalidf("route %q joins features by field %q, which the event lacks or is not a string", rt.Name(), f.KeyField)
		}
		feats, found, err := g.features.Lookup(ctx, key)
		if err != nil {
			return err
		}
		if !found {
			continue
		}
		for k, v := range feats {
			if _, has := row[k]; !has {
				row[k] = v
			}
		}
	}
	return nil
}

// runChain passes row (row number i of the request) through a plugin
// chain in order: each plugin's output is the next one's input. Plugins
// skipped on error are added to skips.
//
// raw, when not nil, is the row's JSON (row may then be nil): the row
// travels from plugin to plugin as the JSON each returns (callPlugin checks
// it), and is decoded once, after the last (docs/rationale.md, "Plugin
// calls at the floor"); the last plugin's output is checked by decoding it.
func (g *Gateway) runChain(ctx context.Context, route string, chain []router.PluginRef, row map[string]any, raw []byte, i int, tr *predictTrace, skips *[]chainSkip) (map[string]any, error) {
	in := raw
	var last *router.PluginRef // the last plugin that ran, for errors
	var lastVersion string
	for k := range chain {
		p := &chain[k]
		var obj any
		if in == nil {
			obj = row
		}
		out, dec, version, err := g.callPlugin(ctx, route, "plugins", i, p, in, obj, k == len(chain)-1, tr)
		if err != nil {
			return nil, err
		}
		if out == nil { // skipped on error
			if skips != nil {
				*skips = append(*skips, chainSkip{i, k})
			}
			continue
		}
		if dec != nil { // the last plugin's output, decoded
			return dec, nil
		}
		in, last, lastVersion = out, p, version
	}
	if last == nil && row != nil { // no plugin ran, and the row is decoded
		return row, nil
	}
	next, err := jsonx.DecodeObject(in)
	if err != nil || next == nil {
		if last == nil { // every plugin was skipped: the client's event
			return nil, weirerr.Invalidf("request body is not a JSON object: %w", err)
		}
		return nil, weirerr.Upstreamf("plugin %q returned %s, expected a JSON object", last.Name+"@"+lastVersion, abbrev(in))
	}
	return next, nil
}

// callPlugin runs one plugin on input, or on obj encoded as JSON when
// input is nil, under its route's limit overrides, and checks that the
// output is a JSON object: with decode, by decoding it into dec (one pass
// instead of a check and then a decode). With on_error "skip", a failure
// returns (nil, nil); with on_error {"default":...}, that object
// (undecoded). Both are counted. version is the plugin version that ran.
func (g *Gateway) callPlugin(ctx context.Context, route, stage string, row int, p *router.PluginRef, input []byte, obj any, decode bool, tr *predictTrace) (out json.RawMessage, dec map[string]any, version string, err error) {
	var start time.Time
	if tr != nil { // a clock read costs up to a few hundred ns on a VM
		start = time.Now()
	}
	version, err = g.plugins.Resolve(p.Name, p.Version)
	if err == nil {
		if input == nil {
			input, err = json.Marshal(obj)
		}
		if err == nil {
			l := plugins.Limits{Timeout: p.TimeoutOverride(), MemoryPages: uint32(p.MemoryMB) * 16}
			out, err = g.pluginHost.CallWithLimits(ctx, p.Name, version, p.Config, input, l)
			switch {
			case err != nil:
			case decode:
				var derr error
				if dec, derr = jsonx.DecodeObject(out); derr != nil || dec == nil {
					if err = checkJSON(p.Name, version, out); err == nil {
						err = weirerr.Upstreamf("plugin %q returned %s, expected a JSON object: %w", p.Name+"@"+version, abbrev(out), derr)
					}
				}
			default:
				err = checkJSON(p.Name, version, out)
			}
		}
	}
	if tr != nil {
		st := traceStep{Stage: stage, Row: row, Plugin: p.Name, Version: version, Input: input, TimeUS: float64(time.Since(start).Nanoseconds()) / 1e3}
		if err == nil {
			st.Output = out
		} else {
			st.Error = err.Error()
			if p.OnError.Action == "skip" || p.OnError.Action == "default" {
				st.OnError = p.OnError.Action
			}
		}
		if row < 0 {
			st.Row = 0
		}
		tr.Plugins = append(tr.Plugins, st)
	}
	if err == nil {
		return out, dec, version, nil
	}
	switch p.OnError.Action {
	case "skip":
		g.met.pluginSkips.WithLabelValues(route, p.Name).Inc()
		g.log.Warn("plugin failed, skipped (on_error: skip)", "route", route, "plugin", p.Name, "err", err)
		return nil, nil, version, nil
	case "default":
		g.met.pluginSkips.WithLabelValues(route, p.Name).Inc()
		g.log.Warn("plugin failed, its on_error default used", "route", route, "plugin", p.Name, "err", err)
		return p.OnError.Default, nil, version, nil
	}
	return nil, nil, version, err
}

// checkJSON checks a plugin's output is valid JSON (the host checked it
// starts as an object), naming the plugin and the position of an error.
func checkJSON(name, version string, out []byte) error {
	if jsonx.ValidObject(out) {
		return nil
	}
	label := name + "@" + version
	var v any
	err := json.Unmarshal(out, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return weirerr.Upstreamf("plugin %q returned invalid JSON at byte %d of %d: %w (output starts %s)", label, se.Offset, len(out), err, abbrev(out))
	}
	return weirerr.Upstreamf("plugin %q returned invalid JSON: %w (output starts %s)", label, err, abbrev(out))
}

// predictTrace is what ?trace=1 (admin token) adds to a predict answer:
// every plugin call in order, the packed model input and the model's raw
// outputs.
type predictTrace struct {
	Plugins     []traceStep   `json:"plugins"`
	ModelInput  *traceTensor  `json:"model_input,omitempty"`
	ModelOutput []traceTensor `json:"model_output,omitempty"`
}

type traceStep struct {
	Stage   string          `json:"stage"` // "plugins" or "postprocess"
	Row     int             `json:"row"`   // the request row (plugins stage)
	Plugin  string          `json:"plugin"`
	Version string          `json:"version,omitempty"`
	Input   json.RawMessage `json:"input,omitempty"`
	Output  json.RawMessage `json:"output,omitempty"`
	Error   string          `json:"error,omitempty"`
	OnError string          `json:"on_error,omitempty"` // "skip" or "default" when a failure was replaced
	TimeUS  float64         `json:"time_us"`
}

type traceTensor struct {
	Name     string            `json:"name"`
	Datatype string            `json:"datatype"`
	Shape    []int64           `json:"shape"`
	Features []string          `json:"features,omitempty"`
	Data     models.TensorData `json:"data"`
}

// checkAdmin refuses a request without the admin token, for admin-only
// options of open endpoints.
func (g *Gateway) checkAdmin(c *fiber.Ctx, what string) error {
	tok, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
	if !ok || tok == "" || !equalToken(g.adminToken)(tok) {
		return weirerr.Unauthorizedf("%s needs the admin token (Authorization: Bearer <token>)", what)
	}
	return nil
}

func abbrev(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}

// featureMap names the packed feature values of the first row, for events.
func featureMap(names []string, t models.Tensor) map[string]any {
	if len(names) == 0 || t.Data.Len() < len(names) {
		return nil
	}
	m := make(map[string]any, len(names))
	for i, n := range names {
		m[n] = jsonFloat(t.Data.Float64(i))
	}
	return m
}

// outputMap gives each output's values per row: a number when a row has
// one value (a score), else an array; for several rows, a list of those.
func outputMap(outs []models.Tensor, rows int) map[string]any {
	m := make(map[string]any, len(outs))
	for _, o := range outs {
		m[o.Name] = outputValue(o, rows)
	}
	return m
}

// eventOutputs is outputMap for an event: wide outputs (rows wider than
// event.WideElements) are summarised. answered, when not nil, is the
// outputMap already made for the answer, whose small values it shares.
func eventOutputs(outs []models.Tensor, rows int, answered map[string]any) map[string]any {
	anyWide := false
	for _, o := range outs {
		anyWide = anyWide || wide(o)
	}
	if answered != nil && !anyWide {
		return answered
	}
	m := make(map[string]any, len(outs))
	for _, o := range outs {
		switch {
		case wide(o):
			m[o.Name] = summaryOf(o)
		case answered != nil:
			m[o.Name] = answered[o.Name]
		default:
			m[o.Name] = outputValue(o, rows)
		}
	}
	return m
}

// outputValue is one output's entry of outputMap.
func outputValue(o models.Tensor, rows int) any {
	n := o.Data.Len()
	if rows < 1 || n%rows != 0 {
		return o.Data
	}
	per := n / rows
	rowVal := func(r int) any {
		if per == 1 {
			return scalarAt(o.Data, r)
		}
		vals := make([]any, per)
		for i := range vals {
			vals[i] = scalarAt(o.Data, r*per+i)
		}
		return vals
	}
	if rows == 1 {
		return rowVal(0)
	}
	all := make([]any, rows)
	for r := range all {
		all[r] = rowVal(r)
	}
	return all
}

func scalarAt(d models.TensorData, i int) any {
	if s, ok := d.Values.([]string); ok {
		return s[i]
	}
	if b, ok := d.Values.([]bool); ok {
		return b[i]
	}
	return jsonFloat(d.Float64(i))
}

// jsonFloat is f as JSON can hold it: a number, or for NaN and infinities
// the strings "NaN", "Infinity" and "-Infinity" that OIP answers use
// (models.TensorData). Outputs, events and plugin inputs all go through it.
func jsonFloat(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return f
}

// finish records a served request: metrics and its event. It returns err,
// or in strict event durability the reason the event is not durable: the
// request must then fail rather than answer without its record.
func (g *Gateway) finish(ev *monitor.Event, start time.Time, err error) error {
	d := time.Since(start)
	ev.LatencyUS = d.Microseconds()
	ev.Status = fiber.StatusOK
	if err != nil {
		ev.Status = httpStatus(err)
		ev.Error = clip.String(err.Error(), maxErrorBytes)
		ev.ID = monitor.NewID()
		g.failures.failed(ev, d)
	}
	known := g.knownNames(ev)
	if known {
		variant := ev.Variant
		if ev.Pinned { // outside the split: counted apart, as before
			variant = "pinned"
		}
		g.met.observe(ev.Route, variant, ev.Model, ev.Version, ev.Status, d)
	} else {
		g.met.observe(unknownLabel, unknownLabel, unknownLabel, unknownLabel, ev.Status, d)
	}
	if ev.Model == "" || !known {
		return err
	}
	if ev.ID == "" {
		ev.ID = monitor.NewID()
	}
	ctx, cancel := context.WithTimeout(context.Background(), durableEventTimeout)
	defer cancel()
	if derr := g.events.PublishDurable(ctx, ev); derr != nil && err == nil {
		return derr
	}
	return err
}

// durableEventTimeout bounds how long a request waits for its event to be
// durable (--events-durability strict) before it fails with 503.
const durableEventTimeout = 5 * time.Second

// unknownLabel stands for every name a request gave that names nothing the
// gateway serves.
const unknownLabel = "unknown"

// knownNames reports whether ev's route, model and version all exist. Names
// come from the URL: a request for a name that does not exist must not make
// a metric series or an event of its own (10k junk names would be 10k
// series and stats entries), so such requests share the "unknown" labels
// and publish nothing.
func (g *Gateway) knownNames(ev *monitor.Event) bool {
	if _, ok := g.routes.Get(ev.Route); !ok && !g.models.Has(ev.Route) {
		return false
	}
	if ev.Model == "" {
		return true
	}
	if !g.models.Has(ev.Model) {
		return false
	}
	if v, err := g.models.Get(ev.Model, ev.Version); v == nil && weirerr.KindOf(err) == weirerr.NotFound {
		return false
	}
	return true
}

// mirror runs a shadow request off the caller's path: bounded in number,
// under the base context (Shutdown cancels it) with the request timeout;
// its answer is discarded and its event marked.
func (g *Gateway) mirror(route string, sh *router.Shadow, run func(ctx context.Context, v *models.Version) (*monitor.Event, error)) {
	if g.base.Err() != nil { // shutting down
		g.met.shadowDropped.Inc()
		return
	}
	select {
	case g.shadowSlots <- struct{}{}:
	default:
		g.met.shadowDropped.Inc()
		return
	}
	g.shadows.Add(1)
	go func() {
		defer g.shadows.Done()
		defer func() { <-g.shadowSlots }()
		defer g.recoverGo("a shadow request")
		ctx, cancel := context.WithTimeout(g.base, g.opts.RequestTimeout)
		defer cancel()
		if g.shadowGate != nil {
			// tests: hold shadows to show callers do not wait for them
			select {
			case <-g.shadowGate:
			case <-ctx.Done():
			}
		}
		start := time.Now()
		ev := &monitor.Event{TS: start.UTC(), Route: route, Variant: "shadow", Model: sh.Model, Version: sh.Version, Shadow: true}
		v, err := g.models.Get(sh.Model, sh.Version)
		var res *monitor.Event
		if err == nil {
			ev.Version = v.Version
			res, err = run(ctx, v)
		}
		if res != nil {
			ev.Features, ev.Outputs = res.Features, res.Outputs
		}
		d := time.Since(start)
		ev.ID, ev.LatencyUS, ev.Status = monitor.NewID(), d.Microseconds(), fiber.StatusOK
		if err != nil {
			ev.Status, ev.Error = httpStatus(err), clip.String(err.Error(), maxErrorBytes)
		}
		g.met.shadow.WithLabelValues(route, strconv.Itoa(ev.Status)).Inc()
		g.events.Publish(ev)
	}()
}

// headerOf adapts a request's headers for router.Route.Choose.
func headerOf(c *fiber.Ctx) func(string) string {
	return func(k string) string { return c.Get(k) }
}
