package models

import (
	ort "github.com/yalue/onnxruntime_go"
)

// Datatype is an Open Inference Protocol tensor datatype name (FP32, INT64,
// BYTES, ...).
type Datatype string

// The OIP datatypes ONNX Runtime can serve.
const (
	Bool   Datatype = "BOOL"
	Uint8  Datatype = "UINT8"
	Uint16 Datatype = "UINT16"
	Uint32 Datatype = "UINT32"
	Uint64 Datatype = "UINT64"
	Int8   Datatype = "INT8"
	Int16  Datatype = "INT16"
	Int32  Datatype = "INT32"
	Int64  Datatype = "INT64"
	FP16   Datatype = "FP16"
	FP32   Datatype = "FP32"
	FP64   Datatype = "FP64"
	Bytes  Datatype = "BYTES"
)

var ortToOIP = map[ort.TensorElementDataType]Datatype{
	ort.TensorElementDataTypeBool:    Bool,
	ort.TensorElementDataTypeUint8:   Uint8,
	ort.TensorElementDataTypeUint16:  Uint16,
	ort.TensorElementDataTypeUint32:  Uint32,
	ort.TensorElementDataTypeUint64:  Uint64,
	ort.TensorElementDataTypeInt8:    Int8,
	ort.TensorElementDataTypeInt16:   Int16,
	ort.TensorElementDataTypeInt32:   Int32,
	ort.TensorElementDataTypeInt64:   Int64,
	ort.TensorElementDataTypeFloat16: FP16,
	ort.TensorElementDataTypeFloat:   FP32,
	ort.TensorElementDataTypeDouble:  FP64,
	ort.TensorElementDataTypeString:  Bytes,
}

// datatypeOf maps a runtime element type to its OIP name; ok is false for
// types OIP has no name for (bfloat16, complex, float8, int4, ...).
func datatypeOf(t ort.TensorElementDataType) (Datatype, bool) {
	d, ok := ortToOIP[t]
	return d, ok
}

// Valid reports whether d is one of the OIP datatypes above.
func (d Datatype) Valid() bool {
	switch d {
	case Bool, Uint8, Uint16, Uint32, Uint64, Int8, Int16, Int32, Int64, FP16, FP32, FP64, Bytes:
		return true
	}
	return false
}
