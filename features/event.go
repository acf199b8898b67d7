package features

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/weirhq/weir/internal/jsonx"
)

// Rejection reasons (the reason label of weir_features_rejected_total).
const (
	ReasonBadJSON      = "bad_json"      // not a JSON object
	ReasonMissingKey   = "missing_key"   // the key field is absent or null
	ReasonBadKey       = "bad_key"       // the key is not a string or number, or too long
	ReasonBadTimestamp = "bad_timestamp" // timestamp_field is not RFC 3339 or unix time
	ReasonWrongType    = "wrong_type"    // an aggregated field has the wrong type
)

// prepared is one valid event reduced to what the aggregations need.
type prepared struct {
	entity string
	ts     int64         // event time, unix ms
	obs    []observation // one per aggregation
	has    []bool        // whether the event carries the aggregation's field
}

// eventError is a rejected event: a reason label and a message for Stats.
type eventError struct {
	reason string
	msg    string
}

func (e *eventError) Error() string { return e.msg }

func reject(reason, format string, args ...any) *eventError {
	return &eventError{reason: reason, msg: fmt.Sprintf(format, args...)}
}

// decodeEvent parses one event object, keeping numbers exact.
func decodeEvent(data []byte) (map[string]any, *eventError) {
	ev, err := jsonx.DecodeObjectUseNumber(data)
	switch {
	case err != nil:
		return nil, reject(ReasonBadJSON, "event is not a JSON object: %v", err)
	case ev == nil:
		return nil, reject(ReasonBadJSON, "event is null, not a JSON object")
	}
	return ev, nil
}

// prepare validates an event against fs. arrival is used when the event has
// no timestamp. A missing aggregated field only skips that aggregation; a
// field of the wrong type rejects the whole event, so that a rejected event
// changes nothing.
func prepare(fs *FeatureSet, ev map[string]any, arrival time.Time) (*prepared, *eventError) {
	p := &prepared{ts: arrival.UnixMilli()}
	switch k := ev[fs.Key].(type) {
	case nil:
		return nil, reject(ReasonMissingKey, "event has no key field %q", fs.Key)
	case string:
		p.entity = k
	case json.Number:
		p.entity = k.String()
	default:
		return nil, reject(ReasonBadKey, "key field %q is %s, expected a string or a number", fs.Key, jsonType(k))
	}
	if p.entity == "" || len(p.entity) > MaxEntityLen {
		return nil, reject(ReasonBadKey, "key field %q is %d bytes, expected 1 to %d", fs.Key, len(p.entity), MaxEntityLen)
	}
	if fs.TimestampField != "" {
		if v, ok := ev[fs.TimestampField]; ok && v != nil {
			ts, err := parseTime(v)
			if err != nil {
				return nil, reject(ReasonBadTimestamp, "timestamp field %q: %v", fs.TimestampField, err)
			}
			p.ts = ts
		}
	}
	p.obs = make([]observation, len(fs.Aggregations))
	p.has = make([]bool, len(fs.Aggregations))
	for i, a := range fs.Aggregations {
		o := observation{ts: p.ts}
		if a.Op == OpCount {
			p.obs[i], p.has[i] = o, true
			continue
		}
		v, ok := ev[a.Field]
		if !ok || v == nil {
			continue
		}
		switch {
		case a.Op.numeric():
			n, isNum := v.(json.Number)
			if !isNum {
				return nil, reject(ReasonWrongType, "field %q (for %s) is %s, expected a number", a.Field, a.Name, jsonType(v))
			}
			f, err := n.Float64()
			if err != nil || math.IsInf(f, 0) {
				return nil, reject(ReasonWrongType, "field %q (for %s) is %s, out of range", a.Field, a.Name, n)
			}
			o.num = f
		case a.Op == OpLast:
			raw, err := json.Marshal(v)
			if err != nil {
				return nil, reject(ReasonWrongType, "field %q (for %s): %v", a.Field, a.Name, err)
			}
			o.raw = raw
		case a.Op == OpDistinct:
			switch x := v.(type) {
			case string:
				o.hash = hashValue('s', x)
			case json.Number:
				o.hash = hashValue('n', x.String())
			case bool:
				o.hash = hashValue('b', strconv.FormatBool(x))
			default:
				return nil, reject(ReasonWrongType, "field %q (for %s) is %s, expected a string, number or boolean", a.Field, a.Name, jsonType(v))
			}
		}
		p.obs[i], p.has[i] = o, true
	}
	return p, nil
}

// parseTime reads RFC 3339 text, or a unix time in seconds (below 1e11) or
// milliseconds, into unix milliseconds.
func parseTime(v any) (int64, error) {
	switch x := v.(type) {
	case string:
		t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(x))
		if err != nil {
			if f, ferr := strconv.ParseFloat(x, 64); ferr == nil {
				return unixToMillis(f)
			}
			return 0, fmt.Errorf("%q is not RFC 3339 (e.g. 2024-05-01T12:00:00Z) or unix seconds/milliseconds", x)
		}
		return t.UnixMilli(), nil
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return 0, fmt.Errorf("%s is not a unix time", x)
		}
		return unixToMillis(f)
	case float64:
		return unixToMillis(x)
	}
	return 0, fmt.Errorf("it is %s, expected an RFC 3339 string or unix seconds/milliseconds", jsonType(v))
}

func unixToMillis(f float64) (int64, error) {
	if math.IsNaN(f) || f < 0 || f > 1e14 {
		return 0, fmt.Errorf("%v is not a plausible unix time (seconds, or milliseconds above 1e11)", f)
	}
	if f < 1e11 {
		return int64(math.Round(f * 1000)), nil
	}
	return int64(f), nil
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number, float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
