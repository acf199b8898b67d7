package plugins

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"runtime"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/weirhq/weir/internal/deadline"
)

// ABI v1 names, see docs/plugin-abi.md.
const (
	abiVersion = 1

	hostModuleName = "weir"
	wasiModuleName = "wasi_snapshot_preview1"

	exportMemory  = "memory"
	exportVersion = "weir_abi_version"
	exportAlloc   = "weir_alloc"
	exportCall    = "weir_call"
	exportInit    = "_initialize"
	// exportIdle is optional: the host calls it after a call has answered
	// (every idleEvery calls), off the request path, so a garbage-collected
	// guest (the Go SDK) collects there rather than inside a later call.
	exportIdle = "weir_idle"
)

// idleEvery is how many calls of an instance pass between weir_idle calls:
// often enough that a guest checking its heap there sees it long before
// its runtime would collect inside a call, rarely enough that the check
// (reading Go's runtime metrics costs microseconds in Wasm) is noise.
const idleEvery = 16

// Results of the features import.
const (
	featuresNotFound = -1
	featuresFailed   = -2
)

// maxGuestMessage bounds a guest error or log message kept by the host.
const maxGuestMessage = 1024

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// requiredExports are the functions a plugin must export, with their types.
var requiredExports = []struct {
	name            string
	params, results []api.ValueType
}{
	{exportVersion, nil, []api.ValueType{i32}},
	{exportAlloc, []api.ValueType{i32}, []api.ValueType{i32}},
	{exportCall, []api.ValueType{i32, i32}, []api.ValueType{i32}},
}

// errGuestMemory is the panic a host function raises when the guest hands it
// a pointer outside its memory; wazero turns it into a failed call.
var errGuestMemory = errors.New("guest passed a pointer outside its memory")

// instantiateHostModule defines the "weir" import module on rt. Host
// functions find the calling instance through the call's context (a
// *callCtx), so one host module serves every plugin.
func (h *Host) instantiateHostModule(ctx context.Context) error {
	b := h.rt.NewHostModuleBuilder(hostModuleName)
	fn := func(name string, f api.GoModuleFunc, params, results []api.ValueType, paramNames ...string) {
		b.NewFunctionBuilder().WithGoModuleFunction(f, params, results).WithParameterNames(paramNames...).Export(name)
	}
	fn("log", h.hostLog, []api.ValueType{i32, i32, i32}, nil, "level", "ptr", "len")
	fn("config", h.hostConfig, []api.ValueType{i32, i32}, []api.ValueType{i32}, "buf", "cap")
	fn("features", h.hostFeatures, []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32},
		"entity_ptr", "entity_len", "buf", "cap")
	fn("now_ns", h.hostNow, nil, []api.ValueType{i64})
	fn("set_output", h.hostSetOutput, []api.ValueType{i32, i32}, nil, "ptr", "len")
	fn("set_error", h.hostSetError, []api.ValueType{i32, i32}, nil, "ptr", "len")
	fn("metric", h.hostMetric, []api.ValueType{i32, i32, i32, api.ValueTypeF64}, nil, "kind", "name_ptr", "name_len", "value")
	_, err := b.Instantiate(ctx)
	return err
}

// read returns a view of guest memory, or panics (trapping the guest) when the
// range is outside it.
func read(mod api.Module, ptr, n uint32) []byte {
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		panic(errGuestMemory)
	}
	return b
}

// instanceOf returns the instance a host function serves, or nil when it is
// called outside weir_call (from _initialize, say).
func instanceOf(ctx context.Context) *instance {
	if c, ok := ctx.(*callCtx); ok {
		return c.inst
	}
	return nil
}

func (h *Host) hostLog(ctx context.Context, mod api.Module, stack []uint64) {
	level, ptr, n := int32(stack[0]), uint32(stack[1]), uint32(stack[2])
	msg := read(mod, ptr, min(n, maxGuestMessage))
	var lvl slog.Level
	switch {
	case level <= 0:
		lvl = slog.LevelDebug
	case level == 1:
		lvl = slog.LevelInfo
	case level == 2:
		lvl = slog.LevelWarn
	default:
		lvl = slog.LevelError
	}
	if in := instanceOf(ctx); in != nil {
		in.pv.guestLog(lvl, "log", msg)
		return
	}
	h.log.Log(context.Background(), lvl, string(msg), "plugin", mod.Name(), "source", "log")
}

func (h *Host) hostConfig(ctx context.Context, mod api.Module, stack []uint64) {
	buf, capacity := uint32(stack[0]), uint32(stack[1])
	in := instanceOf(ctx)
	if in == nil {
		stack[0] = 0
		return
	}
	cfg := in.config
	if len(cfg) > 0 && uint32(len(cfg)) <= capacity {
		copy(read(mod, buf, uint32(len(cfg))), cfg)
	}
	stack[0] = uint64(uint32(len(cfg)))
}

func (h *Host) hostFeatures(ctx context.Context, mod api.Module, stack []uint64) {
	ePtr, eLen, buf, capacity := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3])
	in := instanceOf(ctx)
	if in == nil || in.reqCtx == nil || h.opts.Features == nil { // no store, or not in a call
		stack[0] = api.EncodeI32(featuresNotFound)
		return
	}
	entity := read(mod, ePtr, eLen)
	// A guest whose buffer was too small asks again for the same entity:
	// answer from the last lookup instead of reading the store twice.
	if !in.feat.valid || in.feat.entity != string(entity) {
		in.feat.entity = string(entity)
		// The read must end with the call: wazero stops the guest at its
		// deadline, but only once this host function returns. Most reads
		// are cache hits that never wait, so the deadline's context is
		// derived only if the reader waits (deadline.Child).
		rctx, end := deadline.Child(in.reqCtx, in.call.deadline)
		f, found, err := h.opts.Features.ReadFeatures(rctx, in.feat.entity)
		end()
		in.feat.valid = true
		switch {
		case err != nil:
			in.feat.status = featuresFailed
			in.pv.guestLog(slog.LevelWarn, "features", []byte("reading features of "+in.feat.entity+": "+err.Error()))
		case !found:
			in.feat.status = featuresNotFound
		default:
			in.feat.status = 0
			in.feat.data = append(in.feat.data[:0], f...)
		}
	}
	if in.feat.status != 0 {
		stack[0] = api.EncodeI32(in.feat.status)
		return
	}
	data := in.feat.data
	if uint32(len(data)) <= capacity {
		copy(read(mod, buf, uint32(len(data))), data)
	}
	stack[0] = uint64(uint32(len(data)))
}

func (h *Host) hostNow(_ context.Context, _ api.Module, stack []uint64) {
	stack[0] = uint64(time.Since(h.start))
}

func (h *Host) hostSetOutput(ctx context.Context, mod api.Module, stack []uint64) {
	ptr, n := uint32(stack[0]), uint32(stack[1])
	if in := instanceOf(ctx); in != nil {
		in.hasOut = true
		if uint64(n) > uint64(h.opts.MaxOutputBytes) {
			// Refused without copying; the call fails once the guest returns.
			in.out, in.outTooBig = in.out[:0], n
			return
		}
		in.out, in.outTooBig = append(in.out[:0], read(mod, ptr, n)...), 0
	}
}

func (h *Host) hostSetError(ctx context.Context, mod api.Module, stack []uint64) {
	ptr, n := uint32(stack[0]), uint32(stack[1])
	if in := instanceOf(ctx); in != nil {
		in.errMsg = append(in.errMsg[:0], read(mod, ptr, min(n, maxGuestMessage))...)
		in.hasErr = true
	}
}

// hostMetric counts (kind 0) or observes (kind 1) a named value, exported
// as weir_plugin_metric_total / weir_plugin_metric_value under the
// plugin's name and version (metrics.go bounds the names).
func (h *Host) hostMetric(ctx context.Context, mod api.Module, stack []uint64) {
	kind, ptr, n, v := api.DecodeI32(stack[0]), uint32(stack[1]), uint32(stack[2]), api.DecodeF64(stack[3])
	in := instanceOf(ctx)
	if in == nil {
		return
	}
	name := read(mod, ptr, min(n, maxGuestMetricName+1))
	in.pv.m.guest.record(kind, name, v)
}

// moduleConfig is the sandbox a plugin instance runs in: WASI is offered only
// so that Go and C runtimes start. No filesystem, no environment, no
// arguments; stdout and stderr go to the gateway log. sleep serves WASI
// clock waits (poll_oneoff), bounded by the instance's deadline. Random
// bytes (random_get) are real randomness: wazero's default source is
// deterministic, the same bytes in every instance.
func (h *Host) moduleConfig(name string, stdout, stderr *guestWriter, sleep func(ns int64)) wazero.ModuleConfig {
	return wazero.NewModuleConfig().
		WithName(name).
		WithStartFunctions(exportInit).
		WithStdout(stdout).
		WithStderr(stderr).
		WithSysNanotime().
		WithSysWalltime().
		WithNanosleep(sleep).
		WithRandSource(rand.Reader).
		WithOsyield(runtime.Gosched)
}

// shortSleep is the longest guest sleep that yields instead of sleeping.
const shortSleep = 500 * time.Microsecond

// guestSleep serves WASI poll_oneoff's clock waits. Guest runtimes sleep a
// few microseconds in their schedulers (Go's runqgrab does usleep(3) on
// wasm); a real time.Sleep takes tens of microseconds to a millisecond to
// wake, which made a Go plugin call 40x slower. Short sleeps yield instead:
// the guest re-checks its clock and sleeps again if it must. A plugin that
// sleeps long is bounded by its deadline (instance.sleep), and wakes when
// stop closes (Host.Close).
func guestSleep(ns int64, stop <-chan struct{}) {
	if ns <= int64(shortSleep) {
		runtime.Gosched()
		return
	}
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	select {
	case <-t.C:
	case <-stop:
	}
}
