// Package oipgrpc serves the Open Inference Protocol (KServe V2) over gRPC:
// the inference.GRPCInferenceService of inferencepb (declared in
// inferencepb/inference.proto, wire-compatible with the protocol's
// grpc_predict_v2.proto), with server reflection, so Triton's and KServe's
// clients, perf_analyzer and grpcurl work against weir unchanged.
//
// It owns only the translation between protobuf messages and weir's OIP
// types (models.InferRequest, models.InferResponse), bearer-token metadata
// (checked in the transport's tap, before a call's message is read, for
// every method but ServerLive and ServerReady), the check of a
// ModelInferRequest's wire shape before it is decoded (wire.go), and the
// mapping of weir's error kinds to gRPC status codes. Routing,
// validation, inference, events and limits are the gateway's, reached
// through the Backend interface, so HTTP and gRPC behave alike.
//
// oipgrpc imports models, internal/weirerr and inferencepb; never gateway.
package oipgrpc
