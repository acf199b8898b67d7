// Package onnx reads and writes the subset of the ONNX protobuf format that
// weir needs, by hand with protowire: no generated code, no .proto compiler.
//
// It owns three things:
//   - DecodeTensor / EncodeTensor: TensorProto <-> typed Go slices (the
//     input_N.pb / output_N.pb files of ONNX's backend test data, and
//     initializers);
//   - ReadModel / ReadModelIO: a ModelProto's graph inputs, outputs and
//     metadata, without loading a runtime;
//   - Model / Graph: a builder that writes valid ModelProtos, plus ready-made
//     models (LogisticRegression, MLP, Identity, ...) for tests, benchmarks
//     and the demo.
//
// Field numbers are those of onnx/onnx.proto (see wire.go). A wrong number
// silently builds a broken model, so every builder test loads its output in
// real ONNX Runtime (ort_test.go).
//
// This package must not import ONNX Runtime (only its tests do), nor any
// other weir package but internal/weirerr: it is a codec, not a runtime.
package onnx
