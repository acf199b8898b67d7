// Writing TensorData as JSON without reflection (see encode.go for the whole
// response).

package models

import (
	"fmt"
	"math"
	"strconv"
)

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
