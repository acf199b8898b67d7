// Package jsonx decodes JSON objects into map[string]any without
// encoding/json's reflection: the result, and which inputs are refused, are
// those of json.Unmarshal into a map[string]any (numbers as float64, invalid
// UTF-8 in strings replaced by U+FFFD, the last of duplicate keys kept), at
// a fraction of the cost. The gateway uses it on the predict path, where an
// event is decoded once per request and once per plugin output. Its
// Scanner, the strict reader beneath, is shared with models' decoder of
// inference requests.
//
// jsonx imports nothing from weir.
package jsonx

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// DecodeObject decodes b, which must hold one JSON value, into a map. A
// JSON null gives a nil map and no error, as json.Unmarshal does; any other
// non-object is an error.
func DecodeObject(b []byte) (map[string]any, error) {
	return decodeObject(Scanner{B: b})
}

// DecodeObjectUseNumber is DecodeObject with numbers as json.Number, as
// json.Decoder's UseNumber gives them: their text, exact (the feature
// store keys and aggregates events by it).
func DecodeObjectUseNumber(b []byte) (map[string]any, error) {
	return decodeObject(Scanner{B: b, useNumber: true})
}

func decodeObject(d Scanner) (map[string]any, error) {
	d.WS()
	if d.EOF() {
		return nil, errors.New("unexpected end of JSON input")
	}
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	d.WS()
	if !d.EOF() {
		return nil, d.Syntax("after top-level value")
	}
	switch m := v.(type) {
	case map[string]any:
		return m, nil
	case nil:
		return nil, nil
	}
	return nil, fmt.Errorf("json: cannot unmarshal %s into Go value of type map[string]interface {}", kind(v))
}

// ValidObject reports whether b holds exactly one JSON object.
func ValidObject(b []byte) bool {
	s := Scanner{B: b}
	s.WS()
	if s.EOF() || s.B[s.I] != '{' {
		return false
	}
	if err := s.Skip(0); err != nil {
		return false
	}
	s.WS()
	return s.EOF()
}

func kind(v any) string {
	switch v.(type) {
	case []any:
		return "array"
	case string:
		return "string"
	case bool:
		return "bool"
	}
	return "number"
}

// Value reads the value at I as json.Unmarshal into an any does: objects as
// map[string]any, arrays as []any, numbers as float64 (json.Number for a
// Scanner of DecodeObjectUseNumber). depth is its
// nesting in the whole document (0 for the document itself), which
// MaxDepth bounds, as for Skip.
func (s *Scanner) Value(depth int) (any, error) { return s.value(depth) }

// value decodes the value at I.
func (d *Scanner) value(depth int) (any, error) {
	if err := d.CheckDepth(depth); err != nil {
		return nil, err
	}
	switch c := d.B[d.I]; {
	case c == '{':
		m := map[string]any{}
		d.I++
		for first := true; ; first = false {
			key, ok, err := d.NextKey(first)
			if err != nil {
				return nil, err
			}
			if !ok {
				return m, nil
			}
			k := string(key)
			v, err := d.value(depth + 1)
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
	case c == '[':
		a := []any{}
		d.I++
		for first := true; ; first = false {
			ok, err := d.NextElem(first)
			if err != nil {
				return nil, err
			}
			if !ok {
				return a, nil
			}
			v, err := d.value(depth + 1)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
	case c == '"':
		return d.StrAsString()
	case c == 't':
		return true, d.Literal("true")
	case c == 'f':
		return false, d.Literal("false")
	case c == 'n':
		return nil, d.Literal("null")
	case c == '-' || IsDigit(c):
		tok, err := d.Number()
		if err != nil {
			return nil, err
		}
		if d.useNumber {
			return json.Number(tok), nil
		}
		f, err := strconv.ParseFloat(string(tok), 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, fmt.Errorf("json: cannot unmarshal number %s into Go value of type float64", tok)
		}
		return f, nil
	}
	return nil, d.Syntax("looking for beginning of value")
}
