package models

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/weirhq/weir/internal/jsonx"
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
//
// It is bounded by the bytes of body only: a transport decodes with
// Session.DecodeInferRequest, which also bounds it by the model's signature.
func DecodeInferRequest(body []byte, req *InferRequest) error {
	return decodeInferRequest(body, req, limits{})
}

// MaxParametersBytes bounds one parameters object of a request (the
// request's, an input's or an output's), which is decoded generically: the
// protocol's parameters are a few flags and counts.
const MaxParametersBytes = 64 << 10

// DecodeInferRequest is the package's DecodeInferRequest for a request to
// this model: what it builds is bounded by the model's signature as well as
// by the bytes sent. It refuses, before building them, an input past the
// model's count, an output past its count (naming the one that is unknown
// or repeated), a shape of more dimensions than any of the model's inputs
// has, and a parameters object over MaxParametersBytes. Without these, each
// "{}" of {"inputs":[{},{},...]} cost a whole InputTensor: 16 MiB of JSON
// took gigabytes.
func (s *Session) DecodeInferRequest(body []byte, req *InferRequest) error {
	return decodeInferRequest(body, req, limitsOf(s.inputs, s.outputs))
}

// limits are what a model allows a request to build. The zero value is no
// bound but the body's bytes (DecodeInferRequest, for its comparison with
// encoding/json).
type limits struct {
	bounded bool
	inputs  []TensorInfo // no more inputs than these may be named
	outputs []TensorInfo // requested outputs are among these, each once
	rank    int          // the most dimensions of any input
}

func limitsOf(inputs, outputs []TensorInfo) limits {
	l := limits{bounded: true, inputs: inputs, outputs: outputs}
	for _, in := range inputs {
		l.rank = max(l.rank, len(in.Shape))
	}
	return l
}

func decodeInferRequest(body []byte, req *InferRequest, lim limits) error {
	*req = InferRequest{}
	d := newDecoder(body)
	d.limits = lim
	d.WS()
	if d.EOF() {
		return errors.New("unexpected end of JSON input")
	}
	var err error
	switch start := d.I; d.B[d.I] {
	case '{':
		d.I++
		err = d.members(func(key []byte) error { return d.requestField(key, req) })
	case 'n':
		err = d.Literal("null")
	default:
		if err = d.Skip(0); err == nil {
			err = fmt.Errorf("the request is a JSON %s, expected an object", kindOf(body[start]))
		}
	}
	if err != nil {
		return err
	}
	d.WS()
	if !d.EOF() {
		return d.Syntax("after top-level value")
	}
	return nil
}

// Detach copies every input's Data, and its Values (which DecodeRaw may
// have made a view of the body), out of the body it was decoded from, so
// the request may outlive that body (a shadow request run after the
// handler has returned).
func (r *InferRequest) Detach() {
	inputs := make([]InputTensor, len(r.Inputs))
	copy(inputs, r.Inputs)
	for i := range inputs {
		if inputs[i].Data != nil {
			inputs[i].Data = bytes.Clone(inputs[i].Data)
		}
		inputs[i].Values = cloneValues(inputs[i].Values)
	}
	r.Inputs = inputs
}

// decoder reads one request body with jsonx's strict scanner, which
// accepts and refuses what encoding/json does.
type decoder struct {
	jsonx.Scanner
	limits limits
}

func newDecoder(b []byte) decoder { return decoder{Scanner: jsonx.Scanner{B: b}} }

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

// Where the values the decoder reads sit, counted as encoding/json counts
// nesting (0 for the request itself). Every value is skipped or scanned at
// its own depth, so one nested past jsonx.MaxDepth anywhere is refused as
// json.Unmarshal refuses it.
const (
	depthMember       = 1 // a member of the request: id, inputs, outputs...
	depthElement      = 2 // an element of inputs or outputs
	depthTensorMember = 3 // a member of one of those: name, shape, data...
	depthShapeElement = 4 // an element of an input's shape
)

// scalars checks and skips a value at d.I, nested depth deep, counting its
// scalars (numbers, strings, booleans, nulls and objects) at any depth of
// arrays.
func (d *decoder) scalars(depth int) (int, error) {
	if d.B[d.I] != '[' {
		return 1, d.Skip(depth)
	}
	if err := d.CheckDepth(depth); err != nil {
		return 0, err
	}
	n := 0
	d.I++
	for first := true; ; first = false {
		ok, err := d.NextElem(first)
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

// isNull consumes a null at d.I.
func (d *decoder) isNull() (bool, error) {
	if d.B[d.I] != 'n' {
		return false, nil
	}
	return true, d.Literal("null")
}

// keyIs matches a key as encoding/json matches a field name: exactly, or
// else ignoring case.
func keyIs(key []byte, name string) bool {
	return string(key) == name || bytes.EqualFold(key, []byte(name))
}

// stringField reads a string or null (nil, which leaves the field as it
// was), nested depth deep, for the member named by fieldName(array, n,
// member).
func (d *decoder) stringField(depth int, array string, n int, member string) ([]byte, error) {
	if null, err := d.isNull(); null || err != nil {
		return nil, err
	}
	if d.B[d.I] != '"' {
		return nil, d.wrongType(depth, fieldName(array, n, member), "a string")
	}
	return d.Str()
}

// fieldName is member of element n of array (member alone when array is
// empty), as errors name it.
func fieldName(array string, n int, member string) string {
	if array == "" {
		return member
	}
	return fmt.Sprintf("%s[%d].%s", array, n, member)
}

// wrongType skips the value at d.I, nested depth deep, and names it as a
// field of the wrong JSON type: encoding/json checks the syntax of the
// whole request first, so a value that is not valid JSON, or nests too
// deep, gets its syntax error instead.
func (d *decoder) wrongType(depth int, field, want string) error {
	c := d.B[d.I]
	if err := d.Skip(depth); err != nil {
		return err
	}
	return fmt.Errorf("%s is a JSON %s, expected %s", field, kindOf(c), want)
}

// mapField reads an object, nested depth deep, into *m, merging into a map
// already there as encoding/json does (parameters: rare, so encoding/json
// reads them).
func (d *decoder) mapField(depth int, field string, m *map[string]any) error {
	if null, err := d.isNull(); null || err != nil {
		if null {
			*m = nil
		}
		return err
	}
	if d.B[d.I] != '{' {
		return d.wrongType(depth, field, "an object")
	}
	start := d.I
	if err := d.Skip(depth); err != nil {
		return err
	}
	if n := d.I - start; d.limits.bounded && n > MaxParametersBytes {
		return fmt.Errorf("%s is %d bytes of JSON, over the limit of %d KiB for a parameters object", field, n, MaxParametersBytes>>10)
	}
	if err := json.Unmarshal(d.B[start:d.I], m); err != nil {
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
		var s []byte
		if s, err = d.stringField(depthMember, "", 0, "id"); s != nil {
			req.ID = string(s)
		}
	case keyIs(key, "parameters"):
		err = d.mapField(depthMember, "parameters", &req.Parameters)
	case keyIs(key, "inputs"):
		bound := bound[InputTensor]{max: -1}
		if d.limits.bounded {
			bound = boundInputs(d.limits.inputs)
		}
		req.Inputs, err = objects(d, req.Inputs[:0], "inputs", "an array of input tensors", bound, d.inputField)
	case keyIs(key, "outputs"):
		bound := bound[RequestedOutput]{max: -1}
		if d.limits.bounded {
			bound = boundOutputs(d.limits.outputs)
		}
		req.Outputs, err = objects(d, req.Outputs[:0], "outputs", "an array of objects", bound, d.outputField)
	default:
		err = d.Skip(depthMember)
	}
	return err
}

// bound is how many elements objects may build: past max (when not -1) it
// stops before building another, with the error tooMany makes of those
// built.
type bound[T any] struct {
	max     int
	tooMany func(built []T) error
}

// boundInputs stops a request at its first input past the model's count.
func boundInputs(inputs []TensorInfo) bound[InputTensor] {
	return bound[InputTensor]{max: len(inputs), tooMany: func([]InputTensor) error {
		return fmt.Errorf("the request names more than %d %s: the model has %d (%s)", len(inputs), plural(len(inputs), "input"), len(inputs), names(inputs))
	}}
}

// boundOutputs lets a request name one output more than the model has,
// so that the error can name the output that is unknown or repeated (of
// more than the model has, one is).
func boundOutputs(outputs []TensorInfo) bound[RequestedOutput] {
	return bound[RequestedOutput]{max: len(outputs) + 1, tooMany: func(built []RequestedOutput) error {
		if err := CheckOutputs(built, outputs); err != nil {
			return err
		}
		return fmt.Errorf("the request names more than %d %s: the model has %d (%s)", len(outputs), plural(len(outputs), "output"), len(outputs), names(outputs))
	}}
}

// objects reads a member of the request that is an array of objects, or
// null, into out; field reads the member named key of element n. Like
// encoding/json, an element decodes into what was there, and a null
// element leaves it. name and want word the errors for a value of another
// type.
func objects[T any](d *decoder, out []T, name, want string, b bound[T], field func(n int, key []byte, e *T) error) ([]T, error) {
	if null, err := d.isNull(); null || err != nil {
		return nil, err
	}
	if d.B[d.I] != '[' {
		return nil, d.wrongType(depthMember, name, want)
	}
	if out == nil {
		out = []T{} // [] is empty, not absent
	}
	d.I++
	for n := 0; ; n++ {
		ok, err := d.NextElem(n == 0)
		if !ok || err != nil {
			return out, err
		}
		if len(out) == b.max {
			return out, b.tooMany(out)
		}
		out = grow(out)
		e := &out[len(out)-1]
		if null, err := d.isNull(); err != nil {
			return out, err
		} else if null {
			continue
		}
		if d.B[d.I] != '{' {
			return out, d.wrongType(depthElement, fmt.Sprintf("%s[%d]", name, n), "an object")
		}
		d.I++
		if err := d.members(func(key []byte) error { return field(n, key, e) }); err != nil {
			return out, err
		}
	}
}

// members reads the members of an object whose '{' has been consumed,
// each value by field.
func (d *decoder) members(field func(key []byte) error) error {
	for first := true; ; first = false {
		key, ok, err := d.NextKey(first)
		if !ok || err != nil {
			return err
		}
		if err := field(key); err != nil {
			return err
		}
	}
}

func (d *decoder) inputField(n int, key []byte, in *InputTensor) error {
	var err error
	switch {
	case keyIs(key, "name"):
		var s []byte
		if s, err = d.stringField(depthTensorMember, "inputs", n, "name"); s != nil {
			in.Name = string(s)
		}
	case keyIs(key, "datatype"):
		var s []byte
		if s, err = d.stringField(depthTensorMember, "inputs", n, "datatype"); s != nil {
			in.Datatype = datatypeOfName(s)
		}
	case keyIs(key, "shape"):
		in.Shape, err = d.shape(n)
	case keyIs(key, "parameters"):
		err = d.mapField(depthTensorMember, fieldName("inputs", n, "parameters"), &in.Parameters)
	case keyIs(key, "data"):
		start := d.I
		var count int
		count, err = d.scalars(depthTensorMember)
		in.Data, in.count = d.B[start:d.I], count
	default:
		err = d.Skip(depthTensorMember)
	}
	return err
}

func (d *decoder) shape(n int) ([]int64, error) {
	if null, err := d.isNull(); null || err != nil {
		return nil, err
	}
	if d.B[d.I] != '[' {
		return nil, d.wrongType(depthTensorMember, fmt.Sprintf("inputs[%d].shape", n), "an array of integers")
	}
	shape := make([]int64, 0, 4)
	d.I++
	for k := 0; ; k++ {
		ok, err := d.NextElem(k == 0)
		if !ok || err != nil {
			return shape, err
		}
		if d.limits.bounded && k == d.limits.rank {
			return shape, fmt.Errorf("inputs[%d].shape has more than %d %s, the most any of the model's inputs has", n, k, plural(k, "dimension"))
		}
		c := d.B[d.I]
		if c == 'n' {
			shape = append(shape, 0) // null leaves the zero value, as encoding/json does
			if err := d.Literal("null"); err != nil {
				return shape, err
			}
			continue
		}
		if c != '-' && !jsonx.IsDigit(c) {
			return shape, d.wrongType(depthShapeElement, fmt.Sprintf("inputs[%d].shape[%d]", n, k), "an integer")
		}
		tok, err := d.Number()
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

func (d *decoder) outputField(n int, key []byte, o *RequestedOutput) error {
	var err error
	switch {
	case keyIs(key, "name"):
		var s []byte
		if s, err = d.stringField(depthTensorMember, "outputs", n, "name"); s != nil {
			o.Name = string(s)
		}
	case keyIs(key, "parameters"):
		err = d.mapField(depthTensorMember, fieldName("outputs", n, "parameters"), &o.Parameters)
	default:
		err = d.Skip(depthTensorMember)
	}
	return err
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
