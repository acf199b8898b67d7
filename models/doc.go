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
//
// Files by concern: the Registry's write path is registry_push.go, its
// watch of the store registry_watch.go, its model file cache
// registry_cache.go, listing and Load/Unload registry_state.go; tensor
// data is parsed in tensor_parse.go, written in tensor_encode.go, pooled in
// tensor_pool.go and converted to runtime values in tensor_ort.go.
package models
