// Package jsonx decodes JSON objects into map[string]any without
// encoding/json's reflection: the result, and which inputs are refused, are
// those of json.Unmarshal into a map[string]any (numbers as float64, invalid
// UTF-8 in strings replaced by U+FFFD, the last of duplicate keys kept), at
// a fraction of the cost. The gateway uses it on the predict path, where an
// event is decoded once per request and once per plugin output.
//
// jsonx imports nothing from weir.
package jsonx

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// maxDepth bounds nesting as encoding/json does.
const maxDepth = 10000

// DecodeObject decodes b, which must hold one JSON value, into a map. A
// JSON null gives a nil map and no error, as json.Unmarshal does; any other
// non-object is an error.
func DecodeObject(b []byte) (map[string]any, error) {
	d := decoder{b: b}
	d.ws()
	if d.eof() {
		return nil, errors.New("unexpected end of JSON input")
	}
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	d.ws()
	if !d.eof() {
		return nil, d.syntax("after top-level value")
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
	d := decoder{b: b}
	d.ws()
	if d.eof() || d.b[d.i] != '{' {
		return false
	}
	if err := d.skip(0); err != nil {
		return false
	}
	d.ws()
	return d.eof()
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

type decoder struct {
	b []byte
	i int
}

func (d *decoder) eof() bool { return d.i >= len(d.b) }

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) syntax(context string) error {
	if d.eof() {
		return errors.New("unexpected end of JSON input")
	}
	return fmt.Errorf("invalid character %q %s (offset %d)", d.b[d.i], context, d.i)
}

// value decodes the value at d.i; skip, when set, only checks it.
func (d *decoder) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("exceeded max depth")
	}
	switch c := d.b[d.i]; {
	case c == '{':
		m := map[string]any{}
		d.i++
		for first := true; ; first = false {
			key, ok, err := d.nextKey(first)
			if err != nil {
				return nil, err
			}
			if !ok {
				return m, nil
			}
			v, err := d.value(depth + 1)
			if err != nil {
				return nil, err
			}
			m[key] = v
		}
	case c == '[':
		a := []any{}
		d.i++
		for first := true; ; first = false {
			ok, err := d.nextElem(first)
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
		return d.str()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	case c == '-' || isDigit(c):
		tok, err := d.number()
		if err != nil {
			return nil, err
		}
		f, err := strconv.ParseFloat(string(tok), 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, fmt.Errorf("json: cannot unmarshal number %s into Go value of type float64", tok)
		}
		return f, nil
	}
	return nil, d.syntax("looking for beginning of value")
}

// skip checks the value at d.i without building it.
func (d *decoder) skip(depth int) error {
	if depth > maxDepth {
		return errors.New("exceeded max depth")
	}
	switch c := d.b[d.i]; {
	case c == '{':
		d.i++
		for first := true; ; first = false {
			_, ok, err := d.nextKey(first)
			if !ok || err != nil {
				return err
			}
			if err := d.skip(depth + 1); err != nil {
				return err
			}
		}
	case c == '[':
		d.i++
		for first := true; ; first = false {
			ok, err := d.nextElem(first)
			if !ok || err != nil {
				return err
			}
			if err := d.skip(depth + 1); err != nil {
				return err
			}
		}
	case c == '"':
		_, err := d.str()
		return err
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '-' || isDigit(c):
		_, err := d.number()
		return err
	}
	return d.syntax("looking for beginning of value")
}

// nextKey steps to the next member of an object whose '{' is consumed and
// returns its key, leaving d.i at its value; ok is false after the '}'.
func (d *decoder) nextKey(first bool) (key string, ok bool, err error) {
	d.ws()
	if d.eof() {
		return "", false, d.syntax("")
	}
	switch c := d.b[d.i]; {
	case c == '}' && first:
		d.i++
		return "", false, nil
	case first:
	case c == ',':
		d.i++
		d.ws()
	case c == '}':
		d.i++
		return "", false, nil
	default:
		return "", false, d.syntax("after object key:value pair")
	}
	if d.eof() || d.b[d.i] != '"' {
		return "", false, d.syntax("looking for beginning of object key string")
	}
	if key, err = d.str(); err != nil {
		return "", false, err
	}
	d.ws()
	if d.eof() || d.b[d.i] != ':' {
		return "", false, d.syntax("after object key")
	}
	d.i++
	d.ws()
	if d.eof() {
		return "", false, d.syntax("")
	}
	return key, true, nil
}

// nextElem steps to the next element of an array whose '[' is consumed;
// ok is false after the ']'.
func (d *decoder) nextElem(first bool) (ok bool, err error) {
	d.ws()
	if d.eof() {
		return false, d.syntax("")
	}
	switch c := d.b[d.i]; {
	case c == ']' && first:
		d.i++
		return false, nil
	case first:
	case c == ',':
		d.i++
		d.ws()
	case c == ']':
		d.i++
		return false, nil
	default:
		return false, d.syntax("after array element")
	}
	if d.eof() {
		return false, d.syntax("")
	}
	return true, nil
}

// str reads the string at d.i; strings with escapes or non-ASCII bytes go
// through encoding/json, which unescapes and repairs them.
func (d *decoder) str() (string, error) {
	start := d.i
	d.i++
	plain := true
	for {
		if d.eof() {
			return "", errors.New("unexpected end of JSON input")
		}
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			if plain {
				return string(d.b[start+1 : d.i-1]), nil
			}
			var s string
			if err := json.Unmarshal(d.b[start:d.i], &s); err != nil {
				return "", err
			}
			return s, nil
		case c == '\\':
			plain = false
			d.i++
			if d.eof() {
				return "", errors.New("unexpected end of JSON input")
			}
			switch d.b[d.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.i++
			case 'u':
				d.i++
				for range 4 {
					if d.eof() {
						return "", errors.New("unexpected end of JSON input")
					}
					if !isHex(d.b[d.i]) {
						return "", d.syntax("in \\u hexadecimal character escape")
					}
					d.i++
				}
			default:
				return "", d.syntax("in string escape code")
			}
		case c < 0x20:
			return "", d.syntax("in string literal")
		case c >= utf8.RuneSelf:
			plain = false
			d.i++
		default:
			d.i++
		}
	}
}

func (d *decoder) literal(word string) error {
	for k := 0; k < len(word); k++ {
		if d.eof() || d.b[d.i] != word[k] {
			return d.syntax("in literal " + word)
		}
		d.i++
	}
	return nil
}

func (d *decoder) number() ([]byte, error) {
	start := d.i
	if d.b[d.i] == '-' {
		d.i++
	}
	if d.eof() {
		return nil, d.syntax("")
	}
	switch c := d.b[d.i]; {
	case c == '0':
		d.i++
	case '1' <= c && c <= '9':
		for d.i < len(d.b) && isDigit(d.b[d.i]) {
			d.i++
		}
	default:
		return nil, d.syntax("in numeric literal")
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if d.eof() || !isDigit(d.b[d.i]) {
			return nil, d.syntax("after decimal point in numeric literal")
		}
		for d.i < len(d.b) && isDigit(d.b[d.i]) {
			d.i++
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if d.eof() || !isDigit(d.b[d.i]) {
			return nil, d.syntax("in exponent of numeric literal")
		}
		for d.i < len(d.b) && isDigit(d.b[d.i]) {
			d.i++
		}
	}
	return d.b[start:d.i], nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
