// Package router owns weir's routes: the JSON route configuration of
// PUT /v1/routes/{route}, parsed and validated once into an immutable *Route;
// the choice of a variant for a request (header match rules, sticky buckets,
// weighted random split) and of shadow mirroring; and the Store that keeps
// routes in the JetStream KV bucket "weir-routes" and serves them from an
// in-memory table swapped atomically.
//
// The variant name chosen here is the one the gateway must report in
// X-Weir-Variant and in monitor events, so per-variant (A/B) statistics are
// keyed by these names.
//
// Bucket layout and its guarantees are described at Route.Choose.
//
// router must not import the gateway, the model or plugin stores, the canary
// controller or the monitor: the gateway resolves "latest" versions and runs
// plugins; the router only names them.
package router
