package onnx

import "fmt"

// DataType is the ONNX TensorProto.DataType enum.
type DataType int32

// The ONNX element types. The numbers are fixed by onnx.proto.
const (
	Undefined  DataType = 0
	Float      DataType = 1
	Uint8      DataType = 2
	Int8       DataType = 3
	Uint16     DataType = 4
	Int16      DataType = 5
	Int32      DataType = 6
	Int64      DataType = 7
	String     DataType = 8
	Bool       DataType = 9
	Float16    DataType = 10
	Double     DataType = 11
	Uint32     DataType = 12
	Uint64     DataType = 13
	Complex64  DataType = 14
	Complex128 DataType = 15
	BFloat16   DataType = 16
)

var dataTypeNames = map[DataType]string{
	Undefined: "UNDEFINED", Float: "FLOAT", Uint8: "UINT8", Int8: "INT8",
	Uint16: "UINT16", Int16: "INT16", Int32: "INT32", Int64: "INT64",
	String: "STRING", Bool: "BOOL", Float16: "FLOAT16", Double: "DOUBLE",
	Uint32: "UINT32", Uint64: "UINT64", Complex64: "COMPLEX64",
	Complex128: "COMPLEX128", BFloat16: "BFLOAT16",
}

// String returns the onnx.proto name of the type, e.g. "FLOAT".
func (d DataType) String() string {
	if s, ok := dataTypeNames[d]; ok {
		return s
	}
	return fmt.Sprintf("DataType(%d)", int32(d))
}

// oipNames maps ONNX types to Open Inference Protocol (KServe V2) datatypes.
var oipNames = map[DataType]string{
	Bool: "BOOL", Uint8: "UINT8", Uint16: "UINT16", Uint32: "UINT32",
	Uint64: "UINT64", Int8: "INT8", Int16: "INT16", Int32: "INT32",
	Int64: "INT64", Float16: "FP16", Float: "FP32", Double: "FP64",
	String: "BYTES",
}

// OIP returns the Open Inference Protocol datatype name ("FP32", "BYTES",
// ...) and false when the protocol has no name for d (BFLOAT16, complex).
func (d DataType) OIP() (string, bool) {
	s, ok := oipNames[d]
	return s, ok
}

// DataTypeFromOIP is the inverse of OIP: "FP32" -> Float.
func DataTypeFromOIP(name string) (DataType, bool) {
	for d, s := range oipNames {
		if s == name {
			return d, true
		}
	}
	return Undefined, false
}

// Size is the width in bytes of one element in raw_data, 0 for STRING and
// types this package does not decode.
func (d DataType) Size() int {
	switch d {
	case Uint8, Int8, Bool:
		return 1
	case Uint16, Int16, Float16, BFloat16:
		return 2
	case Float, Int32, Uint32:
		return 4
	case Int64, Uint64, Double:
		return 8
	}
	return 0
}
