package onnx

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/weirhq/weir/internal/weirerr"
)

// Tensor is a decoded TensorProto.
//
// Values is a typed slice in row-major order whose Go type follows DataType:
//
//	FLOAT []float32   DOUBLE []float64   FLOAT16, BFLOAT16 []float32 (widened)
//	INT8 []int8  INT16 []int16  INT32 []int32  INT64 []int64
//	UINT8 []uint8  UINT16 []uint16  UINT32 []uint32  UINT64 []uint64
//	BOOL []bool   STRING []string (the bytes, unvalidated)
//
// A tensor with no dims is a scalar holding one value.
type Tensor struct {
	Name     string
	DataType DataType
	Dims     []int64
	Values   any
}

// NumElements is the product of dims (1 for a scalar). It fails on a
// negative dim or a product that does not fit in an int.
func NumElements(dims []int64) (int, error) {
	n := int64(1)
	for _, d := range dims {
		if d < 0 {
			return 0, weirerr.Invalidf("dims %v: dimension %d is negative", dims, d)
		}
		if d != 0 && n > math.MaxInt32/d {
			return 0, weirerr.Invalidf("dims %v: more than %d elements", dims, math.MaxInt32)
		}
		n *= d
	}
	return int(n), nil
}

// DecodeTensor decodes a serialized TensorProto, taking its values from
// raw_data (little-endian) or from the typed repeated field that onnx.proto
// assigns to its data type. Tensors stored outside the message
// (external_data, segments) are refused.
func DecodeTensor(b []byte) (*Tensor, error) {
	var (
		t       Tensor
		raw     []byte
		hasRaw  bool
		f32s    []uint32 // float_data
		i32s    []uint64 // int32_data, as varints
		i64s    []uint64 // int64_data
		u64s    []uint64 // uint64_data
		f64s    []uint64 // double_data
		strs    []string // string_data
		where   string   // which typed field held data, for messages
		err     error
		dimsRaw []uint64
	)
	err = eachField(b, func(f field) error {
		var err error
		switch f.num {
		case tensorDims:
			dimsRaw, err = appendVarints(dimsRaw, f)
		case tensorDataType:
			t.DataType = DataType(int32(f.u64))
		case tensorName:
			t.Name = string(f.bytes)
		case tensorRawData:
			raw, hasRaw = f.bytes, true
		case tensorFloatData:
			f32s, err = appendFixed32s(f32s, f)
			where = "float_data"
		case tensorInt32Data:
			i32s, err = appendVarints(i32s, f)
			where = "int32_data"
		case tensorInt64Data:
			i64s, err = appendVarints(i64s, f)
			where = "int64_data"
		case tensorUint64Data:
			u64s, err = appendVarints(u64s, f)
			where = "uint64_data"
		case tensorDoubleData:
			f64s, err = appendFixed64s(f64s, f)
			where = "double_data"
		case tensorStringData:
			strs = append(strs, string(f.bytes))
			where = "string_data"
		case tensorSegment:
			return weirerr.Invalidf("segmented tensors are not supported")
		case tensorExternalData:
			return weirerr.Invalidf("tensors with external_data are not supported")
		case tensorDataLocation:
			if f.u64 != 0 {
				return weirerr.Invalidf("tensors stored externally (data_location %d) are not supported", f.u64)
			}
		}
		return err
	})
	if err != nil {
		return nil, tensorErr(&t, err)
	}
	t.Dims = make([]int64, len(dimsRaw))
	for i, d := range dimsRaw {
		t.Dims[i] = int64(d)
	}
	n, err := NumElements(t.Dims)
	if err != nil {
		return nil, tensorErr(&t, err)
	}

	if hasRaw {
		if t.DataType == String {
			return nil, tensorErr(&t, weirerr.Invalidf("STRING data must be in string_data, not raw_data"))
		}
		if t.Values, err = decodeRaw(t.DataType, raw, n); err != nil {
			return nil, tensorErr(&t, err)
		}
		return &t, nil
	}

	// Typed fields: check the count, then narrow.
	count := func(got int) error {
		if got != n {
			return weirerr.Invalidf("%d %s values in %s, dims %v need %d", got, t.DataType, fieldName(where, t.DataType), t.Dims, n)
		}
		return nil
	}
	switch t.DataType {
	case Float:
		if err = count(len(f32s)); err == nil {
			v := make([]float32, n)
			for i, u := range f32s {
				v[i] = math.Float32frombits(u)
			}
			t.Values = v
		}
	case Double:
		if err = count(len(f64s)); err == nil {
			v := make([]float64, n)
			for i, u := range f64s {
				v[i] = math.Float64frombits(u)
			}
			t.Values = v
		}
	case Int64:
		if err = count(len(i64s)); err == nil {
			t.Values = convert(i64s, func(u uint64) int64 { return int64(u) })
		}
	case Uint64:
		if err = count(len(u64s)); err == nil {
			t.Values = convert(u64s, func(u uint64) uint64 { return u })
		}
	case Uint32:
		if err = count(len(u64s)); err == nil {
			t.Values = convert(u64s, func(u uint64) uint32 { return uint32(u) })
		}
	case String:
		if err = count(len(strs)); err == nil {
			if strs == nil {
				strs = []string{}
			}
			t.Values = strs
		}
	case Int32, Int16, Int8, Uint16, Uint8, Bool, Float16, BFloat16:
		// int32_data carries all the narrow types, one int32 varint each
		// (float16/bfloat16 as their bit pattern).
		if err = count(len(i32s)); err == nil {
			t.Values = narrowInt32(t.DataType, i32s)
		}
	default:
		err = weirerr.Invalidf("data type %s is not supported", t.DataType)
	}
	if err != nil {
		return nil, tensorErr(&t, err)
	}
	return &t, nil
}

func fieldName(where string, dt DataType) string {
	if where != "" {
		return where
	}
	return "the " + dt.String() + " field"
}

func tensorErr(t *Tensor, err error) error {
	if err == nil {
		return nil
	}
	name := t.Name
	if name == "" {
		name = "(unnamed)"
	}
	return weirerr.Invalidf("onnx tensor %s: %w", name, err)
}

func convert[T any](in []uint64, f func(uint64) T) []T {
	out := make([]T, len(in))
	for i, u := range in {
		out[i] = f(u)
	}
	return out
}

func narrowInt32(dt DataType, in []uint64) any {
	i32 := func(u uint64) int32 { return int32(int64(u)) }
	switch dt {
	case Int32:
		return convert(in, i32)
	case Int16:
		return convert(in, func(u uint64) int16 { return int16(i32(u)) })
	case Int8:
		return convert(in, func(u uint64) int8 { return int8(i32(u)) })
	case Uint16:
		return convert(in, func(u uint64) uint16 { return uint16(i32(u)) })
	case Uint8:
		return convert(in, func(u uint64) uint8 { return uint8(i32(u)) })
	case Bool:
		return convert(in, func(u uint64) bool { return i32(u) != 0 })
	case Float16:
		return convert(in, func(u uint64) float32 { return Float16ToFloat32(uint16(i32(u))) })
	case BFloat16:
		return convert(in, func(u uint64) float32 { return BFloat16ToFloat32(uint16(i32(u))) })
	}
	return nil
}

// decodeRaw reads n little-endian elements of type dt from raw.
func decodeRaw(dt DataType, raw []byte, n int) (any, error) {
	size := dt.Size()
	if size == 0 {
		return nil, weirerr.Invalidf("data type %s is not supported", dt)
	}
	if len(raw) != n*size {
		return nil, weirerr.Invalidf("raw_data has %d bytes, %d %s elements need %d", len(raw), n, dt, n*size)
	}
	le := binary.LittleEndian
	switch dt {
	case Float:
		v := make([]float32, n)
		for i := range v {
			v[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
		return v, nil
	case Double:
		v := make([]float64, n)
		for i := range v {
			v[i] = math.Float64frombits(le.Uint64(raw[8*i:]))
		}
		return v, nil
	case Float16, BFloat16:
		widen := Float16ToFloat32
		if dt == BFloat16 {
			widen = BFloat16ToFloat32
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = widen(le.Uint16(raw[2*i:]))
		}
		return v, nil
	case Int8:
		v := make([]int8, n)
		for i := range v {
			v[i] = int8(raw[i])
		}
		return v, nil
	case Uint8:
		return append([]uint8(nil), raw...), nil
	case Bool:
		v := make([]bool, n)
		for i := range v {
			v[i] = raw[i] != 0
		}
		return v, nil
	case Int16:
		v := make([]int16, n)
		for i := range v {
			v[i] = int16(le.Uint16(raw[2*i:]))
		}
		return v, nil
	case Uint16:
		v := make([]uint16, n)
		for i := range v {
			v[i] = le.Uint16(raw[2*i:])
		}
		return v, nil
	case Int32:
		v := make([]int32, n)
		for i := range v {
			v[i] = int32(le.Uint32(raw[4*i:]))
		}
		return v, nil
	case Uint32:
		v := make([]uint32, n)
		for i := range v {
			v[i] = le.Uint32(raw[4*i:])
		}
		return v, nil
	case Int64:
		v := make([]int64, n)
		for i := range v {
			v[i] = int64(le.Uint64(raw[8*i:]))
		}
		return v, nil
	case Uint64:
		v := make([]uint64, n)
		for i := range v {
			v[i] = le.Uint64(raw[8*i:])
		}
		return v, nil
	}
	return nil, weirerr.Invalidf("data type %s is not supported", dt)
}

// EncodeTensor serializes t as a TensorProto, values in raw_data (strings in
// string_data). Values must have the Go type DecodeTensor would return for
// t.DataType (FLOAT16 also accepts []uint16 bit patterns) and len(Values)
// must match Dims.
func EncodeTensor(t *Tensor) ([]byte, error) {
	n, err := NumElements(t.Dims)
	if err != nil {
		return nil, tensorErr(t, err)
	}
	var b []byte
	b = putPackedInt64s(b, tensorDims, t.Dims)
	b = putInt64(b, tensorDataType, int64(t.DataType))
	if t.Name != "" {
		b = putString(b, tensorName, t.Name)
	}
	if t.DataType == String {
		s, ok := t.Values.([]string)
		if !ok {
			return nil, tensorErr(t, weirerr.Invalidf("STRING values must be []string, got %T", t.Values))
		}
		if len(s) != n {
			return nil, tensorErr(t, weirerr.Invalidf("%d values, dims %v need %d", len(s), t.Dims, n))
		}
		for _, v := range s {
			b = putString(b, tensorStringData, v)
		}
		return b, nil
	}
	raw, got, err := encodeRaw(t.DataType, t.Values)
	if err != nil {
		return nil, tensorErr(t, err)
	}
	if got != n {
		return nil, tensorErr(t, weirerr.Invalidf("%d values, dims %v need %d", got, t.Dims, n))
	}
	return putBytes(b, tensorRawData, raw), nil
}

// encodeRaw returns the little-endian bytes of values and their count.
func encodeRaw(dt DataType, values any) ([]byte, int, error) {
	le := binary.LittleEndian
	wrong := func() ([]byte, int, error) {
		return nil, 0, weirerr.Invalidf("%s values cannot be %T", dt, values)
	}
	switch v := values.(type) {
	case []float32:
		switch dt {
		case Float:
			b := make([]byte, 0, 4*len(v))
			for _, x := range v {
				b = le.AppendUint32(b, math.Float32bits(x))
			}
			return b, len(v), nil
		case Float16:
			b := make([]byte, 0, 2*len(v))
			for _, x := range v {
				b = le.AppendUint16(b, Float32ToFloat16(x))
			}
			return b, len(v), nil
		case BFloat16:
			// Truncating is not rounding; bfloat16 is here only for reading.
			return wrong()
		}
		return wrong()
	case []uint16:
		if dt != Uint16 && dt != Float16 && dt != BFloat16 {
			return wrong()
		}
		b := make([]byte, 0, 2*len(v))
		for _, x := range v {
			b = le.AppendUint16(b, x)
		}
		return b, len(v), nil
	case []float64:
		if dt != Double {
			return wrong()
		}
		b := make([]byte, 0, 8*len(v))
		for _, x := range v {
			b = le.AppendUint64(b, math.Float64bits(x))
		}
		return b, len(v), nil
	case []int8:
		if dt != Int8 {
			return wrong()
		}
		b := make([]byte, len(v))
		for i, x := range v {
			b[i] = byte(x)
		}
		return b, len(v), nil
	case []uint8:
		if dt != Uint8 {
			return wrong()
		}
		return append([]byte(nil), v...), len(v), nil
	case []bool:
		if dt != Bool {
			return wrong()
		}
		b := make([]byte, len(v))
		for i, x := range v {
			if x {
				b[i] = 1
			}
		}
		return b, len(v), nil
	case []int16:
		if dt != Int16 {
			return wrong()
		}
		b := make([]byte, 0, 2*len(v))
		for _, x := range v {
			b = le.AppendUint16(b, uint16(x))
		}
		return b, len(v), nil
	case []int32:
		if dt != Int32 {
			return wrong()
		}
		b := make([]byte, 0, 4*len(v))
		for _, x := range v {
			b = le.AppendUint32(b, uint32(x))
		}
		return b, len(v), nil
	case []uint32:
		if dt != Uint32 {
			return wrong()
		}
		b := make([]byte, 0, 4*len(v))
		for _, x := range v {
			b = le.AppendUint32(b, x)
		}
		return b, len(v), nil
	case []int64:
		if dt != Int64 {
			return wrong()
		}
		b := make([]byte, 0, 8*len(v))
		for _, x := range v {
			b = le.AppendUint64(b, uint64(x))
		}
		return b, len(v), nil
	case []uint64:
		if dt != Uint64 {
			return wrong()
		}
		b := make([]byte, 0, 8*len(v))
		for _, x := range v {
			b = le.AppendUint64(b, x)
		}
		return b, len(v), nil
	}
	return wrong()
}

// String describes t briefly, for logs and test failures.
func (t *Tensor) String() string {
	return fmt.Sprintf("%s %s%v", t.Name, t.DataType, t.Dims)
}
