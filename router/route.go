package router

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/weirhq/weir/internal/fnv1a"
	"github.com/weirhq/weir/internal/weirerr"
)

// ValidName reports whether s is a valid model, version, plugin, variant or
// route name: the contract's rule (docs/api.md "Names") is
// ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$. It is checked on every request, so by
// hand rather than with a regexp (name_test.go checks the two agree).
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// maxFieldLen bounds header and JSON field names taken from a route config.
const maxFieldLen = 256

// Buckets is the number of sticky buckets; a weight of 1 is one bucket.
const Buckets = 100

// PluginRef names one plugin of a route's chain.
type PluginRef struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"` // "" or "latest": resolved by the gateway
	// Config is passed to the plugin verbatim; it must be a JSON object.
	Config json.RawMessage `json:"config,omitempty"`
	// OnError says what a failure of this plugin does: "fail" (the
	// default), "skip" or {"default":{...}}.
	OnError OnError `json:"on_error,omitzero"`
	// Timeout and MemoryMB override the plugin version's limits for this
	// route ("" and 0: the version's own). Timeout is a Go duration.
	Timeout  string `json:"timeout,omitempty"`
	MemoryMB int    `json:"memory_mb,omitempty"`
}

// SkipOnError reports whether a failure of this plugin is skipped rather
// than failing the request.
func (p PluginRef) SkipOnError() bool { return p.OnError.Action == "skip" }

// TimeoutOverride is the route's timeout for this plugin, 0 for none.
// Validation guarantees it parses. It runs on every plugin call: no
// override costs nothing (ParseDuration("") builds an error).
func (p PluginRef) TimeoutOverride() time.Duration {
	if p.Timeout == "" {
		return 0
	}
	d, _ := time.ParseDuration(p.Timeout)
	return d
}

// OnError is a plugin entry's on_error: JSON "fail", "skip", or
// {"default":{...}}, whose object the gateway uses as the plugin's output
// when it fails.
type OnError struct {
	Action  string          // "fail", "skip" or "default"; "" is fail
	Default json.RawMessage // the output used when Action is "default"
}

// IsZero reports the default (fail), which on_error omits.
func (o OnError) IsZero() bool { return o.Action == "" && o.Default == nil }

// MarshalJSON writes the form UnmarshalJSON reads.
func (o OnError) MarshalJSON() ([]byte, error) {
	if o.Action == "default" {
		return json.Marshal(map[string]json.RawMessage{"default": o.Default})
	}
	return json.Marshal(o.Action)
}

// UnmarshalJSON reads "fail", "skip" or {"default":{...}}; the values are
// checked by validation, which names the field.
func (o *OnError) UnmarshalJSON(b []byte) error {
	t := bytes.TrimSpace(b)
	if len(t) > 0 && t[0] == '{' {
		var d struct {
			Default json.RawMessage `json:"default"`
		}
		dec := json.NewDecoder(bytes.NewReader(t))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&d); err != nil {
			return fmt.Errorf("on_error object: %w (expected {\"default\":{...}})", err)
		}
		*o = OnError{Action: "default", Default: append(json.RawMessage(nil), d.Default...)}
		if o.Default == nil {
			o.Default = json.RawMessage("null")
		}
		return nil
	}
	var s string
	if err := json.Unmarshal(t, &s); err != nil {
		return fmt.Errorf("on_error is %s: expected \"fail\", \"skip\" or {\"default\":{...}}", abbrev(t))
	}
	*o = OnError{Action: s}
	return nil
}

// Variant is one arm of a traffic split. Its Name is what the gateway reports
// in X-Weir-Variant and in events.
type Variant struct {
	Name    string `json:"name"`
	Model   string `json:"model"`
	Version string `json:"version,omitempty"` // "" or "latest": resolved by the gateway
	Weight  int    `json:"weight"`
	// Plugins and Postprocess, when set, replace the route's chains for
	// this variant, so a rollout can canary a plugin version. nil: the
	// route's; an empty list: none.
	Plugins     *[]PluginRef `json:"plugins,omitempty"`
	Postprocess *[]PluginRef `json:"postprocess,omitempty"`
}

// Sticky says where the sticky key of a request comes from: exactly one of
// Header (an HTTP header) or Field (a top-level field of the JSON body).
type Sticky struct {
	Header string `json:"header,omitempty"`
	Field  string `json:"field,omitempty"`
}

// Shadow mirrors Percent percent of requests to Model/Version; the mirrored
// answer is discarded.
type Shadow struct {
	Model   string  `json:"model"`
	Version string  `json:"version,omitempty"`
	Percent float64 `json:"percent"`
}

// MatchRule forces Variant when the request's Header equals Value (for
// testers: X-Weir-Variant: canary).
type MatchRule struct {
	Header  string `json:"header"`
	Value   string `json:"value"`
	Variant string `json:"variant"`
}

// Features names the online feature sets to join, keyed by a body field.
type Features struct {
	Sets     []string `json:"sets"`
	KeyField string   `json:"key_field"`
}

// Config is the route configuration exactly as PUT /v1/routes/{route} takes
// it (and GET returns it, with the read-only fields of Route.MarshalJSON).
type Config struct {
	Plugins     []PluginRef `json:"plugins"`
	Postprocess []PluginRef `json:"postprocess"`
	Variants    []Variant   `json:"variants"`
	Sticky      *Sticky     `json:"sticky,omitempty"`
	Shadow      *Shadow     `json:"shadow,omitempty"`
	Match       []MatchRule `json:"match,omitempty"`
	Features    *Features   `json:"features,omitempty"`
}

// wireConfig is Config plus the read-only fields GET adds, so that the
// output of GET can be PUT back unchanged. The read-only fields are ignored
// (name must agree with the route being written).
type wireConfig struct {
	Config
	Name      string     `json:"name,omitempty"`
	Revision  uint64     `json:"revision,omitempty"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
}

// Route is a compiled, immutable route. Methods are safe for concurrent use;
// values returned by pointer (Choose, Shadow) must not be modified.
type Route struct {
	name      string
	cfg       Config
	revision  uint64
	updatedAt time.Time

	// bucket[b] is the index in cfg.Variants of the variant owning bucket b.
	bucket [Buckets]uint8
	// seed is the FNV-1a state after hashing the route name, so one user
	// lands in independent buckets on different routes.
	seed uint64
}

// Parse decodes and validates a route configuration for the route name.
// Unknown fields, trailing data and every rule violation are
// *weirerr.Error of kind Invalid naming the field, what came and what was
// expected.
func Parse(name string, raw []byte) (*Route, error) {
	if !ValidName(name) {
		return nil, weirerr.Invalidf("route name %q is invalid: expected 1-64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit", name)
	}
	var w wireConfig
	if err := decodeStrict(raw, &w); err != nil {
		return nil, err
	}
	if w.Name != "" && w.Name != name {
		return nil, weirerr.Invalidf("route %q: field name is %q: expected the route's own name %q (or no name)", name, w.Name, name)
	}
	return Compile(name, w.Config)
}

func decodeStrict(raw []byte, v any) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return weirerr.Invalidf("route body is empty: expected a JSON object with at least \"variants\"")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return weirerr.Invalidf("route body has data after the JSON object: expected exactly one object")
	}
	return nil
}

// jsonError turns a decoding error into a message that names the field.
func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := strings.TrimPrefix(te.Field, "Config.") // the embedded struct
		if field == "" {
			field = "(body)"
		}
		return weirerr.Invalidf("route field %s: got JSON %s, expected %s", field, te.Value, jsonKind(te.Type.String()))
	case errors.As(err, &se):
		return weirerr.Invalidf("route body is not valid JSON at byte %d: %w", se.Offset, err)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return weirerr.Invalidf("route has unknown field %s: expected plugins, postprocess, variants, sticky, shadow, match, features", strings.TrimPrefix(err.Error(), "json: unknown field "))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return weirerr.Invalidf("route body is truncated JSON: expected a complete object")
	}
	return weirerr.Invalidf("route body: %w", err)
}

func jsonKind(goType string) string {
	switch goType {
	case "int", "int64", "uint64":
		return "an integer"
	case "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	}
	if strings.HasPrefix(goType, "[]") {
		return "an array"
	}
	return "an object"
}

// Compile validates cfg and builds the immutable route. cfg is copied; the
// caller may reuse it.
func Compile(name string, cfg Config) (*Route, error) {
	if !ValidName(name) {
		return nil, weirerr.Invalidf("route name %q is invalid: expected 1-64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit", name)
	}
	cfg = cloneConfig(cfg)
	if err := validate(&cfg); err != nil {
		return nil, err
	}
	r := &Route{name: name, cfg: cfg, seed: fnv1a.String(fnv1a.Offset, name)}
	r.layout()
	return r, nil
}

func validatePlugins(f string, ps []PluginRef) error {
	for i, p := range ps {
		if err := validatePlugin(fmt.Sprintf("%s[%d]", f, i), p); err != nil {
			return err
		}
	}
	return nil
}

func validate(c *Config) error {
	if err := validatePlugins("plugins", c.Plugins); err != nil {
		return err
	}
	if err := validatePlugins("postprocess", c.Postprocess); err != nil {
		return err
	}
	if len(c.Variants) == 0 {
		return weirerr.Invalidf("route field variants is empty: expected at least one variant {\"name\",\"model\",\"version\",\"weight\"}")
	}
	if len(c.Variants) > Buckets {
		return weirerr.Invalidf("route field variants has %d entries: expected at most %d", len(c.Variants), Buckets)
	}
	seen := make(map[string]int, len(c.Variants))
	sum := 0
	for i, v := range c.Variants {
		f := fmt.Sprintf("variants[%d]", i)
		if !ValidName(v.Name) {
			return weirerr.Invalidf("route field %s.name is %q: expected 1-64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit", f, v.Name)
		}
		if j, dup := seen[v.Name]; dup {
			return weirerr.Invalidf("route field %s.name %q repeats variants[%d].name: expected unique variant names", f, v.Name, j)
		}
		seen[v.Name] = i
		if !ValidName(v.Model) {
			return weirerr.Invalidf("route field %s.model is %q: expected a model name (1-64 characters of A-Z a-z 0-9 . _ -)", f, v.Model)
		}
		if v.Version != "" && !ValidName(v.Version) {
			return weirerr.Invalidf("route field %s.version is %q: expected a version name, \"latest\" or no version", f, v.Version)
		}
		if v.Weight < 0 || v.Weight > 100 {
			return weirerr.Invalidf("route field %s.weight is %d: expected an integer from 0 to 100", f, v.Weight)
		}
		if v.Plugins != nil {
			if err := validatePlugins(f+".plugins", *v.Plugins); err != nil {
				return err
			}
		}
		if v.Postprocess != nil {
			if err := validatePlugins(f+".postprocess", *v.Postprocess); err != nil {
				return err
			}
		}
		sum += v.Weight
	}
	if sum != 100 {
		return weirerr.Invalidf("route field variants: weights sum to %d: expected them to sum to 100", sum)
	}
	if s := c.Sticky; s != nil {
		switch {
		case s.Header == "" && s.Field == "":
			return weirerr.Invalidf("route field sticky has neither header nor field: expected exactly one of {\"header\":\"X-User-Id\"} or {\"field\":\"account_id\"}")
		case s.Header != "" && s.Field != "":
			return weirerr.Invalidf("route field sticky has both header %q and field %q: expected exactly one of them", s.Header, s.Field)
		case len(s.Header) > maxFieldLen || len(s.Field) > maxFieldLen:
			return weirerr.Invalidf("route field sticky names a key of more than %d characters: expected a short header or field name", maxFieldLen)
		case s.Header != "" && !validHeaderName(s.Header):
			return weirerr.Invalidf("route field sticky.header is %q: expected an HTTP header name (letters, digits, - _)", s.Header)
		}
	}
	if s := c.Shadow; s != nil {
		if !ValidName(s.Model) {
			return weirerr.Invalidf("route field shadow.model is %q: expected a model name", s.Model)
		}
		if s.Version != "" && !ValidName(s.Version) {
			return weirerr.Invalidf("route field shadow.version is %q: expected a version name, \"latest\" or no version", s.Version)
		}
		if s.Percent < 0 || s.Percent > 100 || s.Percent != s.Percent {
			return weirerr.Invalidf("route field shadow.percent is %v: expected a number from 0 to 100", s.Percent)
		}
	}
	for i, m := range c.Match {
		f := fmt.Sprintf("match[%d]", i)
		if !validHeaderName(m.Header) {
			return weirerr.Invalidf("route field %s.header is %q: expected an HTTP header name (letters, digits, - _)", f, m.Header)
		}
		if m.Value == "" {
			return weirerr.Invalidf("route field %s.value is empty: expected the header value that forces variant %q", f, m.Variant)
		}
		if _, ok := seen[m.Variant]; !ok {
			return weirerr.Invalidf("route field %s.variant is %q: expected one of the route's variants %s", f, m.Variant, variantNames(c.Variants))
		}
	}
	if fe := c.Features; fe != nil {
		if len(fe.Sets) == 0 {
			return weirerr.Invalidf("route field features.sets is empty: expected at least one feature set name")
		}
		for i, s := range fe.Sets {
			if !ValidName(s) {
				return weirerr.Invalidf("route field features.sets[%d] is %q: expected a feature set name", i, s)
			}
		}
		if fe.KeyField == "" || len(fe.KeyField) > maxFieldLen {
			return weirerr.Invalidf("route field features.key_field is %q: expected the body field that holds the entity key", fe.KeyField)
		}
	}
	return nil
}

func validatePlugin(f string, p PluginRef) error {
	if !ValidName(p.Name) {
		return weirerr.Invalidf("route field %s.name is %q: expected a plugin name (1-64 characters of A-Z a-z 0-9 . _ -)", f, p.Name)
	}
	if p.Version != "" && !ValidName(p.Version) {
		return weirerr.Invalidf("route field %s.version is %q: expected a version name, \"latest\" or no version", f, p.Version)
	}
	if len(p.Config) > 0 {
		t := bytes.TrimSpace(p.Config)
		if len(t) == 0 || (t[0] != '{' && !bytes.Equal(t, []byte("null"))) {
			return weirerr.Invalidf("route field %s.config is %s: expected a JSON object", f, abbrev(t))
		}
	}
	switch p.OnError.Action {
	case "", "fail", "skip":
	case "default":
		t := bytes.TrimSpace(p.OnError.Default)
		if len(t) == 0 || t[0] != '{' || !json.Valid(t) {
			return weirerr.Invalidf("route field %s.on_error.default is %s: expected a JSON object (the output used when the plugin fails)", f, abbrev(t))
		}
	default:
		return weirerr.Invalidf("route field %s.on_error is %q: expected \"fail\", \"skip\" or {\"default\":{...}}", f, p.OnError.Action)
	}
	if p.Timeout != "" {
		d, err := time.ParseDuration(p.Timeout)
		if err != nil || d <= 0 || d > time.Minute {
			return weirerr.Invalidf("route field %s.timeout is %q: expected a duration such as 50ms, at most 1m", f, p.Timeout)
		}
	}
	if p.MemoryMB < 0 || p.MemoryMB > 4096 {
		return weirerr.Invalidf("route field %s.memory_mb is %d: expected a whole number of MiB from 1 to 4096", f, p.MemoryMB)
	}
	return nil
}

func validHeaderName(h string) bool {
	if h == "" || len(h) > maxFieldLen {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func variantNames(vs []Variant) string {
	names := make([]string, len(vs))
	for i, v := range vs {
		names[i] = v.Name
	}
	return "[" + strings.Join(names, ", ") + "]"
}

func abbrev(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

func cloneConfig(c Config) Config {
	out := c
	out.Plugins = clonePlugins(c.Plugins)
	out.Postprocess = clonePlugins(c.Postprocess)
	out.Variants = cloneVariants(c.Variants)
	if c.Sticky != nil {
		s := *c.Sticky
		out.Sticky = &s
	}
	if c.Shadow != nil {
		s := *c.Shadow
		out.Shadow = &s
	}
	if c.Match != nil {
		out.Match = append([]MatchRule(nil), c.Match...)
	}
	if c.Features != nil {
		f := *c.Features
		f.Sets = append([]string(nil), c.Features.Sets...)
		out.Features = &f
	}
	return out
}

func clonePlugins(ps []PluginRef) []PluginRef {
	out := make([]PluginRef, len(ps)) // never nil: GET shows [] rather than null
	for i, p := range ps {
		out[i] = p
		if p.Config != nil {
			out[i].Config = append(json.RawMessage(nil), p.Config...)
		}
		if p.OnError.Default != nil {
			out[i].OnError.Default = append(json.RawMessage(nil), p.OnError.Default...)
		}
	}
	return out
}

func cloneVariants(vs []Variant) []Variant {
	if vs == nil {
		return nil
	}
	out := append([]Variant(nil), vs...)
	for i, v := range vs {
		if v.Plugins != nil {
			ps := clonePlugins(*v.Plugins)
			out[i].Plugins = &ps
		}
		if v.Postprocess != nil {
			ps := clonePlugins(*v.Postprocess)
			out[i].Postprocess = &ps
		}
	}
	return out
}

// Name is the route's name.
func (r *Route) Name() string { return r.name }

// Revision is the KV revision the route was read at (0 if not from a Store).
func (r *Route) Revision() uint64 { return r.revision }

// UpdatedAt is when the route was last written (zero if not from a Store).
func (r *Route) UpdatedAt() time.Time { return r.updatedAt }

// Config returns a copy of the route's configuration.
func (r *Route) Config() Config { return cloneConfig(r.cfg) }

// Variants returns a copy of the route's variants, in configuration order.
func (r *Route) Variants() []Variant { return cloneVariants(r.cfg.Variants) }

// Variant returns the variant named name.
func (r *Route) Variant(name string) (*Variant, bool) {
	for i := range r.cfg.Variants {
		if r.cfg.Variants[i].Name == name {
			return &r.cfg.Variants[i], true
		}
	}
	return nil, false
}

// Plugins is the pre-processing chain (do not modify the returned slice).
func (r *Route) Plugins() []PluginRef { return r.cfg.Plugins }

// Postprocess is the post-processing chain (do not modify the returned slice).
func (r *Route) Postprocess() []PluginRef { return r.cfg.Postprocess }

// PluginsFor is the pre-processing chain variant v runs: its own when it
// overrides the route's (do not modify the returned slice).
func (r *Route) PluginsFor(v *Variant) []PluginRef {
	if v != nil && v.Plugins != nil {
		return *v.Plugins
	}
	return r.cfg.Plugins
}

// PostprocessFor is the post-processing chain variant v runs.
func (r *Route) PostprocessFor(v *Variant) []PluginRef {
	if v != nil && v.Postprocess != nil {
		return *v.Postprocess
	}
	return r.cfg.Postprocess
}

// Sticky reports where the sticky key comes from; ok is false when the route
// has no stickiness (every request is split at random).
func (r *Route) Sticky() (s Sticky, ok bool) {
	if r.cfg.Sticky == nil {
		return Sticky{}, false
	}
	return *r.cfg.Sticky, true
}

// Features returns the feature-store join, if the route has one.
func (r *Route) Features() (Features, bool) {
	if r.cfg.Features == nil {
		return Features{}, false
	}
	return *r.cfg.Features, true
}

// Matches is the route's header match rules (do not modify the returned slice).
func (r *Route) Matches() []MatchRule { return r.cfg.Match }

// MarshalJSON renders the configuration as PUT took it, plus the read-only
// fields name, revision and updated_at. Parse accepts the result unchanged.
func (r *Route) MarshalJSON() ([]byte, error) {
	w := wireConfig{Config: r.cfg, Name: r.name, Revision: r.revision}
	if !r.updatedAt.IsZero() {
		t := r.updatedAt
		w.UpdatedAt = &t
	}
	return json.Marshal(w)
}
