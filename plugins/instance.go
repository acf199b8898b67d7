package plugins

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/weirhq/weir/internal/weirerr"
)

// instance is one instantiated plugin module with everything a call needs,
// allocated once so that the call path allocates nothing. An instance is used
// by one call at a time: the pool hands it out exclusively.
type instance struct {
	pv  *pluginVersion
	mod api.Module
	mem *linearMemory

	fnAlloc, fnCall api.Function
	fnIdle          api.Function // optional weir_idle, nil when not exported
	calls           uint64       // calls so far, for idleEvery
	freeSince       uint64       // the pool's sweeps when it was last put on free
	stack           []uint64     // CallWithStack's params and results

	// The input region the guest gave at weir_alloc, reused while inputs fit.
	inPtr, inCap uint32

	// Per-call state, read by host functions through the call's context.
	call   callCtx
	reqCtx context.Context // the request's context, for feature reads
	config []byte          // the route's config for this plugin (not owned)
	out    []byte          // copied at set_output, reused across calls
	errMsg []byte          // copied at set_error, reused across calls
	hasOut bool
	hasErr bool
	// outTooBig is the length of an output refused for being over
	// Options.MaxOutputBytes (0: none).
	outTooBig uint32
	feat      struct {
		valid  bool
		entity string
		status int32
		data   []byte
	}

	// Deadline machinery (see guard): the timer runs expire, which sets
	// the guest's interrupt global (see interrupt.go) once the running
	// entry's deadline has passed; the guest traps at its next loop
	// iteration or call. Once fired, the instance is discarded, so the
	// global is never reset.
	timer     *time.Timer
	interrupt api.MutableGlobal
	fired     atomic.Bool
	halted    atomic.Bool // interrupted by Host.Close (halt), not by a deadline
	dmu       sync.Mutex
	dl        int64 // the running entry's deadline (Host.mono); 0: none. Guarded by dmu
	armed     bool  // the timer is set to run expire at armedAt, or expire is about to run. Guarded by dmu
	armedAt   int64 // guarded by dmu
}

// callCtx is the context a guest call runs under. It is part of the
// instance, so a call allocates no context; host functions recover their
// instance from it. It is never done (the deadline is enforced by the
// interrupt global) and carries no values: wazero looks its own keys up, and
// the request's context travels separately in instance.reqCtx.
type callCtx struct {
	inst     *instance
	deadline time.Time // the running entry's deadline, set by guard
}

func (c *callCtx) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *callCtx) Done() <-chan struct{}       { return nil }
func (c *callCtx) Value(any) any               { return nil }
func (c *callCtx) Err() error                  { return nil }

// expire runs on the timer's goroutine. It interrupts the running entry
// once its deadline has passed, re-arms the timer when the entry started
// after the timer was set (for a deadline later than the one the timer
// was set for), and leaves it unarmed when no entry runs.
func (in *instance) expire() {
	in.dmu.Lock()
	defer in.dmu.Unlock()
	in.armed = false
	if in.dl == 0 {
		return
	}
	if now := in.pv.host.mono(); now < in.dl {
		in.armed, in.armedAt = true, in.dl
		in.timer.Reset(time.Duration(in.dl - now))
		return
	}
	in.fired.Store(true)
	in.interrupt.Set(1)
}

// halt interrupts whatever the instance runs now or runs next, for
// Host.Close: the interrupt global stays set, so the guest traps within
// fuelTicks checks, and the instance is discarded when its call returns.
func (in *instance) halt() {
	in.dmu.Lock()
	defer in.dmu.Unlock()
	in.halted.Store(true)
	in.fired.Store(true)
	in.interrupt.Set(1)
}

// linearMemory backs a guest's memory and enforces the plugin's memory limit
// per instance (wazero's own limit is per runtime). Growing past the limit
// fails memory.grow, which the guest sees as -1, and records that it
// happened so a failed call can be reported as a memory-limit error.
type linearMemory struct {
	buf     []byte
	limit   uint64 // bytes
	refused bool   // a grow past limit was refused since the last call began
}

func (m *linearMemory) Reallocate(size uint64) []byte {
	if size > m.limit {
		m.refused = true
		return nil
	}
	if size <= uint64(cap(m.buf)) {
		m.buf = m.buf[:size]
		return m.buf
	}
	// Grow geometrically (bounded by the limit) so a guest growing page by
	// page does not copy its memory on every grow.
	c := min(max(size, 2*uint64(cap(m.buf))), max(m.limit, size))
	nb := make([]byte, size, c)
	copy(nb, m.buf)
	m.buf = nb
	return m.buf
}

func (m *linearMemory) Free() { m.buf = nil }

const pageSize = 65536

// startTimeout bounds _initialize (unless the plugin's call timeout is
// longer): a Go or C runtime starts in milliseconds.
const startTimeout = time.Second

var instanceSeq atomic.Uint64

// newInstance instantiates the plugin and primes it: _initialize runs (via
// the start functions), and the exports are looked up once.
func (pv *pluginVersion) newInstance(ctx context.Context) (*instance, error) {
	h := pv.host
	in := &instance{
		pv:    pv,
		stack: make([]uint64, 2),
		mem:   &linearMemory{limit: uint64(pv.limits.MemoryPages) * pageSize},
	}
	in.call.inst = in
	ctx = experimental.WithMemoryAllocator(ctx, experimental.MemoryAllocatorFunc(
		func(capacity, maxBytes uint64) experimental.LinearMemory { return in.mem }))
	name := pv.label + "#" + strconv.FormatUint(instanceSeq.Add(1), 10)
	// Start functions are run below, under a deadline, rather than by
	// wazero, which would run them before the interrupt global is reachable.
	cfg := h.moduleConfig(name, pv.stdout, pv.stderr, in.sleep).WithStartFunctions()
	mod, err := h.rt.InstantiateModule(ctx, pv.comp.mod, cfg)
	if err != nil {
		return nil, fmt.Errorf("instantiating: %w", err)
	}
	in.mod = mod
	in.fnAlloc = mod.ExportedFunction(exportAlloc)
	in.fnCall = mod.ExportedFunction(exportCall)
	in.fnIdle = mod.ExportedFunction(exportIdle)
	g, ok := mod.ExportedGlobal(interruptExport).(api.MutableGlobal)
	if !ok {
		_ = mod.Close(ctx)
		return nil, errors.New("instrumented module lacks its interrupt global")
	}
	in.interrupt = g
	in.timer = time.AfterFunc(time.Hour, in.expire)
	in.timer.Stop()
	pv.track(in)
	// The module's start section (moved to an export by instrument) and
	// _initialize of a Go or C runtime take milliseconds; bound them
	// anyway so a guest that loops or sleeps at start cannot hang a load.
	limit := max(startTimeout, pv.limits.Timeout)
	for _, entry := range []struct{ export, what string }{{startExport, "the start section"}, {exportInit, exportInit}} {
		fn := mod.ExportedFunction(entry.export)
		if fn == nil {
			continue
		}
		if err := in.startGuard(limit, fn, entry.what); err != nil {
			in.close()
			return nil, err
		}
	}
	return in, nil
}

// startGuard runs a start entry (no parameters or results) under limit.
func (in *instance) startGuard(limit time.Duration, fn api.Function, what string) error {
	now := in.pv.host.mono()
	err := in.guard(now, now+int64(limit), fn)
	switch {
	case err == nil:
		return nil
	case in.fired.Load() || errors.Is(err, errExpiredAfterReturn):
		return fmt.Errorf("%s did not return within %s", what, limit)
	case in.mem.refused:
		return fmt.Errorf("%s: memory limit of %s exceeded: %w", what, pagesString(in.pv.limits.MemoryPages), err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// abiVersion calls weir_abi_version under the start deadline: a guest
// whose version function loops must not hang a load.
func (in *instance) abiVersion(context.Context) (int32, error) {
	limit := max(startTimeout, in.pv.limits.Timeout)
	now := in.pv.host.mono()
	if err := in.guard(now, now+int64(limit), in.mod.ExportedFunction(exportVersion)); err != nil {
		if in.fired.Load() || errors.Is(err, errExpiredAfterReturn) {
			return 0, fmt.Errorf("%s did not return within %s", exportVersion, limit)
		}
		return 0, err
	}
	return api.DecodeI32(in.stack[0]), nil
}

// sleep serves the guest's WASI clock waits (poll_oneoff) within the
// current deadline: a guest that asks to sleep past it sleeps until the
// deadline expires the instance, and then traps.
// Sleeping is on the guest's goroutine, which set call.deadline.
func (in *instance) sleep(ns int64) {
	left := time.Until(in.call.deadline)
	if time.Duration(ns) < left {
		guestSleep(ns, in.pv.host.closing)
		return
	}
	if left > 0 {
		guestSleep(int64(left), in.pv.host.closing)
	}
	// The deadline's timer (armed by guard for every guest entry) or
	// Host.Close (halt) expires the instance: wait for it rather than setting the interrupt global
	// from a second goroutine. Bounded, should no timer be armed.
	for wait := time.Now().Add(time.Second); !in.fired.Load() && time.Now().Before(wait); {
		time.Sleep(time.Millisecond)
	}
}

func (in *instance) close() {
	if in.timer != nil {
		in.timer.Stop()
		in.pv.untrack(in)
	}
	_ = in.mod.Close(context.Background())
}

// failure is how a call went wrong; it names the metric label and decides
// whether the instance may be reused.
type failure int

const (
	okCall failure = iota
	failGuest
	failBadOutput
	failDeadline
	failMemory
	failTrap
	failOverload
	failUnloaded
	failIdle // weir_idle, between calls, trapped or overran the deadline
	numFailures
)

var failureNames = [numFailures]string{"", "guest_error", "bad_output", "deadline", "memory", "trap", "overload", "unloaded", "idle"}

// run performs one call on the instance. It returns the guest's output (a
// view of in.out, valid until the instance's next call) or a failure kind and
// an error. keep reports whether the instance is still sound.
// now is the time (Host.mono) the call starts and timeout the time it
// has; limit is the deadline as configured, which is what an error reports.
func (in *instance) run(reqCtx context.Context, config, input []byte, now int64, timeout, limit time.Duration, memPages uint32) (out []byte, kind failure, err error, keep bool) {
	in.reqCtx, in.config = reqCtx, config
	in.hasOut, in.hasErr, in.feat.valid, in.outTooBig = false, false, false, 0
	in.mem.refused = false
	in.mem.limit = uint64(memPages) * pageSize
	defer func() { in.reqCtx, in.config = nil, nil }()

	// weir_alloc and weir_call share the call's deadline.
	dl := now + int64(timeout)
	if uint32(len(input)) > in.inCap || in.inPtr == 0 {
		in.stack[0] = uint64(uint32(len(input)))
		if err := in.guard(now, dl, in.fnAlloc); err != nil {
			return in.classify(err, limit)
		}
		ptr := api.DecodeU32(in.stack[0])
		if ptr == 0 {
			if in.mem.refused {
				return nil, failMemory, in.memoryLimitError(fmt.Sprintf("weir_alloc(%d) returned 0", len(input))), false
			}
			return nil, failMemory, in.pv.errorf("weir_alloc(%d) returned 0: out of memory", len(input)), false
		}
		in.inPtr, in.inCap = ptr, uint32(len(input))
	}
	if !in.mod.Memory().Write(in.inPtr, input) {
		return nil, failTrap, in.pv.errorf("weir_alloc returned %d bytes at %#x, outside the guest's memory", in.inCap, in.inPtr), false
	}

	in.stack[0], in.stack[1] = uint64(in.inPtr), uint64(uint32(len(input)))
	if err := in.guard(now, dl, in.fnCall); err != nil {
		return in.classify(err, limit)
	}
	if status := api.DecodeI32(in.stack[0]); status != 0 {
		msg := "no message"
		if in.hasErr {
			msg = string(in.errMsg)
		}
		if in.mem.refused {
			// The guest handled a refused memory.grow itself ("out of
			// memory"): say which limit it hit.
			return nil, failMemory, in.memoryLimitError(fmt.Sprintf("failed with status %d: %s", status, msg)), true
		}
		return nil, failGuest, in.pv.errorf("failed (status %d): %s", status, msg), true
	}
	if !in.hasOut {
		return nil, failBadOutput, in.pv.errorf("returned status 0 without calling set_output"), true
	}
	if in.outTooBig > 0 {
		return nil, failBadOutput, in.pv.errorf("set an output of %d bytes, over the host's limit of %d bytes", in.outTooBig, in.pv.host.opts.MaxOutputBytes), true
	}
	if !isObject(in.out) {
		return nil, failBadOutput, in.pv.errorf("returned output that is not a JSON object (starts %q)", prefix(in.out, 32)), true
	}
	return in.out, okCall, nil, true
}

// guard calls fn (from a time now) with the deadline dl armed (both
// Host.mono). The instance's own callCtx keeps wazero's termination check
// off the heap.
//
// The timer is not set and stopped around every entry: that costs two
// timer operations a call, hundreds of ns on a busy machine. Instead it
// stays set while the instance is used: an entry whose deadline is no
// earlier than the time the timer is set for leaves it alone, and when it
// runs (expire), it re-arms itself for the entry then running, interrupts
// that entry if its deadline has passed, or, between entries, stops. An
// instance in steady use sees one timer run per deadline's length, not
// two timer operations per call. dmu orders expire against an entry's
// start and end, so a deadline fires only while its entry runs.
func (in *instance) guard(now, dl int64, fn api.Function) error {
	in.call.deadline = in.pv.host.start.Add(time.Duration(dl))
	in.dmu.Lock()
	in.dl = dl
	if !in.armed || in.armedAt > dl {
		in.armed, in.armedAt = true, dl
		in.timer.Reset(time.Duration(dl - now))
	}
	in.dmu.Unlock()
	err := fn.CallWithStack(&in.call, in.stack)
	in.dmu.Lock()
	in.dl = 0
	fired := in.fired.Load()
	in.dmu.Unlock()
	if err == nil && fired {
		// The deadline fired just as the guest returned: the answer is good
		// but the interrupt flag is set, so the instance cannot be reused.
		return errExpiredAfterReturn
	}
	return err
}

var errExpiredAfterReturn = errors.New("deadline fired as the call returned")

func (in *instance) classify(err error, limit time.Duration) ([]byte, failure, error, bool) {
	switch {
	case in.halted.Load():
		return nil, failUnloaded, weirerr.Unavailablef("plugin %q: interrupted: the plugin host is shutting down", in.pv.label), false
	case errors.Is(err, errExpiredAfterReturn):
		return nil, failDeadline, in.pv.errorf("deadline of %s exceeded", limit), false
	case in.fired.Load():
		return nil, failDeadline, in.pv.errorf("deadline of %s exceeded", limit), false
	case in.mem.refused:
		return nil, failMemory, in.memoryLimitError(firstLine(err)), false
	default:
		return nil, failTrap, in.pv.errorf("trapped: %s", firstLine(err)), false
	}
}

// memoryLimitError reports a call that failed after a memory.grow was
// refused by the memory limit; detail is how the guest failed.
func (in *instance) memoryLimitError(detail string) error {
	return in.pv.errorf("memory limit of %s exceeded (%s)", pagesString(uint32(in.mem.limit/pageSize)), detail)
}

func pagesString(pages uint32) string {
	return strconv.FormatUint(uint64(pages), 10) + " pages (" + strconv.FormatUint(uint64(pages)*pageSize>>20, 10) + " MiB)"
}

func isObject(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return true
		default:
			return false
		}
	}
	return false
}

func prefix(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

// firstLine keeps wazero's error message without its stack trace.
func firstLine(err error) string {
	s := err.Error()
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}
