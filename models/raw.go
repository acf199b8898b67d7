package models

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"unsafe"

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
//
// The result may share b's memory (see rawView): b must not change while
// the result is in use, and a caller that keeps the result past the life
// of b's buffer copies it (InferRequest.Detach does).
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
	switch dt {
	case Bool:
		for i, c := range b {
			if c > 1 {
				return nil, fmt.Errorf("element %d: byte %d is not a boolean (0 or 1)", i, c)
			}
		}
		return rawView[bool](b, n), nil
	case Uint8:
		return rawView[uint8](b, n), nil
	case Int8:
		return rawView[int8](b, n), nil
	case Uint16:
		return rawView[uint16](b, n), nil
	case Int16:
		return rawView[int16](b, n), nil
	case FP16:
		out := make([]float32, n)
		for i := range out {
			out[i] = onnx.Float16ToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
		}
		return out, nil
	case Uint32:
		return rawView[uint32](b, n), nil
	case Int32:
		return rawView[int32](b, n), nil
	case FP32:
		return rawView[float32](b, n), nil
	case Uint64:
		return rawView[uint64](b, n), nil
	case Int64:
		return rawView[int64](b, n), nil
	case FP64:
		return rawView[float64](b, n), nil
	}
	return nil, fmt.Errorf("unsupported datatype %s", dt)
}

// fixed is an element type whose raw layout is its little-endian memory
// (a Go bool is one byte, 0 or 1, as in the raw layout).
type fixed interface {
	bool | int8 | uint8 | int16 | uint16 | int32 | uint32 | float32 | int64 | uint64 | float64
}

// littleEndian is whether this machine's memory is in the raw layout's
// byte order, so that raw bytes can be used as typed elements as they are.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// rawView is the n elements of T in b (len(b) is n times T's size, and a
// bool byte is 0 or 1): b's own memory when the machine is little-endian
// and b's address is aligned for T, so that a raw tensor reaches the
// runtime without a copy; else one copy. Only the view is made here: it is
// valid as long as b is.
func rawView[T fixed](b []byte, n int) []T {
	if n == 0 {
		return []T{}
	}
	var zero T
	p := unsafe.Pointer(unsafe.SliceData(b))
	if littleEndian && uintptr(p)%unsafe.Alignof(zero) == 0 {
		return unsafe.Slice((*T)(p), n)
	}
	out := make([]T, n)
	copy(asBytes(out), b)
	if !littleEndian {
		swapEach(asBytes(out), int(unsafe.Sizeof(zero)))
	}
	return out
}

// asBytes is the memory of s as bytes, without a copy.
func asBytes[T fixed](s []T) []byte {
	var zero T
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(zero)))
}

// swapEach reverses the bytes of each size-byte element of b: the raw
// layout on a big-endian machine.
func swapEach(b []byte, size int) {
	if size == 1 {
		return
	}
	for i := 0; i+size <= len(b); i += size {
		slices.Reverse(b[i : i+size])
	}
}

// cloneValues copies a typed slice (see TensorData); nil stays nil.
func cloneValues(values any) any {
	switch v := values.(type) {
	case []bool:
		return slices.Clone(v)
	case []uint8:
		return slices.Clone(v)
	case []int8:
		return slices.Clone(v)
	case []uint16:
		return slices.Clone(v)
	case []int16:
		return slices.Clone(v)
	case []uint32:
		return slices.Clone(v)
	case []int32:
		return slices.Clone(v)
	case []float32:
		return slices.Clone(v)
	case []uint64:
		return slices.Clone(v)
	case []int64:
		return slices.Clone(v)
	case []float64:
		return slices.Clone(v)
	case []string:
		return slices.Clone(v)
	}
	return values
}

// RawBytes is values (a typed slice holding datatype dt) in the raw layout
// without a copy, when its memory already is that layout (fixed-size
// types but FP16, on a little-endian machine): a response can then carry
// the runtime's output as it is. ok is false otherwise (use AppendRaw).
// The bytes share values' memory.
func RawBytes(dt Datatype, values any) (b []byte, ok bool) {
	if !littleEndian || dt == FP16 || !valuesMatch(dt, values) {
		return nil, false
	}
	return fixedBytes(values)
}

// fixedBytes is the memory of a fixed-size typed slice as bytes.
func fixedBytes(values any) ([]byte, bool) {
	switch v := values.(type) {
	case []bool:
		return asBytes(v), true
	case []uint8:
		return v, true
	case []int8:
		return asBytes(v), true
	case []uint16:
		return asBytes(v), true
	case []int16:
		return asBytes(v), true
	case []uint32:
		return asBytes(v), true
	case []int32:
		return asBytes(v), true
	case []float32:
		return asBytes(v), true
	case []uint64:
		return asBytes(v), true
	case []int64:
		return asBytes(v), true
	case []float64:
		return asBytes(v), true
	}
	return nil, false
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
// []float32) to b in the raw layout: fixed-size types as one copy of their
// memory.
func AppendRaw(b []byte, dt Datatype, values any) ([]byte, error) {
	le := binary.LittleEndian
	switch v := values.(type) {
	case []float32:
		if dt == FP16 {
			for _, x := range v {
				b = le.AppendUint16(b, onnx.Float32ToFloat16(x))
			}
			return b, nil
		}
	case []string:
		for _, x := range v {
			if uint64(len(x)) > math.MaxUint32 {
				return nil, fmt.Errorf("a BYTES element of %d bytes is too long for the raw layout", len(x))
			}
			b = le.AppendUint32(b, uint32(len(x)))
			b = append(b, x...)
		}
		return b, nil
	}
	mem, ok := fixedBytes(values)
	if !ok {
		return nil, fmt.Errorf("tensor data of unexpected type %T", values)
	}
	start := len(b)
	b = append(b, mem...)
	if !littleEndian {
		swapEach(b[start:], ElementSize(datatypeOfValues(values)))
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
