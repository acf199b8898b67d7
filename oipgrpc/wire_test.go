package oipgrpc

import (
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/weirhq/weir/oipgrpc/inferencepb"
)

// held is a lower bound of what a decoded message holds in memory: its
// struct, what its fields point to, and its unknown fields.
func held(m protoreflect.Message) int {
	n := int(reflect.TypeOf(m.Interface()).Elem().Size()) + len(m.GetUnknown())
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				n += heldValue(fd, l.Get(i))
			}
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				n += len(k.String()) + 16 + heldValue(fd.MapValue(), mv)
				return true
			})
		default:
			n += heldValue(fd, v)
		}
		return true
	})
	return n
}

func heldValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) int {
	switch fd.Kind() {
	case protoreflect.MessageKind:
		return 8 + held(v.Message())
	case protoreflect.StringKind:
		return len(v.String())
	case protoreflect.BytesKind:
		return 24 + len(v.Bytes())
	case protoreflect.BoolKind:
		return 1
	case protoreflect.Int64Kind, protoreflect.Uint64Kind, protoreflect.DoubleKind,
		protoreflect.Sint64Kind, protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind:
		return 8
	}
	return 4
}

// FuzzInferWire feeds arbitrary bytes to the wire check and to what
// decodes a ModelInferRequest behind it: nothing may panic, and a message
// the check lets through never holds more, decoded, than inferCost said.
func FuzzInferWire(f *testing.F) {
	seeds := []*pb.ModelInferRequest{
		{ModelName: "m", Id: "1", Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 2},
			Contents: &pb.InferTensorContents{Fp32Contents: []float32{1, 2}}}}},
		{ModelName: "m", Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "INT8", Shape: []int64{3}}},
			RawInputContents: [][]byte{{1, 2, 3}}, Outputs: []*pb.ModelInferRequest_InferRequestedOutputTensor{{Name: "y"}}},
		{ModelName: "m", Parameters: map[string]*pb.InferParameter{"p": {ParameterChoice: &pb.InferParameter_StringParam{StringParam: "v"}}},
			Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "s", Datatype: "BYTES", Shape: []int64{2},
				Parameters: map[string]*pb.InferParameter{"q": {ParameterChoice: &pb.InferParameter_Int64Param{Int64Param: 7}}},
				Contents:   &pb.InferTensorContents{BytesContents: [][]byte{nil, []byte("ab")}}}}},
		{ModelName: "m", Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "i", Datatype: "UINT16", Shape: []int64{2},
			Contents: &pb.InferTensorContents{UintContents: []uint32{1, 65535}, Int64Contents: []int64{-1}, BoolContents: []bool{true}, Fp64Contents: []float64{1}}}}},
	}
	for _, s := range seeds {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x2a, 0x00, 0x2a, 0x00, 0x32, 0x00, 0x22, 0x00, 0x3a, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		cost, err := inferCost(b)
		if err != nil {
			return
		}
		r, err := decodeInfer(b)
		if err != nil {
			return
		}
		if h := held(r.ProtoReflect()); h > cost {
			t.Errorf("decoded, the message holds %d bytes; inferCost said %d", h, cost)
		}
		_, _ = decodeRequest(r)
	})
}
