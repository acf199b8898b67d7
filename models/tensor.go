package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/weirhq/weir/internal/onnx"
	ort "github.com/yalue/onnxruntime_go"

	"github.com/weirhq/weir/internal/weirerr"
)

// InferRequest is an Open Inference Protocol (KServe V2) inference request.
type InferRequest struct {
	ID         string            `json:"id,omitempty"`
	Parameters map[string]any    `json:"parameters,omitempty"`
	Inputs     []InputTensor     `json:"inputs"`
	Outputs    []RequestedOutput `json:"outputs,omitempty"`
}

// InputTensor is one input of a request. Data is kept raw and parsed for
// the datatype the model expects, flat or nested (row major).
type InputTensor struct {
	Name       string          `json:"name"`
	Shape      []int64         `json:"shape"`
	Datatype   Datatype        `json:"datatype"`
	Parameters map[string]any  `json:"parameters,omitempty"`
	Data       json.RawMessage `json:"data"`
	// Values, when not nil, is the input's data already decoded into a
	// typed slice (see TensorData) by a transport that carries tensors in
	// binary (the OIP binary extension, gRPC); Data is then ignored.
	Values any `json:"-"`

	count int // scalars in Data, as DecodeInferRequest counted them; 0: not counted
}

// RequestedOutput names an output the caller wants; none means all.
type RequestedOutput struct {
	Name       string         `json:"name"`
	Parameters map[string]any `json:"parameters,omitempty"`
}

// InferResponse is an Open Inference Protocol inference response.
type InferResponse struct {
	ModelName    string         `json:"model_name"`
	ModelVersion string         `json:"model_version"`
	ID           string         `json:"id,omitempty"`
	Outputs      []OutputTensor `json:"outputs"`
}

// OutputTensor is one output of a response. Data holds a typed Go slice
// ([]float32, []int64, []string, ...); see TensorData.
type OutputTensor struct {
	Name     string     `json:"name"`
	Shape    []int64    `json:"shape"`
	Datatype Datatype   `json:"datatype"`
	Data     TensorData `json:"data"`
}

// TensorData is a flat, typed tensor payload. It marshals to a JSON array of
// numbers, booleans or strings: uint8 data as numbers (not base64), FP16 as
// the float32 it stands for, and non-finite floats as the strings "NaN",
// "Infinity" and "-Infinity" (which inputs accept too), since JSON numbers
// cannot hold them.
type TensorData struct {
	Values any
}

// Len is the number of elements.
func (d TensorData) Len() int {
	switch v := d.Values.(type) {
	case []float32:
		return len(v)
	case []float64:
		return len(v)
	case []int8:
		return len(v)
	case []int16:
		return len(v)
	case []int32:
		return len(v)
	case []int64:
		return len(v)
	case []uint8:
		return len(v)
	case []uint16:
		return len(v)
	case []uint32:
		return len(v)
	case []uint64:
		return len(v)
	case []bool:
		return len(v)
	case []string:
		return len(v)
	}
	return 0
}

// Float64 returns element i as a float64 (strings as NaN); for events and
// statistics.
func (d TensorData) Float64(i int) float64 {
	switch v := d.Values.(type) {
	case []float32:
		return float64(v[i])
	case []float64:
		return v[i]
	case []int8:
		return float64(v[i])
	case []int16:
		return float64(v[i])
	case []int32:
		return float64(v[i])
	case []int64:
		return float64(v[i])
	case []uint8:
		return float64(v[i])
	case []uint16:
		return float64(v[i])
	case []uint32:
		return float64(v[i])
	case []uint64:
		return float64(v[i])
	case []bool:
		if v[i] {
			return 1
		}
		return 0
	}
	return math.NaN()
}

// MarshalJSON writes the values as a flat JSON array.
func (d TensorData) MarshalJSON() ([]byte, error) {
	return d.AppendJSON(make([]byte, 0, 16+8*d.Len()))
}

// AppendJSON appends the values as a flat JSON array to b.
func (d TensorData) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, '[')
	switch v := d.Values.(type) {
	case []float32:
		for i, x := range v {
			b = appendSep(b, i)
			b = appendFloat(b, float64(x), 32)
		}
	case []float64:
		for i, x := range v {
			b = appendSep(b, i)
			b = appendFloat(b, x, 64)
		}
	case []int8:
		for i, x := range v {
			b = strconv.AppendInt(appendSep(b, i), int64(x), 10)
		}
	case []int16:
		for i, x := range v {
			b = strconv.AppendInt(appendSep(b, i), int64(x), 10)
		}
	case []int32:
		for i, x := range v {
			b = strconv.AppendInt(appendSep(b, i), int64(x), 10)
		}
	case []int64:
		for i, x := range v {
			b = strconv.AppendInt(appendSep(b, i), x, 10)
		}
	case []uint8:
		for i, x := range v {
			b = strconv.AppendUint(appendSep(b, i), uint64(x), 10)
		}
	case []uint16:
		for i, x := range v {
			b = strconv.AppendUint(appendSep(b, i), uint64(x), 10)
		}
	case []uint32:
		for i, x := range v {
			b = strconv.AppendUint(appendSep(b, i), uint64(x), 10)
		}
	case []uint64:
		for i, x := range v {
			b = strconv.AppendUint(appendSep(b, i), x, 10)
		}
	case []bool:
		for i, x := range v {
			b = strconv.AppendBool(appendSep(b, i), x)
		}
	case []string:
		for i, x := range v {
			b = appendString(appendSep(b, i), x)
		}
	case nil:
	default:
		return nil, fmt.Errorf("tensor data of unexpected type %T", d.Values)
	}
	return append(b, ']'), nil
}

func appendSep(b []byte, i int) []byte {
	if i > 0 {
		return append(b, ',')
	}
	return b
}

func appendFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

// UnmarshalJSON reads a flat or nested JSON array whose element type is
// decided by the caller later (see parseData); it keeps the raw bytes.
func (d *TensorData) UnmarshalJSON(b []byte) error {
	d.Values = json.RawMessage(append([]byte(nil), b...))
	return nil
}

// parseFloatTok parses a JSON number, or the strings NaN/Infinity/-Infinity.
func parseFloatTok(tok []byte, bits int) (float64, error) {
	if len(tok) > 0 && tok[0] == '"' {
		switch string(tok) {
		case `"NaN"`, `"nan"`:
			return math.NaN(), nil
		case `"Infinity"`, `"inf"`, `"+Infinity"`:
			return math.Inf(1), nil
		case `"-Infinity"`, `"-inf"`:
			return math.Inf(-1), nil
		}
		return 0, fmt.Errorf("%s is not a number", tok)
	}
	f, err := strconv.ParseFloat(string(tok), bits)
	if errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("%s is out of range for FP%d", tok, bits)
	}
	if err != nil {
		return 0, fmt.Errorf("%s is not a number", tok)
	}
	return f, nil
}

func parseIntTok(tok []byte, bits int) (int64, error) {
	v, err := strconv.ParseInt(string(tok), 10, bits)
	if err == nil {
		return v, nil
	}
	// Accept integral floats such as 3.0 or 1e3 that some clients send.
	f, ferr := strconv.ParseFloat(string(tok), 64)
	if ferr == nil && f == math.Trunc(f) && f >= -math.Exp2(float64(bits-1)) && f < math.Exp2(float64(bits-1)) {
		return int64(f), nil
	}
	return 0, fmt.Errorf("%s is not an integer that fits in %d bits", tok, bits)
}

func parseUintTok(tok []byte, bits int) (uint64, error) {
	v, err := strconv.ParseUint(string(tok), 10, bits)
	if err == nil {
		return v, nil
	}
	f, ferr := strconv.ParseFloat(string(tok), 64)
	if ferr == nil && f == math.Trunc(f) && f >= 0 && f < math.Exp2(float64(bits)) {
		return uint64(f), nil
	}
	return 0, fmt.Errorf("%s is not an unsigned integer that fits in %d bits", tok, bits)
}

// parseData reads raw JSON data of datatype dt (flat or nested, row major)
// into a typed slice of capacity n, the number of scalars the data holds
// (counted, never a claimed shape; it is capped anyway by what raw can
// hold, every element taking at least two bytes with its separator).
// Numeric and boolean slices come from a pool: buf is what Release gives
// back.
func parseData(raw []byte, dt Datatype, n int) (vals any, buf any, err error) {
	n = max(0, min(n, len(raw)/2+1))
	switch dt {
	case FP32, FP16: // FP16 is converted to half precision when the tensor is built
		return parsePooled(raw, &poolF32, n, convF32)
	case FP64:
		return parsePooled(raw, &poolF64, n, convF64)
	case Int8:
		return parsePooled(raw, &poolI8, n, convI8)
	case Int16:
		return parsePooled(raw, &poolI16, n, convI16)
	case Int32:
		return parsePooled(raw, &poolI32, n, convI32)
	case Int64:
		return parsePooled(raw, &poolI64, n, convI64)
	case Uint8:
		return parsePooled(raw, &poolU8, n, convU8)
	case Uint16:
		return parsePooled(raw, &poolU16, n, convU16)
	case Uint32:
		return parsePooled(raw, &poolU32, n, convU32)
	case Uint64:
		return parsePooled(raw, &poolU64, n, convU64)
	case Bool:
		return parsePooled(raw, &poolBool, n, convBool)
	case Bytes:
		out, err := parseElements(raw, make([]string, 0, n), convString)
		return out, nil, err
	}
	return nil, nil, fmt.Errorf("unsupported datatype %s", dt)
}

// countScalars checks raw as JSON data and counts its scalars.
func countScalars(raw []byte) (int, error) {
	d := newDecoder(raw)
	d.WS()
	if d.EOF() {
		return 0, nil
	}
	n, err := d.scalars(1)
	if err == nil {
		d.WS()
		if !d.EOF() {
			err = d.Syntax("after data")
		}
	}
	return n, err
}

// maxPooled is the largest buffer (in elements) kept for reuse: enough
// for an image tensor (1x3x224x224 is 150,528), so that JSON images parse
// into a reused buffer. A sync.Pool lets the collector free what it holds
// when it goes unused over two collections, so memory still returns after
// a burst.
const maxPooled = 1 << 21

// slicePool reuses typed data buffers between requests.
type slicePool[T any] struct{ p sync.Pool }

func (sp *slicePool[T]) get(n int) *[]T {
	if b, ok := sp.p.Get().(*[]T); ok {
		if cap(*b) >= n {
			*b = (*b)[:0]
			return b
		}
		sp.p.Put(b)
	}
	s := make([]T, 0, n)
	return &s
}

func (sp *slicePool[T]) put(b *[]T) {
	if cap(*b) <= maxPooled {
		sp.p.Put(b)
	}
}

var (
	poolF32  slicePool[float32]
	poolF64  slicePool[float64]
	poolI8   slicePool[int8]
	poolI16  slicePool[int16]
	poolI32  slicePool[int32]
	poolI64  slicePool[int64]
	poolU8   slicePool[uint8]
	poolU16  slicePool[uint16]
	poolU32  slicePool[uint32]
	poolU64  slicePool[uint64]
	poolBool slicePool[bool]
)

func parsePooled[T any](raw []byte, sp *slicePool[T], n int, conv func([]byte) (T, error)) (any, any, error) {
	b := sp.get(n)
	out, err := parseElements(raw, *b, conv)
	if err != nil {
		*b = out
		sp.put(b)
		return nil, nil, err
	}
	*b = out
	return out, b, nil
}

// Release returns the data buffers of tensors that Prepare parsed to their
// pools. The tensors' data must not be used afterwards.
func Release(ts []Tensor) {
	for i := range ts {
		switch b := ts[i].buf.(type) {
		case *[]float32:
			poolF32.put(b)
		case *[]float64:
			poolF64.put(b)
		case *[]int8:
			poolI8.put(b)
		case *[]int16:
			poolI16.put(b)
		case *[]int32:
			poolI32.put(b)
		case *[]int64:
			poolI64.put(b)
		case *[]uint8:
			poolU8.put(b)
		case *[]uint16:
			poolU16.put(b)
		case *[]uint32:
			poolU32.put(b)
		case *[]uint64:
			poolU64.put(b)
		case *[]bool:
			poolBool.put(b)
		}
		ts[i].buf = nil
		ts[i].Data.Values = nil
	}
}

// parseElements appends each scalar of raw (checked JSON: a scalar or
// nested arrays of them) converted by conv to out.
func parseElements[T any](raw []byte, out []T, conv func([]byte) (T, error)) ([]T, error) {
	i, n, idx := 0, len(raw), 0
	for i < n {
		switch c := raw[i]; c {
		case ' ', '\t', '\n', '\r', '[', ']', ',':
			i++
			continue
		case '{':
			return out, fmt.Errorf("found an object where a value was expected")
		}
		j := i
		if raw[i] == '"' {
			j++
			for j < n && raw[j] != '"' {
				if raw[j] == '\\' {
					j++
				}
				j++
			}
			if j >= n {
				return out, fmt.Errorf("unterminated string")
			}
			j++
		} else {
			for j < n && !isDelim(raw[j]) {
				j++
			}
		}
		v, err := conv(raw[i:j])
		if err != nil {
			return out, fmt.Errorf("element %d: %w", idx, err)
		}
		out = append(out, v)
		idx++
		i = j
	}
	return out, nil
}

func isDelim(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '[', ']', ',', '"', '{', '}':
		return true
	}
	return false
}

func convF32(tok []byte) (float32, error) {
	f, err := parseFloatTok(tok, 32)
	return float32(f), err
}

func convF64(tok []byte) (float64, error) { return parseFloatTok(tok, 64) }

func convI8(tok []byte) (int8, error) {
	v, err := parseIntTok(tok, 8)
	return int8(v), err
}

func convI16(tok []byte) (int16, error) {
	v, err := parseIntTok(tok, 16)
	return int16(v), err
}

func convI32(tok []byte) (int32, error) {
	v, err := parseIntTok(tok, 32)
	return int32(v), err
}

func convI64(tok []byte) (int64, error) { return parseIntTok(tok, 64) }

func convU8(tok []byte) (uint8, error) {
	v, err := parseUintTok(tok, 8)
	return uint8(v), err
}

func convU16(tok []byte) (uint16, error) {
	v, err := parseUintTok(tok, 16)
	return uint16(v), err
}

func convU32(tok []byte) (uint32, error) {
	v, err := parseUintTok(tok, 32)
	return uint32(v), err
}

func convU64(tok []byte) (uint64, error) { return parseUintTok(tok, 64) }

func convBool(tok []byte) (bool, error) {
	switch string(tok) {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, fmt.Errorf("%s is not a boolean", tok)
}

func convString(tok []byte) (string, error) {
	if len(tok) == 0 || tok[0] != '"' {
		return "", fmt.Errorf("%s is not a string", tok)
	}
	plain := true
	for _, c := range tok[1 : len(tok)-1] {
		if c == '\\' || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	if plain {
		return string(tok[1 : len(tok)-1]), nil
	}
	var s string
	if err := json.Unmarshal(tok, &s); err != nil {
		return "", err
	}
	return s, nil
}

// newValue builds a runtime tensor of shape from typed values. A rank-0
// shape becomes a runtime scalar, which the binding's tensors cannot hold.
func newValue(dt Datatype, shape []int64, values any) (ort.Value, error) {
	s := ort.NewShape(shape...)
	scalar := len(shape) == 0
	switch v := values.(type) {
	case []float32:
		if dt == FP16 {
			if scalar {
				return nil, weirerr.Invalidf("rank-0 FP16 tensors are not supported")
			}
			b := make([]byte, 2*len(v))
			for i, f := range v {
				h := onnx.Float32ToFloat16(f)
				b[2*i], b[2*i+1] = byte(h), byte(h>>8)
			}
			if len(b) == 0 {
				return nil, weirerr.Invalidf("empty FP16 tensors are not supported")
			}
			return ort.NewCustomDataTensor(s, b, ort.TensorElementDataTypeFloat16)
		}
		return tensorOrScalar(s, v, scalar)
	case []float64:
		return tensorOrScalar(s, v, scalar)
	case []int8:
		return tensorOrScalar(s, v, scalar)
	case []int16:
		return tensorOrScalar(s, v, scalar)
	case []int32:
		return tensorOrScalar(s, v, scalar)
	case []int64:
		return tensorOrScalar(s, v, scalar)
	case []uint8:
		return tensorOrScalar(s, v, scalar)
	case []uint16:
		return tensorOrScalar(s, v, scalar)
	case []uint32:
		return tensorOrScalar(s, v, scalar)
	case []uint64:
		return tensorOrScalar(s, v, scalar)
	case []bool:
		return tensorOrScalar(s, v, scalar)
	case []string:
		if scalar {
			return nil, weirerr.Invalidf("rank-0 BYTES tensors are not supported")
		}
		t, err := ort.NewStringTensor(s)
		if err != nil {
			return nil, err
		}
		if len(v) > 0 {
			if err := fillStrings(t, v); err != nil {
				t.Destroy()
				return nil, err
			}
		}
		return t, nil
	}
	return nil, fmt.Errorf("no tensor for %T", values)
}

func tensorOrScalar[T ort.TensorData](s ort.Shape, v []T, scalar bool) (ort.Value, error) {
	if scalar {
		return ort.NewScalar(v[0])
	}
	return ort.NewTensor(s, v)
}

// emptyScalar preallocates a rank-0 output of dt, which the binding cannot
// allocate itself.
func emptyScalar(dt Datatype) (ort.Value, error) {
	switch dt {
	case FP32:
		return ort.NewEmptyScalar[float32]()
	case FP64:
		return ort.NewEmptyScalar[float64]()
	case Int8:
		return ort.NewEmptyScalar[int8]()
	case Int16:
		return ort.NewEmptyScalar[int16]()
	case Int32:
		return ort.NewEmptyScalar[int32]()
	case Int64:
		return ort.NewEmptyScalar[int64]()
	case Uint8:
		return ort.NewEmptyScalar[uint8]()
	case Uint16:
		return ort.NewEmptyScalar[uint16]()
	case Uint32:
		return ort.NewEmptyScalar[uint32]()
	case Uint64:
		return ort.NewEmptyScalar[uint64]()
	case Bool:
		return ort.NewEmptyScalar[bool]()
	}
	return nil, fmt.Errorf("rank-0 %s outputs are not supported", dt)
}

// valueData is a runtime value's contents as a typed slice, and its shape.
// FP16 comes back as []float32. A tensor's slice is the Go memory the
// binding copied the runtime's output into (Destroy leaves it alone), so it
// is handed on as it is, not copied again.
func valueData(v ort.Value) (any, []int64, error) {
	shape := []int64(v.GetShape())
	if shape == nil {
		shape = []int64{}
	}
	switch t := v.(type) {
	case *ort.Tensor[float32]:
		return t.GetData(), shape, nil
	case *ort.Tensor[float64]:
		return t.GetData(), shape, nil
	case *ort.Tensor[int8]:
		return t.GetData(), shape, nil
	case *ort.Tensor[int16]:
		return t.GetData(), shape, nil
	case *ort.Tensor[int32]:
		return t.GetData(), shape, nil
	case *ort.Tensor[int64]:
		return t.GetData(), shape, nil
	case *ort.Tensor[uint8]:
		return t.GetData(), shape, nil
	case *ort.Tensor[uint16]:
		return t.GetData(), shape, nil
	case *ort.Tensor[uint32]:
		return t.GetData(), shape, nil
	case *ort.Tensor[uint64]:
		return t.GetData(), shape, nil
	case *ort.Tensor[bool]:
		return t.GetData(), shape, nil
	case *ort.Scalar[float32]:
		return []float32{t.GetData()}, shape, nil
	case *ort.Scalar[float64]:
		return []float64{t.GetData()}, shape, nil
	case *ort.Scalar[int8]:
		return []int8{t.GetData()}, shape, nil
	case *ort.Scalar[int16]:
		return []int16{t.GetData()}, shape, nil
	case *ort.Scalar[int32]:
		return []int32{t.GetData()}, shape, nil
	case *ort.Scalar[int64]:
		return []int64{t.GetData()}, shape, nil
	case *ort.Scalar[uint8]:
		return []uint8{t.GetData()}, shape, nil
	case *ort.Scalar[uint16]:
		return []uint16{t.GetData()}, shape, nil
	case *ort.Scalar[uint32]:
		return []uint32{t.GetData()}, shape, nil
	case *ort.Scalar[uint64]:
		return []uint64{t.GetData()}, shape, nil
	case *ort.Scalar[bool]:
		return []bool{t.GetData()}, shape, nil
	case *ort.StringTensor:
		s, err := t.GetContents()
		return s, shape, err
	case *ort.CustomDataTensor:
		if ort.TensorElementDataType(t.DataType()) != ort.TensorElementDataTypeFloat16 {
			return nil, nil, fmt.Errorf("output of element type %d is not supported", t.DataType())
		}
		b := t.GetData()
		out := make([]float32, len(b)/2)
		for i := range out {
			out[i] = onnx.Float16ToFloat32(uint16(b[2*i]) | uint16(b[2*i+1])<<8)
		}
		return out, shape, nil
	}
	return nil, nil, fmt.Errorf("output value of type %T is not supported", v)
}

// emptyFP16 preallocates a static-shape FP16 output: the binding copies only
// half of an FP16 output that the runtime allocated, so weir gives the
// runtime a buffer of the right size instead.
func emptyFP16(shape []int64) (ort.Value, error) {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	if n == 0 {
		return nil, fmt.Errorf("empty FP16 outputs are not supported")
	}
	return ort.NewCustomDataTensor(ort.NewShape(shape...), make([]byte, 2*n), ort.TensorElementDataTypeFloat16)
}
