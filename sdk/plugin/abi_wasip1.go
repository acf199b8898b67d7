//go:build wasip1

package plugin

import "unsafe"

// Host imports (module "weir"), see docs/plugin-abi.md.

//go:wasmimport weir log
func weirLog(level int32, ptr unsafe.Pointer, n int32)

//go:wasmimport weir config
func weirConfig(buf unsafe.Pointer, capacity int32) int32

//go:wasmimport weir features
func weirFeatures(entity unsafe.Pointer, entityLen int32, buf unsafe.Pointer, capacity int32) int32

//go:wasmimport weir now_ns
func weirNowNs() int64

//go:wasmimport weir metric
func weirMetric(kind int32, name unsafe.Pointer, nameLen int32, value float64)

//go:wasmimport weir set_output
func weirSetOutput(ptr unsafe.Pointer, n int32)

//go:wasmimport weir set_error
func weirSetError(ptr unsafe.Pointer, n int32)

// inBuf is the region handed to the host by weir_alloc. The host may write
// later inputs into it without asking again, so it is never reused for
// anything else and only replaced by a larger one.
var inBuf []byte

//go:wasmexport weir_abi_version
func weirABIVersion() int32 { return ABIVersion }

//go:wasmexport weir_alloc
func weirAlloc(size int32) unsafe.Pointer {
	if size < 1 {
		size = 1
	}
	if int(size) > cap(inBuf) {
		inBuf = make([]byte, size)
	}
	return unsafe.Pointer(unsafe.SliceData(inBuf))
}

//go:wasmexport weir_idle
func weirIdle() { idle() }

//go:wasmexport weir_call
func weirCall(ptr unsafe.Pointer, n int32) int32 {
	in := unsafe.Slice((*byte)(ptr), n)
	out, err := invoke(in)
	if err != nil {
		msg := err.Error()
		weirSetError(unsafe.Pointer(unsafe.StringData(msg)), int32(len(msg)))
		return 1
	}
	weirSetOutput(unsafe.Pointer(unsafe.SliceData(out)), int32(len(out)))
	return 0
}

func hostLog(level Level, msg string) {
	weirLog(int32(level), unsafe.Pointer(unsafe.StringData(msg)), int32(len(msg)))
}

func hostConfig(buf []byte) int32 {
	return weirConfig(unsafe.Pointer(unsafe.SliceData(buf)), int32(len(buf)))
}

func hostFeatures(entity string, buf []byte) int32 {
	return weirFeatures(unsafe.Pointer(unsafe.StringData(entity)), int32(len(entity)),
		unsafe.Pointer(unsafe.SliceData(buf)), int32(len(buf)))
}

func hostNow() int64 { return weirNowNs() }

func hostMetric(kind int32, name string, v float64) {
	weirMetric(kind, unsafe.Pointer(unsafe.StringData(name)), int32(len(name)), v)
}
