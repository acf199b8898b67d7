package models

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// DecodeInferRequest parses an Open Inference Protocol JSON request from
// body into req, without encoding/json's reflection: it accepts and refuses
// exactly what json.Unmarshal into an InferRequest does (keys matched
// case-insensitively, unknown keys skipped after they are checked, null as
// the zero value), and it checks and counts each input's data on the way, so
// that Prepare can parse the data straight into a buffer of the counted
// size, whatever shape the request claims.
//
// Each input's Data aliases body: it is valid only as long as body is (see
// InferRequest.Detach). Errors say what is wrong and where; the gateway
// reports them as 400.
func DecodeInferRequest(body []byte, req *InferRequest) error {
	*req = InferRequest{}
	d := decoder{b: body}
	d.ws()
	if d.eof() {
		return errors.New("unexpected end of JSON input")
	}
	var err error
	switch start := d.i; d.b[d.i] {
	case '{':
		d.i++
		for first := true; ; first = false {
			key, ok, err := d.nextKey(first)
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			if err := d.requestField(key, req); err != nil {
				return err
			}
		}
	case 'n':
		err = d.literal("null")
	default:
		if err = d.skip(0); err == nil {
			err = fmt.Errorf("the request is a JSON %s, expected an object", kindOf(body[start]))
		}
	}
	if err != nil {
		return err
	}
	d.ws()
	if !d.eof() {
		return d.syntax("after top-level value")
	}
	return nil
}

// Detach copies every input's Data out of the body it was decoded from, so
// the request may outlive that body (a shadow request run after the
// handler has returned).
func (r *InferRequest) Detach() {
	inputs := make([]InputTensor, len(r.Inputs))
	copy(inputs, r.Inputs)
	for i := range inputs {
		if inputs[i].Data != nil {
			inputs[i].Data = bytes.Clone(inputs[i].Data)
		}
	}
	r.Inputs = inputs
}

// decoder is a strict JSON reader over one request body.
type decoder struct {
	b []byte
	i int
}

// maxDepth bounds nesting as encoding/json does.
const maxDepth = 10000

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

// syntax is the error for the byte at d.i (or the end of the input).
func (d *decoder) syntax(context string) error {
	if d.eof() {
		return errors.New("unexpected end of JSON input")
	}
	return fmt.Errorf("invalid character %s %s (offset %d)", quoteChar(d.b[d.i]), context, d.i)
}

func quoteChar(c byte) string {
	switch {
	case c == '\'':
		return `'\''`
	case c == '"':
		return `'"'`
	case c < 0x20 || c >= 0x7f:
		return fmt.Sprintf("%q", c)
	}
	return "'" + string(c) + "'"
}

func kindOf(c byte) string {
	switch c {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// nextKey steps to the next member of the object whose '{' has been
// consumed (first says no member has been read yet) and returns its key
// (unescaped), leaving d.i at the start of its value; ok is false after the
// closing '}'.
func (d *decoder) nextKey(first bool) (key []byte, ok bool, err error) {
	d.ws()
	if d.eof() {
		return nil, false, d.syntax("")
	}
	switch c := d.b[d.i]; {
	case c == '}' && first:
		d.i++
		return nil, false, nil
	case first:
	case c == ',':
		d.i++
		d.ws()
	case c == '}':
		d.i++
		return nil, false, nil
	default:
		return nil, false, d.syntax("after object key:value pair")
	}
	if d.eof() || d.b[d.i] != '"' {
		return nil, false, d.syntax("looking for beginning of object key string")
	}
	if key, err = d.str(); err != nil {
		return nil, false, err
	}
	d.ws()
	if d.eof() || d.b[d.i] != ':' {
		return nil, false, d.syntax("after object key")
	}
	d.i++
	d.ws()
	if d.eof() {
		return nil, false, d.syntax("")
	}
	return key, true, nil
}

// nextElem steps to the next element of the array whose '[' has been
// consumed, leaving d.i at its start; ok is false after the closing ']'.
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

// str reads a string at d.i and returns its contents: a view of the body
// when it has no escapes, else a new, unescaped copy. Invalid UTF-8 becomes
// U+FFFD as with encoding/json.
func (d *decoder) str() ([]byte, error) {
	start := d.i
	d.i++
	plain := true
	for {
		if d.eof() {
			return nil, errors.New("unexpected end of JSON input")
		}
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			if plain {
				return d.b[start+1 : d.i-1], nil
			}
			var s string
			if err := json.Unmarshal(d.b[start:d.i], &s); err != nil {
				return nil, err
			}
			return []byte(s), nil
		case c == '\\':
			plain = false
			d.i++
			if d.eof() {
				return nil, errors.New("unexpected end of JSON input")
			}
			switch d.b[d.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.i++
			case 'u':
				d.i++
				for k := 0; k < 4; k++ {
					if d.eof() {
						return nil, errors.New("unexpected end of JSON input")
					}
					if !isHex(d.b[d.i]) {
						return nil, d.syntax("in \\u hexadecimal character escape")
					}
					d.i++
				}
			default:
				return nil, d.syntax("in string escape code")
			}
		case c < 0x20:
			return nil, d.syntax("in string literal")
		case c >= utf8.RuneSelf:
			plain = false // validated (and repaired) by the slow path
			d.i++
		default:
			d.i++
		}
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func (d *decoder) literal(word string) error {
	for k := 0; k < len(word); k++ {
		if d.eof() || d.b[d.i] != word[k] {
			return d.syntax("in literal " + word + " (expecting " + quoteChar(word[k]) + ")")
		}
		d.i++
	}
	return nil
}

// number reads a JSON number at d.i and returns its text.
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

// skip checks and skips any value at d.i.
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

// scalars checks and skips a value at d.i, counting its scalars (numbers,
// strings, booleans, nulls and objects) at any depth of arrays.
func (d *decoder) scalars(depth int) (int, error) {
	if depth > maxDepth {
		return 0, errors.New("exceeded max depth")
	}
	if d.b[d.i] != '[' {
		return 1, d.skip(depth)
	}
	n := 0
	d.i++
	for first := true; ; first = false {
		ok, err := d.nextElem(first)
		if !ok || err != nil {
			return n, err
		}
		k, err := d.scalars(depth + 1)
		if err != nil {
			return n, err
		}
		n += k
	}
}

// isNull consumes a null at d.i.
func (d *decoder) isNull() (bool, error) {
	if d.b[d.i] != 'n' {
		return false, nil
	}
	return true, d.literal("null")
}

// keyIs matches a key as encoding/json matches a field name: exactly, or
// else ignoring case.
func keyIs(key []byte, name string) bool {
	return string(key) == name || bytes.EqualFold(key, []byte(name))
}

// stringValue reads a string or null; bad is the first byte of a value of
// another type (skipped), for the caller's error.
func (d *decoder) stringValue() (s []byte, bad byte, err error) {
	if null, err := d.isNull(); null || err != nil {
		return nil, 0, err
	}
	if c := d.b[d.i]; c != '"' {
		return nil, c, d.skip(0)
	}
	s, err = d.str()
	return s, 0, err
}

// typeError names a field whose value (starting with c) has the wrong JSON
// type.
func typeError(field string, c byte, want string) error {
	return fmt.Errorf("%s is a JSON %s, expected %s", field, kindOf(c), want)
}

// mapField reads an object into *m, merging into a map already there as
// encoding/json does (parameters: rare, so encoding/json reads them).
func (d *decoder) mapField(field string, m *map[string]any) error {
	if null, err := d.isNull(); null || err != nil {
		if null {
			*m = nil
		}
		return err
	}
	start, c := d.i, d.b[d.i]
	if err := d.skip(0); err != nil {
		return err
	}
	if c != '{' {
		return typeError(field, c, "an object")
	}
	if err := json.Unmarshal(d.b[start:d.i], m); err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	return nil
}

// grow lengthens s by one, reusing the element beyond its length when the
// capacity has one.
func grow[T any](s []T) []T {
	if len(s) < cap(s) {
		return s[:len(s)+1]
	}
	var zero T
	return append(s, zero)
}

func (d *decoder) requestField(key []byte, req *InferRequest) error {
	var err error
	switch {
	case keyIs(key, "id"):
		s, bad, e := d.stringValue()
		if err = e; err == nil && bad != 0 {
			err = typeError("id", bad, "a string")
		}
		if s != nil { // null leaves the field as it was
			req.ID = string(s)
		}
	case keyIs(key, "parameters"):
		err = d.mapField("parameters", &req.Parameters)
	case keyIs(key, "inputs"):
		req.Inputs, err = d.inputs(req.Inputs[:0])
	case keyIs(key, "outputs"):
		req.Outputs, err = d.outputs(req.Outputs[:0])
	default:
		err = d.skip(1)
	}
	return err
}

func (d *decoder) inputs(out []InputTensor) ([]InputTensor, error) {
	if null, err := d.isNull(); null || err != nil {
		return nil, err
	}
	if c := d.b[d.i]; c != '[' {
		if err := d.skip(0); err != nil {
			return nil, err
		}
		return nil, typeError("inputs", c, "an array of input tensors")
	}
	if out == nil {
		out = []InputTensor{} // [] is empty, not absent
	}
	d.i++
	for n := 0; ; n++ {
		ok, err := d.nextElem(n == 0)
		if !ok || err != nil {
			return out, err
		}
		out = grow(out) // like encoding/json, an element decodes into what was there
		in := &out[len(out)-1]
		if null, err := d.isNull(); err != nil {
			return out, err
		} else if null {
			continue
		}
		if c := d.b[d.i]; c != '{' {
			if err := d.skip(0); err != nil {
				return out, err
			}
			return out, typeError(fmt.Sprintf("inputs[%d]", n), c, "an object")
		}
		d.i++
		for first := true; ; first = false {
			key, ok, err := d.nextKey(first)
			if err != nil {
				return out, err
			}
			if !ok {
				break
			}
			if err := d.inputField(n, key, in); err != nil {
				return out, err
			}
		}
	}
}

func (d *decoder) inputField(n int, key []byte, in *InputTensor) error {
	var err error
	switch {
	case keyIs(key, "name"):
		s, bad, e := d.stringValue()
		if err = e; err == nil && bad != 0 {
			err = typeError(fmt.Sprintf("inputs[%d].name", n), bad, "a string")
		}
		if s != nil {
			in.Name = string(s)
		}
	case keyIs(key, "datatype"):
		s, bad, e := d.stringValue()
		if err = e; err == nil && bad != 0 {
			err = typeError(fmt.Sprintf("inputs[%d].datatype", n), bad, "a string")
		}
		if s != nil {
			in.Datatype = datatypeOfName(s)
		}
	case keyIs(key, "shape"):
		in.Shape, err = d.shape(n)
	case keyIs(key, "parameters"):
		err = d.mapField(fmt.Sprintf("inputs[%d].parameters", n), &in.Parameters)
	case keyIs(key, "data"):
		start := d.i
		var count int
		count, err = d.scalars(1)
		in.Data, in.count = d.b[start:d.i], count
	default:
		err = d.skip(1)
	}
	return err
}

func (d *decoder) shape(n int) ([]int64, error) {
	if null, err := d.isNull(); null || err != nil {
		return nil, err
	}
	if c := d.b[d.i]; c != '[' {
		if err := d.skip(0); err != nil {
			return nil, err
		}
		return nil, typeError(fmt.Sprintf("inputs[%d].shape", n), c, "an array of integers")
	}
	shape := make([]int64, 0, 4)
	d.i++
	for k := 0; ; k++ {
		ok, err := d.nextElem(k == 0)
		if !ok || err != nil {
			return shape, err
		}
		c := d.b[d.i]
		if c == 'n' {
			shape = append(shape, 0) // null leaves the zero value, as encoding/json does
			if err := d.literal("null"); err != nil {
				return shape, err
			}
			continue
		}
		if c != '-' && !isDigit(c) {
			if err := d.skip(0); err != nil {
				return shape, err
			}
			return shape, typeError(fmt.Sprintf("inputs[%d].shape[%d]", n, k), c, "an integer")
		}
		tok, err := d.number()
		if err != nil {
			return shape, err
		}
		v, err := strconv.ParseInt(string(tok), 10, 64)
		if err != nil {
			return shape, fmt.Errorf("inputs[%d].shape[%d] is %s, expected an integer that fits in 64 bits", n, k, tok)
		}
		shape = append(shape, v)
	}
}

func (d *decoder) outputs(out []RequestedOutput) ([]RequestedOutput, error) {
	if null, err := d.isNull(); null || err != nil {
		return nil, err
	}
	if c := d.b[d.i]; c != '[' {
		if err := d.skip(0); err != nil {
			return nil, err
		}
		return nil, typeError("outputs", c, "an array of objects")
	}
	if out == nil {
		out = []RequestedOutput{}
	}
	d.i++
	for n := 0; ; n++ {
		ok, err := d.nextElem(n == 0)
		if !ok || err != nil {
			return out, err
		}
		out = grow(out)
		o := &out[len(out)-1]
		if null, err := d.isNull(); err != nil {
			return out, err
		} else if null {
			continue
		}
		if c := d.b[d.i]; c != '{' {
			if err := d.skip(0); err != nil {
				return out, err
			}
			return out, typeError(fmt.Sprintf("outputs[%d]", n), c, "an object")
		}
		d.i++
		for first := true; ; first = false {
			key, ok, err := d.nextKey(first)
			if err != nil {
				return out, err
			}
			if !ok {
				break
			}
			switch {
			case keyIs(key, "name"):
				s, bad, e := d.stringValue()
				if err = e; err == nil && bad != 0 {
					err = typeError(fmt.Sprintf("outputs[%d].name", n), bad, "a string")
				}
				if s != nil {
					o.Name = string(s)
				}
			case keyIs(key, "parameters"):
				err = d.mapField(fmt.Sprintf("outputs[%d].parameters", n), &o.Parameters)
			default:
				err = d.skip(1)
			}
			if err != nil {
				return out, err
			}
		}
	}
}

// datatypeOfName returns the Datatype named s without allocating for the
// names OIP defines.
func datatypeOfName(s []byte) Datatype {
	switch string(s) {
	case "BOOL":
		return Bool
	case "UINT8":
		return Uint8
	case "UINT16":
		return Uint16
	case "UINT32":
		return Uint32
	case "UINT64":
		return Uint64
	case "INT8":
		return Int8
	case "INT16":
		return Int16
	case "INT32":
		return Int32
	case "INT64":
		return Int64
	case "FP16":
		return FP16
	case "FP32":
		return FP32
	case "FP64":
		return FP64
	case "BYTES":
		return Bytes
	}
	return Datatype(s)
}
