// Package plugins runs weir's WebAssembly plugins: user code that turns one
// JSON object into another (feature enrichment before a model, decisions
// after it), sandboxed on wazero.
//
// It owns the host side of the plugin ABI (docs/plugin-abi.md): one wazero
// runtime with an on-disk compilation cache, one compiled module per sha256
// of the Wasm bytes, and per plugin version a pool of warm instances with
// memory and time limits. A call borrows an instance, copies the input in,
// runs weir_call, copies the output out and returns the instance, so the
// request path never instantiates a module and allocates nothing of its own
// beyond the returned bytes. Each module is instrumented before it is
// compiled (interrupt.go; the module walk in interrupt_module.go, its
// limits in interrupt_limits.go, the binary format in interrupt_binary.go)
// so that a call's deadline can stop the guest
// without wazero's costly close-on-context-done; Host.Close uses the same
// interrupt to stop the calls in flight, and leaves the runtime open rather
// than free compiled code under a call that has not returned. Design notes are in
// docs/plugin-abi.md ("Host implementation notes"). The Host's compilation
// is host_compile.go, loading host_load.go, the call path host_call.go.
//
// Registry (registry.go) keeps a Host in step with the plugin artifacts in
// NATS (internal/artifacts), as models.Registry does for models: a plugin
// pushed to any replica loads on every replica, with the limits stored for
// its version. The package does not parse routes or know about models. It
// must not import other weir packages except internal/weirerr,
// internal/promx, internal/artifacts and internal/deadline: the feature
// store is reached through the FeatureReader interface declared here.
package plugins
