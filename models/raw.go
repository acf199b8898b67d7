package models

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/weirhq/weir/internal/onnx"
)

// The raw tensor layout shared by the OIP binary extension on HTTP and by
// raw_input_contents / raw_output_contents on gRPC: elements in row-major
// order, little-endian, fixed-size types packed without padding (BOOL one
// byte, FP16 its two IEEE half-precision bytes), and BYTES as a 4-byte
// little-endian length followed by that many bytes, per element.

// ElementSize is the size in bytes of one element of dt in the raw layout,
// or 0 for BYTES, whose elements carry their own lengths.
func ElementSize(dt Datatype) int {
	switch dt {
	case Bool, Uint8, Int8:
		return 1
	case Uint16, Int16, FP16:
		return 2
	case Uint32, Int32, FP32:
		return 4
	case Uint64, Int64, FP64:
		return 8
	}
	return 0
}

// DecodeRaw reads n elements of dt from b, which must hold exactly those
// elements: a short or long buffer is an error that says how many bytes
// came and how many the shape needs, and no length in b is trusted before
// it is checked against what is left.
func DecodeRaw(dt Datatype, b []byte, n int) (any, error) {
	if n < 0 {
		return nil, fmt.Errorf("negative element count %d", n)
	}
	if dt == Bytes {
		return decodeRawBytes(b, n)
	}
	size := ElementSize(dt)
	if size == 0 {
		return nil, fmt.Errorf("unsupported datatype %s", dt)
	}
	if want := uint64(n) * uint64(size); uint64(len(b)) != want {
		return nil, fmt.Errorf("%d bytes of raw data, but %d %s elements need %d", len(b), n, dt, want)
	}
	le := binary.LittleEndian
	switch dt {
	case Bool:
		out := make([]bool, n)
		for i := range out {
			switch b[i] {
			case 0:
			case 1:
				out[i] = true
			default:
				return nil, fmt.Errorf("element %d: byte %d is not a boolean (0 or 1)", i, b[i])
			}
		}
		return out, nil
	case Uint8:
		return append([]uint8(nil), b...), nil
	case Int8:
		out := make([]int8, n)
		for i := range out {
			out[i] = int8(b[i])
		}
		return out, nil
	case Uint16:
		out := make([]uint16, n)
		for i := range out {
			out[i] = le.Uint16(b[2*i:])
		}
		return out, nil
	case Int16:
		out := make([]int16, n)
		for i := range out {
			out[i] = int16(le.Uint16(b[2*i:]))
		}
		return out, nil
	case FP16:
		out := make([]float32, n)
		for i := range out {
			out[i] = onnx.Float16ToFloat32(le.Uint16(b[2*i:]))
		}
		return out, nil
	case Uint32:
		out := make([]uint32, n)
		for i := range out {
			out[i] = le.Uint32(b[4*i:])
		}
		return out, nil
	case Int32:
		out := make([]int32, n)
		for i := range out {
			out[i] = int32(le.Uint32(b[4*i:]))
		}
		return out, nil
	case FP32:
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
		return out, nil
	case Uint64:
		out := make([]uint64, n)
		for i := range out {
			out[i] = le.Uint64(b[8*i:])
		}
		return out, nil
	case Int64:
		out := make([]int64, n)
		for i := range out {
			out[i] = int64(le.Uint64(b[8*i:]))
		}
		return out, nil
	case FP64:
		out := make([]float64, n)
		for i := range out {
			out[i] = math.Float64frombits(le.Uint64(b[8*i:]))
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported datatype %s", dt)
}

func decodeRawBytes(b []byte, n int) ([]string, error) {
	// Every element takes at least its 4-byte length: a count the buffer
	// cannot hold is refused before anything is allocated for it.
	if uint64(n)*4 > uint64(len(b)) {
		return nil, fmt.Errorf("%d bytes of raw data cannot hold %d BYTES elements (each needs a 4-byte length)", len(b), n)
	}
	out := make([]string, n)
	off := 0
	for i := range out {
		if len(b)-off < 4 {
			return nil, fmt.Errorf("element %d: the raw data ends inside its 4-byte length (offset %d of %d bytes)", i, off, len(b))
		}
		l := uint64(binary.LittleEndian.Uint32(b[off:]))
		off += 4
		if l > uint64(len(b)-off) {
			return nil, fmt.Errorf("element %d: length %d runs past the end of the raw data (%d bytes left)", i, l, len(b)-off)
		}
		out[i] = string(b[off : off+int(l)])
		off += int(l)
	}
	if off != len(b) {
		return nil, fmt.Errorf("%d bytes left over after %d BYTES elements", len(b)-off, n)
	}
	return out, nil
}

// RawSize is the length of values (a typed slice holding datatype dt, as
// in TensorData) in the raw layout.
func RawSize(dt Datatype, values any) int {
	if s, ok := values.([]string); ok {
		n := 4 * len(s)
		for _, x := range s {
			n += len(x)
		}
		return n
	}
	return TensorData{Values: values}.Len() * ElementSize(dt)
}

// datatypeOfValues is the datatype a typed slice holds ([]float32 is FP32;
// FP16 data is []float32 too, see valuesMatch).
func datatypeOfValues(values any) Datatype {
	switch values.(type) {
	case []bool:
		return Bool
	case []uint8:
		return Uint8
	case []int8:
		return Int8
	case []uint16:
		return Uint16
	case []int16:
		return Int16
	case []uint32:
		return Uint32
	case []int32:
		return Int32
	case []float32:
		return FP32
	case []uint64:
		return Uint64
	case []int64:
		return Int64
	case []float64:
		return FP64
	case []string:
		return Bytes
	}
	return ""
}

// AppendRaw appends values (a typed slice holding datatype dt, FP16 as
// []float32) to b in the raw layout.
func AppendRaw(b []byte, dt Datatype, values any) ([]byte, error) {
	le := binary.LittleEndian
	switch v := values.(type) {
	case []bool:
		for _, x := range v {
			if x {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
		}
	case []uint8:
		b = append(b, v...)
	case []int8:
		for _, x := range v {
			b = append(b, byte(x))
		}
	case []uint16:
		for _, x := range v {
			b = le.AppendUint16(b, x)
		}
	case []int16:
		for _, x := range v {
			b = le.AppendUint16(b, uint16(x))
		}
	case []uint32:
		for _, x := range v {
			b = le.AppendUint32(b, x)
		}
	case []int32:
		for _, x := range v {
			b = le.AppendUint32(b, uint32(x))
		}
	case []float32:
		if dt == FP16 {
			for _, x := range v {
				b = le.AppendUint16(b, onnx.Float32ToFloat16(x))
			}
			break
		}
		for _, x := range v {
			b = le.AppendUint32(b, math.Float32bits(x))
		}
	case []uint64:
		for _, x := range v {
			b = le.AppendUint64(b, x)
		}
	case []int64:
		for _, x := range v {
			b = le.AppendUint64(b, uint64(x))
		}
	case []float64:
		for _, x := range v {
			b = le.AppendUint64(b, math.Float64bits(x))
		}
	case []string:
		for _, x := range v {
			if uint64(len(x)) > math.MaxUint32 {
				return nil, fmt.Errorf("a BYTES element of %d bytes is too long for the raw layout", len(x))
			}
			b = le.AppendUint32(b, uint32(len(x)))
			b = append(b, x...)
		}
	default:
		return nil, fmt.Errorf("tensor data of unexpected type %T", values)
	}
	return b, nil
}

// valuesMatch reports whether a typed slice holds datatype dt (FP16 as
// []float32).
func valuesMatch(dt Datatype, values any) bool {
	switch values.(type) {
	case []float32:
		return dt == FP32 || dt == FP16
	case nil:
		return false
	}
	return datatypeOfValues(values) == dt
}

// ElementCount is the number of elements a shape claims, refusing negative
// dimensions and counts past MaxElements (the shape is untrusted input).
func ElementCount(shape []int64) (int, error) { return elementCount(shape) }
