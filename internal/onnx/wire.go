package onnx

import (
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers from onnx/onnx.proto (checked against the upstream file and
// against models that real ONNX Runtime loads; see ort_test.go).
const (
	// ModelProto
	modelIRVersion     protowire.Number = 1
	modelProducerName  protowire.Number = 2
	modelProducerVer   protowire.Number = 3
	modelDomain        protowire.Number = 4
	modelModelVersion  protowire.Number = 5
	modelDocString     protowire.Number = 6
	modelGraph         protowire.Number = 7
	modelOpsetImport   protowire.Number = 8
	modelMetadataProps protowire.Number = 14

	// StringStringEntryProto
	entryKey   protowire.Number = 1
	entryValue protowire.Number = 2

	// OperatorSetIdProto
	opsetDomain  protowire.Number = 1
	opsetVersion protowire.Number = 2

	// GraphProto
	graphNode        protowire.Number = 1
	graphName        protowire.Number = 2
	graphInitializer protowire.Number = 5
	graphDocString   protowire.Number = 10
	graphInput       protowire.Number = 11
	graphOutput      protowire.Number = 12
	graphValueInfo   protowire.Number = 13

	// NodeProto
	nodeInput     protowire.Number = 1
	nodeOutput    protowire.Number = 2
	nodeName      protowire.Number = 3
	nodeOpType    protowire.Number = 4
	nodeAttribute protowire.Number = 5
	nodeDocString protowire.Number = 6
	nodeDomain    protowire.Number = 7

	// AttributeProto
	attrName    protowire.Number = 1
	attrF       protowire.Number = 2
	attrI       protowire.Number = 3
	attrS       protowire.Number = 4
	attrT       protowire.Number = 5
	attrFloats  protowire.Number = 7
	attrInts    protowire.Number = 8
	attrStrings protowire.Number = 9
	attrType    protowire.Number = 20

	// TensorProto
	tensorDims         protowire.Number = 1
	tensorDataType     protowire.Number = 2
	tensorSegment      protowire.Number = 3
	tensorFloatData    protowire.Number = 4
	tensorInt32Data    protowire.Number = 5
	tensorStringData   protowire.Number = 6
	tensorInt64Data    protowire.Number = 7
	tensorName         protowire.Number = 8
	tensorRawData      protowire.Number = 9
	tensorDoubleData   protowire.Number = 10
	tensorUint64Data   protowire.Number = 11
	tensorExternalData protowire.Number = 13
	tensorDataLocation protowire.Number = 14

	// ValueInfoProto
	valueInfoName protowire.Number = 1
	valueInfoType protowire.Number = 2

	// TypeProto (oneof value: tensor_type = 1; the others weir does not serve)
	typeTensorType protowire.Number = 1
	// TypeProto.Tensor
	tensorTypeElemType protowire.Number = 1
	tensorTypeShape    protowire.Number = 2
	// TensorShapeProto
	shapeDim protowire.Number = 1
	// TensorShapeProto.Dimension (oneof value)
	dimValue protowire.Number = 1
	dimParam protowire.Number = 2
)

// AttributeProto.AttributeType values.
const (
	attrTypeFloat   = 1
	attrTypeInt     = 2
	attrTypeString  = 3
	attrTypeTensor  = 4
	attrTypeFloats  = 6
	attrTypeInts    = 7
	attrTypeStrings = 8
)

// field is one decoded (tag, value) pair of a message. Exactly one of the
// value members is meaningful, chosen by typ.
type field struct {
	num   protowire.Number
	typ   protowire.Type
	u64   uint64 // varint, fixed32 or fixed64 payload
	bytes []byte // length-delimited payload (aliases the input)
}

// eachField calls fn for every field of message b, in wire order.
func eachField(b []byte, fn func(f field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.u64, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			f.u64 = uint64(v)
		case protowire.Fixed64Type:
			f.u64, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			f.bytes, n = protowire.ConsumeBytes(b)
		default: // groups: skip
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// Repeated scalars may arrive packed (one length-delimited run) or unpacked
// (one tag per element); proto2 writers such as onnx's Python emit the latter
// and parsers must accept both.

func appendVarints(dst []uint64, f field) ([]uint64, error) {
	switch f.typ {
	case protowire.VarintType:
		return append(dst, f.u64), nil
	case protowire.BytesType:
		b := f.bytes
		for len(b) > 0 {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return dst, fmt.Errorf("field %d: %w", f.num, protowire.ParseError(n))
			}
			dst = append(dst, v)
			b = b[n:]
		}
		return dst, nil
	}
	return dst, fmt.Errorf("field %d: wire type %d, want varint", f.num, f.typ)
}

func appendFixed32s(dst []uint32, f field) ([]uint32, error) {
	switch f.typ {
	case protowire.Fixed32Type:
		return append(dst, uint32(f.u64)), nil
	case protowire.BytesType:
		if len(f.bytes)%4 != 0 {
			return dst, fmt.Errorf("field %d: packed fixed32 of %d bytes", f.num, len(f.bytes))
		}
		for b := f.bytes; len(b) > 0; b = b[4:] {
			v, _ := protowire.ConsumeFixed32(b)
			dst = append(dst, v)
		}
		return dst, nil
	}
	return dst, fmt.Errorf("field %d: wire type %d, want fixed32", f.num, f.typ)
}

func appendFixed64s(dst []uint64, f field) ([]uint64, error) {
	switch f.typ {
	case protowire.Fixed64Type:
		return append(dst, f.u64), nil
	case protowire.BytesType:
		if len(f.bytes)%8 != 0 {
			return dst, fmt.Errorf("field %d: packed fixed64 of %d bytes", f.num, len(f.bytes))
		}
		for b := f.bytes; len(b) > 0; b = b[8:] {
			v, _ := protowire.ConsumeFixed64(b)
			dst = append(dst, v)
		}
		return dst, nil
	}
	return dst, fmt.Errorf("field %d: wire type %d, want fixed64", f.num, f.typ)
}

// Writers. Messages are built bottom-up: a sub-message is encoded into its
// own slice and appended as bytes. weir's models are small, so the copies do
// not matter.

func putString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func putBytes(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func putVarint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// putInt64 writes an int64/int32/enum field (two's complement varint).
func putInt64(b []byte, num protowire.Number, v int64) []byte {
	return putVarint(b, num, uint64(v))
}

func putFloat(b []byte, num protowire.Number, v float32) []byte {
	b = protowire.AppendTag(b, num, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, math.Float32bits(v))
}

func putPackedInt64s(b []byte, num protowire.Number, vs []int64) []byte {
	if len(vs) == 0 {
		return b
	}
	var p []byte
	for _, v := range vs {
		p = protowire.AppendVarint(p, uint64(v))
	}
	return putBytes(b, num, p)
}

func putPackedFloats(b []byte, num protowire.Number, vs []float32) []byte {
	if len(vs) == 0 {
		return b
	}
	p := make([]byte, 0, 4*len(vs))
	for _, v := range vs {
		p = protowire.AppendFixed32(p, math.Float32bits(v))
	}
	return putBytes(b, num, p)
}
