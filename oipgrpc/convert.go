package oipgrpc

import (
	"fmt"
	"math"

	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/models"
	pb "github.com/weirhq/weir/oipgrpc/inferencepb"
)

// decodeRequest turns a ModelInferRequest into weir's request, decoding
// each input's data from raw_input_contents (all inputs or none) or from
// its typed contents. Shapes and datatypes are checked against the model
// later, by the same code that checks HTTP requests.
func decodeRequest(r *pb.ModelInferRequest) (*models.InferRequest, error) {
	raw := r.RawInputContents
	if len(raw) > 0 && len(raw) != len(r.Inputs) {
		return nil, weirerr.Invalidf("raw_input_contents has %d entries for %d inputs: give one per input, in order, or none", len(raw), len(r.Inputs))
	}
	req := &models.InferRequest{ID: r.Id, Parameters: params(r.Parameters), Inputs: make([]models.InputTensor, len(r.Inputs))}
	for i, in := range r.Inputs {
		dt := models.Datatype(in.Datatype)
		t := models.InputTensor{Name: in.Name, Datatype: dt, Shape: in.Shape, Parameters: params(in.Parameters)}
		if t.Shape == nil {
			t.Shape = []int64{}
		}
		req.Inputs[i] = t
		if !dt.Valid() {
			continue // refused by name, with the model's datatype, when prepared
		}
		n, err := models.ElementCount(t.Shape)
		if err != nil {
			return nil, weirerr.Invalidf("input %q has shape %v: %w", in.Name, in.Shape, err)
		}
		if len(raw) > 0 {
			if in.Contents != nil && contentsLen(in.Contents) > 0 {
				return nil, weirerr.Invalidf("input %q has both contents and raw_input_contents: give one", in.Name)
			}
			vals, err := models.DecodeRaw(dt, raw[i], n)
			if err != nil {
				return nil, weirerr.Invalidf("input %q (%s, shape %v): raw_input_contents[%d]: %w", in.Name, dt, in.Shape, i, err)
			}
			req.Inputs[i].Values = vals
			continue
		}
		vals, err := typedValues(dt, in.Contents)
		if err != nil {
			return nil, weirerr.Invalidf("input %q (%s): %w", in.Name, dt, err)
		}
		req.Inputs[i].Values = vals
	}
	for _, o := range r.Outputs {
		req.Outputs = append(req.Outputs, models.RequestedOutput{Name: o.Name, Parameters: params(o.Parameters)})
	}
	return req, nil
}

func params(m map[string]*pb.InferParameter) map[string]any {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, p := range m {
		switch v := p.GetParameterChoice().(type) {
		case *pb.InferParameter_BoolParam:
			out[k] = v.BoolParam
		case *pb.InferParameter_Int64Param:
			out[k] = v.Int64Param
		case *pb.InferParameter_StringParam:
			out[k] = v.StringParam
		case *pb.InferParameter_DoubleParam:
			out[k] = v.DoubleParam
		case *pb.InferParameter_Uint64Param:
			out[k] = v.Uint64Param
		}
	}
	return out
}

func contentsLen(c *pb.InferTensorContents) int {
	return len(c.BoolContents) + len(c.IntContents) + len(c.Int64Contents) + len(c.UintContents) +
		len(c.Uint64Contents) + len(c.Fp32Contents) + len(c.Fp64Contents) + len(c.BytesContents)
}

// typedValues reads an input's typed contents into the slice type weir
// holds dt in; narrower integer types are range-checked. The element count
// is compared with the shape when the input is prepared.
func typedValues(dt models.Datatype, c *pb.InferTensorContents) (any, error) {
	if c == nil {
		c = &pb.InferTensorContents{}
	}
	if dt == models.FP16 {
		return nil, fmt.Errorf("FP16 has no typed contents field: send it in raw_input_contents")
	}
	if other := contentsLen(c) - fieldLen(dt, c); other > 0 {
		return nil, fmt.Errorf("%d values in a contents field other than %s", other, fieldName(dt))
	}
	switch dt {
	case models.Bool:
		return c.BoolContents, nil
	case models.Int8:
		return narrow[int32, int8](c.IntContents, math.MinInt8, math.MaxInt8)
	case models.Int16:
		return narrow[int32, int16](c.IntContents, math.MinInt16, math.MaxInt16)
	case models.Int32:
		return c.IntContents, nil
	case models.Int64:
		return c.Int64Contents, nil
	case models.Uint8:
		return narrow[uint32, uint8](c.UintContents, 0, math.MaxUint8)
	case models.Uint16:
		return narrow[uint32, uint16](c.UintContents, 0, math.MaxUint16)
	case models.Uint32:
		return c.UintContents, nil
	case models.Uint64:
		return c.Uint64Contents, nil
	case models.FP32:
		return c.Fp32Contents, nil
	case models.FP64:
		return c.Fp64Contents, nil
	case models.Bytes:
		out := make([]string, len(c.BytesContents))
		for i, b := range c.BytesContents {
			out[i] = string(b)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported datatype")
}

// fieldLen is the length of the contents field that holds dt.
func fieldLen(dt models.Datatype, c *pb.InferTensorContents) int {
	n := 0
	switch dt {
	case models.Bool:
		n = len(c.BoolContents)
	case models.Int8, models.Int16, models.Int32:
		n = len(c.IntContents)
	case models.Int64:
		n = len(c.Int64Contents)
	case models.Uint8, models.Uint16, models.Uint32:
		n = len(c.UintContents)
	case models.Uint64:
		n = len(c.Uint64Contents)
	case models.FP32:
		n = len(c.Fp32Contents)
	case models.FP64:
		n = len(c.Fp64Contents)
	case models.Bytes:
		n = len(c.BytesContents)
	}
	return n
}

func fieldName(dt models.Datatype) string {
	switch dt {
	case models.Bool:
		return "bool_contents"
	case models.Int8, models.Int16, models.Int32:
		return "int_contents"
	case models.Int64:
		return "int64_contents"
	case models.Uint8, models.Uint16, models.Uint32:
		return "uint_contents"
	case models.Uint64:
		return "uint64_contents"
	case models.FP32:
		return "fp32_contents"
	case models.FP64:
		return "fp64_contents"
	case models.Bytes:
		return "bytes_contents"
	}
	return "raw_input_contents"
}

func narrow[From int32 | uint32, To int8 | int16 | uint8 | uint16](v []From, lo, hi int64) (any, error) {
	out := make([]To, len(v))
	for i, x := range v {
		if int64(x) < lo || int64(x) > hi {
			return nil, fmt.Errorf("element %d: %d does not fit in the datatype", i, x)
		}
		out[i] = To(x)
	}
	return out, nil
}

// encodeResponse answers in raw_output_contents when the request came raw
// (as Triton's clients send it) or when an output has no typed field
// (FP16); otherwise in typed contents, which grpcurl users can read.
func encodeResponse(resp *models.InferResponse, raw bool) (*pb.ModelInferResponse, error) {
	for _, o := range resp.Outputs {
		if o.Datatype == models.FP16 {
			raw = true
		}
	}
	out := &pb.ModelInferResponse{ModelName: resp.ModelName, ModelVersion: resp.ModelVersion, Id: resp.ID,
		Outputs: make([]*pb.ModelInferResponse_InferOutputTensor, len(resp.Outputs))}
	for i, o := range resp.Outputs {
		t := &pb.ModelInferResponse_InferOutputTensor{Name: o.Name, Datatype: string(o.Datatype), Shape: o.Shape}
		out.Outputs[i] = t
		if raw {
			// The output's own memory when it is already the raw layout:
			// the message is marshalled from it, with no copy before.
			b, ok := models.RawBytes(o.Datatype, o.Data.Values)
			if !ok {
				var err error
				if b, err = models.AppendRaw(make([]byte, 0, models.RawSize(o.Datatype, o.Data.Values)), o.Datatype, o.Data.Values); err != nil {
					return nil, err
				}
			}
			out.RawOutputContents = append(out.RawOutputContents, b)
			continue
		}
		c, err := contents(o.Data.Values)
		if err != nil {
			return nil, err
		}
		t.Contents = c
	}
	return out, nil
}

func contents(values any) (*pb.InferTensorContents, error) {
	c := &pb.InferTensorContents{}
	switch v := values.(type) {
	case []bool:
		c.BoolContents = v
	case []int8:
		c.IntContents = widen[int8, int32](v)
	case []int16:
		c.IntContents = widen[int16, int32](v)
	case []int32:
		c.IntContents = v
	case []int64:
		c.Int64Contents = v
	case []uint8:
		c.UintContents = widen[uint8, uint32](v)
	case []uint16:
		c.UintContents = widen[uint16, uint32](v)
	case []uint32:
		c.UintContents = v
	case []uint64:
		c.Uint64Contents = v
	case []float32:
		c.Fp32Contents = v
	case []float64:
		c.Fp64Contents = v
	case []string:
		c.BytesContents = make([][]byte, len(v))
		for i, s := range v {
			c.BytesContents[i] = []byte(s)
		}
	default:
		return nil, fmt.Errorf("output data of type %T", values)
	}
	return c, nil
}

func widen[From int8 | int16 | uint8 | uint16, To int32 | uint32](v []From) []To {
	out := make([]To, len(v))
	for i, x := range v {
		out[i] = To(x)
	}
	return out
}
