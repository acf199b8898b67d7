package features

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/weirhq/weir/internal/weirerr"
)

// Op is an aggregation operator.
type Op string

// The aggregation operators a feature set may use.
const (
	OpCount    Op = "count"    // events in the window (no field)
	OpSum      Op = "sum"      // sum of a numeric field
	OpMean     Op = "mean"     // mean of a numeric field
	OpStd      Op = "std"      // population standard deviation of a numeric field
	OpMin      Op = "min"      // smallest value of a numeric field
	OpMax      Op = "max"      // largest value of a numeric field
	OpLast     Op = "last"     // the field's value in the newest event (any JSON)
	OpDistinct Op = "distinct" // distinct values (approximate beyond 64, see DESIGN.md)
)

var ops = map[Op]bool{OpCount: true, OpSum: true, OpMean: true, OpStd: true, OpMin: true, OpMax: true, OpLast: true, OpDistinct: true}

func (o Op) numeric() bool {
	return o == OpSum || o == OpMean || o == OpStd || o == OpMin || o == OpMax
}

// Aggregation is one streaming aggregate of a feature set; its Name becomes a
// key of the entity's features object.
type Aggregation struct {
	Name   string `json:"name"`
	Op     Op     `json:"op"`
	Field  string `json:"field,omitempty"`
	Window string `json:"window"`

	windowMillis int64
	width, n     int64
}

// FeatureSet declares how raw events become per-entity features.
type FeatureSet struct {
	Name string `json:"name"`
	// Key is the event field whose value (string or integer) is the entity.
	Key string `json:"key"`
	// TimestampField holds the event time (RFC 3339, or unix seconds, or unix
	// milliseconds when above 1e11); without it, arrival time is used.
	TimestampField string `json:"timestamp_field,omitempty"`
	// TTL after an entity's last event its aggregates disappear ("" = never).
	TTL          string        `json:"ttl,omitempty"`
	Aggregations []Aggregation `json:"aggregations"`
	// Revision is the KV revision the definition was stored at; aggregator
	// state of an older revision is discarded. Set by the store.
	Revision uint64 `json:"revision,omitempty"`

	ttl time.Duration
}

// TTLDuration is the parsed TTL (0 = none).
func (fs *FeatureSet) TTLDuration() time.Duration { return fs.ttl }

var (
	setNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
	fieldRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,127}$`)
)

const maxWindow = 366 * 24 * time.Hour

// validateSetName checks a feature set name. Set names are NATS subject
// tokens (weir.ingest.<set>) and consumer names, so unlike model names they
// may not contain '.'.
func validateSetName(name string) error {
	if !setNameRE.MatchString(name) {
		return weirerr.Invalidf("feature set name %q is invalid: expected 1-64 characters from [A-Za-z0-9_-], starting with a letter or digit", name)
	}
	return nil
}

// ParseSet decodes and validates a feature set definition (the body of
// PUT /v1/featuresets/{name}). Errors are weirerr.Invalid.
func ParseSet(name string, raw []byte) (*FeatureSet, error) {
	if err := validateSetName(name); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var fs FeatureSet
	if err := dec.Decode(&fs); err != nil {
		return nil, weirerr.Invalidf("feature set %q: body is not a valid definition: %w (expected {\"key\",\"timestamp_field\"?,\"ttl\"?,\"aggregations\":[{\"name\",\"op\",\"field\"?,\"window\"}]})", name, err)
	}
	if fs.Name != "" && fs.Name != name {
		return nil, weirerr.Invalidf("feature set name in body %q does not match the path %q", fs.Name, name)
	}
	fs.Name = name
	fs.Revision = 0
	if err := fs.compile(); err != nil {
		return nil, err
	}
	return &fs, nil
}

// compile validates the definition and fills the derived fields.
func (fs *FeatureSet) compile() error {
	if !fieldRE.MatchString(fs.Key) {
		return weirerr.Invalidf("feature set %q: key %q is not a field name: expected the event field holding the entity (e.g. \"account_id\")", fs.Name, fs.Key)
	}
	if fs.TimestampField != "" && !fieldRE.MatchString(fs.TimestampField) {
		return weirerr.Invalidf("feature set %q: timestamp_field %q is not a field name", fs.Name, fs.TimestampField)
	}
	fs.ttl = 0
	if fs.TTL != "" {
		d, err := time.ParseDuration(fs.TTL)
		if err != nil || d <= 0 {
			return weirerr.Invalidf("feature set %q: ttl %q is not a positive duration (expected e.g. \"48h\")", fs.Name, fs.TTL)
		}
		fs.ttl = d
	}
	if len(fs.Aggregations) == 0 {
		return weirerr.Invalidf("feature set %q: aggregations is empty: expected at least one {\"name\",\"op\",\"window\"}", fs.Name)
	}
	if len(fs.Aggregations) > 64 {
		return weirerr.Invalidf("feature set %q: %d aggregations: expected at most 64", fs.Name, len(fs.Aggregations))
	}
	seen := map[string]bool{}
	for i := range fs.Aggregations {
		a := &fs.Aggregations[i]
		where := fmt.Sprintf("feature set %q: aggregations[%d]", fs.Name, i)
		if !fieldRE.MatchString(a.Name) || strings.HasPrefix(a.Name, reservedPrefix) {
			return weirerr.Invalidf("%s: name %q is invalid: expected a feature name like \"tx_count_1h\" (not starting with %q)", where, a.Name, reservedPrefix)
		}
		if seen[a.Name] {
			return weirerr.Invalidf("%s: name %q is used twice", where, a.Name)
		}
		seen[a.Name] = true
		if !ops[a.Op] {
			return weirerr.Invalidf("%s (%s): op %q is unknown: expected one of count, sum, mean, std, min, max, last, distinct", where, a.Name, a.Op)
		}
		switch {
		case a.Op == OpCount && a.Field != "":
			return weirerr.Invalidf("%s (%s): op count takes no field, got field %q", where, a.Name, a.Field)
		case a.Op != OpCount && !fieldRE.MatchString(a.Field):
			return weirerr.Invalidf("%s (%s): op %s needs a field (the event field to aggregate), got %q", where, a.Name, a.Op, a.Field)
		}
		d, err := time.ParseDuration(a.Window)
		if err != nil || d < time.Second || d > maxWindow {
			return weirerr.Invalidf("%s (%s): window %q is invalid: expected a duration from 1s to %s (e.g. \"1h\")", where, a.Name, a.Window, maxWindow)
		}
		a.windowMillis = d.Milliseconds()
		a.width, a.n = bucketGeometry(a.windowMillis)
	}
	return nil
}
