package oipgrpc

import (
	"context"
	"reflect"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/models"
	pb "github.com/weirhq/weir/oipgrpc/inferencepb"
)

// A ModelInferRequest is checked on the wire before it is decoded.
// Protobuf gives every entry of a repeated message field its own struct,
// so an empty entry of inputs, two bytes on the wire, takes hundreds of
// bytes decoded (with weir's copy), and a one-byte varint of int64_contents
// takes eight. inferCost walks the wire format without decoding anything
// and adds up roughly what decoding (proto.Unmarshal, then decodeRequest)
// allocates; a message with more than maxTensors entries in inputs,
// outputs or raw_input_contents, or whose cost is over decodeRatio times
// its size plus decodeSlack, is refused before a struct is made.
const (
	maxTensors  = 4096
	decodeRatio = 16
	decodeSlack = 1 << 20
)

// Field numbers of inference.proto (the protocol's grpc_predict_v2.proto).
const (
	reqParameters = 4
	reqInputs     = 5
	reqOutputs    = 6
	reqRaw        = 7

	inShape      = 3
	inParameters = 4
	inContents   = 5

	outParameters = 2

	bytesContents = 8
)

func sizeOf[T any]() int { return int(reflect.TypeFor[T]().Size()) }

// Costs of one decoded entry, beyond the bytes it carries: the message
// struct, its pointer in the slice and weir's copy (decodeRequest); a map
// entry is counted at twice its key, value pointer and value with their
// share of the map's buckets, for protobuf's map and weir's.
var (
	requestCost  = sizeOf[pb.ModelInferRequest]() + sizeOf[models.InferRequest]()
	inputCost    = sizeOf[pb.ModelInferRequest_InferInputTensor]() + 8 + sizeOf[models.InputTensor]()
	outputCost   = sizeOf[pb.ModelInferRequest_InferRequestedOutputTensor]() + 8 + sizeOf[models.RequestedOutput]()
	contentsCost = sizeOf[pb.InferTensorContents]()
	paramCost    = 2 * (sizeOf[string]() + 8 + sizeOf[pb.InferParameter]() + sizeOf[pb.InferParameter_StringParam]() + 16)
	rawCost      = sizeOf[[]byte]()
	// A bytes_contents element is a []byte, then a string in weir's copy.
	bytesCost = sizeOf[[]byte]() + sizeOf[string]()
)

// elemCost is what one element of a typed contents field costs decoded,
// by field number: its Go value, and for INT8, INT16, UINT8 and UINT16
// (carried in 32-bit fields) weir's narrower copy.
var elemCost = [...]int{1: 1, 2: 4 + 2, 3: 8, 4: 4 + 2, 5: 8, 6: 4, 7: 8}

// elemType is the wire type of an unpacked element, by field number.
var elemType = [...]protowire.Type{1: protowire.VarintType, 2: protowire.VarintType, 3: protowire.VarintType,
	4: protowire.VarintType, 5: protowire.VarintType, 6: protowire.Fixed32Type, 7: protowire.Fixed64Type}

// checkInferWire refuses a ModelInferRequest whose decoding would cost
// more than its size allows (see maxTensors and decodeRatio).
func checkInferWire(b []byte) error {
	cost, err := inferCost(b)
	if err != nil {
		return err
	}
	if limit := decodeRatio*len(b) + decodeSlack; cost > limit {
		return weirerr.TooLargef("a ModelInferRequest of %d bytes would take about %d bytes decoded, over the gateway's limit of %d times the bytes received plus %d MiB: "+
			"send BYTES tensors of short elements in raw_input_contents, and each input, output and parameter once", len(b), cost, decodeRatio, decodeSlack>>20)
	}
	return nil
}

// inferCost is roughly what decoding the ModelInferRequest b allocates.
func inferCost(b []byte) (int, error) {
	cost, inputs, outputs, raws := requestCost, 0, 0, 0
	err := walk(b, func(num protowire.Number, typ protowire.Type, v []byte, n int) error {
		if typ != protowire.BytesType {
			cost += n // an unknown field, kept as it came
			return nil
		}
		switch num {
		case reqInputs:
			if inputs++; inputs > maxTensors {
				return weirerr.Invalidf("the request has more than %d inputs, the gateway's limit", maxTensors)
			}
			c, err := inputTensorCost(v)
			cost += inputCost + c
			return err
		case reqOutputs:
			if outputs++; outputs > maxTensors {
				return weirerr.Invalidf("the request has more than %d outputs, the gateway's limit", maxTensors)
			}
			c, err := fieldsCost(v, outParameters)
			cost += outputCost + c
			return err
		case reqRaw:
			if raws++; raws > maxTensors {
				return weirerr.Invalidf("the request has more than %d raw_input_contents, the gateway's limit", maxTensors)
			}
			// The copy protobuf makes, and the typed values decoded from
			// it: at most 4 times as large (BYTES elements of 4-byte
			// lengths and no data become 16-byte strings).
			cost += rawCost + 5*len(v)
		case reqParameters:
			cost += paramCost + 2*len(v)
		default:
			cost += n // model_name, model_version, id; unknown fields
		}
		return nil
	})
	return cost, err
}

// inputTensorCost is what an InferInputTensor's fields cost decoded.
func inputTensorCost(b []byte) (int, error) {
	cost := 0
	err := walk(b, func(num protowire.Number, typ protowire.Type, v []byte, n int) error {
		switch {
		case num == inShape && typ == protowire.BytesType:
			cost += 8 * varints(v)
		case num == inShape && typ == protowire.VarintType:
			cost += 8
		case num == inParameters && typ == protowire.BytesType:
			cost += paramCost + 2*len(v)
		case num == inContents && typ == protowire.BytesType:
			c, err := contentsFieldsCost(v)
			cost += contentsCost + c
			return err
		default:
			cost += n // name, datatype; unknown fields
		}
		return nil
	})
	return cost, err
}

// contentsFieldsCost is what an InferTensorContents' elements cost decoded.
func contentsFieldsCost(b []byte) (int, error) {
	cost := 0
	err := walk(b, func(num protowire.Number, typ protowire.Type, v []byte, n int) error {
		switch {
		case num == bytesContents && typ == protowire.BytesType:
			cost += bytesCost + 2*len(v)
		case num < protowire.Number(len(elemCost)) && elemCost[num] > 0 && typ == protowire.BytesType: // packed
			switch elemType[num] {
			case protowire.Fixed32Type:
				cost += elemCost[num] * (len(v) / 4)
			case protowire.Fixed64Type:
				cost += elemCost[num] * (len(v) / 8)
			default:
				cost += elemCost[num] * varints(v)
			}
		case num < protowire.Number(len(elemCost)) && elemCost[num] > 0 && typ == elemType[num]:
			cost += elemCost[num]
		default:
			cost += n // unknown fields
		}
		return nil
	})
	return cost, err
}

// fieldsCost is what a message's fields cost decoded, when only its map
// field params allocates beyond the bytes it carries.
func fieldsCost(b []byte, params protowire.Number) (int, error) {
	cost := 0
	err := walk(b, func(num protowire.Number, typ protowire.Type, v []byte, n int) error {
		if num == params && typ == protowire.BytesType {
			cost += paramCost + 2*len(v)
		} else {
			cost += n
		}
		return nil
	})
	return cost, err
}

// varints counts the varints in a packed field: each ends in a byte
// under 0x80 (as protobuf counts them to size the slice).
func varints(b []byte) int {
	n := 0
	for _, c := range b {
		if c < 0x80 {
			n++
		}
	}
	return n
}

// walk calls f with each field of the message b: its number, wire type,
// value (the contents of a length-delimited field) and length on the wire.
func walk(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, n int) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return weirerr.Invalidf("the message is not a valid ModelInferRequest: %w", protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return weirerr.Invalidf("the message is not a valid ModelInferRequest: field %d: %w", num, protowire.ParseError(m))
		}
		var v []byte
		if typ == protowire.BytesType {
			v, _ = protowire.ConsumeBytes(b[n:])
		}
		if err := f(num, typ, v, n+m); err != nil {
			return err
		}
		b = b[n+m:]
	}
	return nil
}

// decodeInfer checks a ModelInferRequest on the wire, then decodes it.
func decodeInfer(b []byte) (*pb.ModelInferRequest, error) {
	if err := checkInferWire(b); err != nil {
		return nil, err
	}
	r := &pb.ModelInferRequest{}
	if err := proto.Unmarshal(b, r); err != nil {
		return nil, weirerr.Invalidf("the message is not a valid ModelInferRequest: %w", err)
	}
	return r, nil
}

// codec is grpc's protobuf codec, except that it hands a wireMessage its
// bytes undecoded.
type codec struct{ encoding.CodecV2 }

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	if w, ok := v.(*wireMessage); ok {
		w.buf = data.MaterializeToBuffer(mem.DefaultBufferPool())
		return nil
	}
	return c.CodecV2.Unmarshal(data, v)
}

// wireMessage is a ModelInferRequest as received, until it is decoded.
type wireMessage struct{ buf mem.Buffer }

func (w *wireMessage) decode() (*pb.ModelInferRequest, error) {
	defer w.free()
	return decodeInfer(w.buf.ReadOnlyData())
}

func (w *wireMessage) free() {
	if w.buf != nil {
		w.buf.Free()
		w.buf = nil
	}
}

// serviceDesc is the generated service description with ModelInfer's
// handler replaced by modelInferHandler; the other methods, the service's
// name and its proto file are the generated ones.
func serviceDesc() *grpc.ServiceDesc {
	d := pb.GRPCInferenceService_ServiceDesc
	d.Methods = slices.Clone(d.Methods)
	for i := range d.Methods {
		if d.Methods[i].MethodName == "ModelInfer" {
			d.Methods[i].Handler = modelInferHandler
		}
	}
	return &d
}

// modelInferHandler is the generated handler of ModelInfer, except that
// the message is read as wireMessage and decoded inside the interceptors
// (so a panic there is recovered like one in the method), after
// checkInferWire.
func modelInferHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	var w wireMessage
	if err := dec(&w); err != nil {
		return nil, err
	}
	defer w.free()
	handler := func(ctx context.Context, _ any) (any, error) {
		r, err := w.decode()
		if err != nil {
			return nil, toStatus(err)
		}
		return srv.(pb.GRPCInferenceServiceServer).ModelInfer(ctx, r)
	}
	if interceptor == nil {
		return handler(ctx, &w)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: pb.GRPCInferenceService_ModelInfer_FullMethodName}
	return interceptor(ctx, &w, info, handler)
}
