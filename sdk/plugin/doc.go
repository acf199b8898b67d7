// Package plugin is the guest SDK for weir plugins written in Go.
//
// A plugin is a Go main package built for WASI as a reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o enrich.wasm .
//
// It registers one function in init (main is never called in a reactor, but
// must exist):
//
//	func init() { plugin.Handle(enrich) }
//	func main() {}
//
//	func enrich(ev plugin.Event) (plugin.Event, error) {
//		ev["amount_log"] = math.Log1p(ev["amount"].(float64))
//		return ev, nil
//	}
//
// The package implements the weir plugin ABI version 1 (docs/plugin-abi.md):
// it exports weir_abi_version, weir_alloc and weir_call and wraps the host
// imports (Config, Features, Log, Now), so that plugin authors never see a
// pointer. JSON is decoded and encoded by a small reflection-free codec
// (DecodeObject, AppendJSON) because encoding/json is slow inside Wasm.
//
// Built for any other GOOS the package works as a local simulator: Invoke
// runs the registered handler natively with a given config and feature set,
// so plugin logic can be unit tested with plain `go test`.
//
// The package imports only the standard library, and nothing from weir.
package plugin
