// Conversion between typed Go slices and ONNX Runtime values: building input
// tensors (and rank-0 scalars) and reading outputs back.

package models

import (
	"fmt"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/weirerr"
)

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
