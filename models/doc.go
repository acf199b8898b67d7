// Package models owns model versions: the ONNX Runtime environment and
// sessions, conversion between Open Inference Protocol JSON tensors and
// runtime tensors, validation of requests against a model's signature, and
// the registry of versions a gateway serves (kept in step with the shared
// store by applying internal/artifacts' changes as they are watched).
//
// models imports no other weir package but internal/weirerr,
// internal/artifacts, internal/onnx, internal/lifecycle, internal/retry and
// internal/jsonx (the strict JSON scanner its request decoder shares with
// the gateway's);
// it never imports gateway, router, monitor or plugins (internal/lint
// checks both). Decisions and their reasons: docs/rationale.md.
package models
