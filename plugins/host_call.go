// Calling a plugin: borrowing an instance of the loaded version, running
// weir_call under the call's limits and deadline, and returning the output.

package plugins

import (
	"context"
	"time"

	"github.com/weirhq/weir/internal/weirerr"
)

// Call runs name@version on input (a JSON object) with config (the route's
// JSON config for this plugin, or nil) under the plugin's limits, and returns
// the plugin's output, a JSON object the caller owns. Failures are
// weirerr errors naming the plugin: Upstream for a guest error, trap,
// deadline or memory limit; Overloaded when every instance stayed busy until
// the deadline; NotFound for a plugin that is not loaded.
func (h *Host) Call(ctx context.Context, name, version string, config, input []byte) ([]byte, error) {
	return h.CallWithLimits(ctx, name, version, config, input, Limits{})
}

// CallWithLimits is Call with per-call limits; zero fields take the plugin's.
// A lower memory limit stops the guest growing further; memory it already
// has stays. The request context's deadline, when earlier, also bounds the
// call.
func (h *Host) CallWithLimits(ctx context.Context, name, version string, config, input []byte, l Limits) ([]byte, error) {
	out, err := h.AppendCall(ctx, nil, name, version, config, input, l)
	return out, err
}

// AppendCall is CallWithLimits appending the output to dst, so a caller that
// reuses its buffers makes the whole call allocation-free on the host side.
func (h *Host) AppendCall(ctx context.Context, dst []byte, name, version string, config, input []byte, l Limits) ([]byte, error) {
	h.mu.RLock()
	pv := h.plugins[pluginKey{name, version}]
	h.mu.RUnlock()
	if pv == nil {
		return dst, weirerr.NotFoundf("plugin %s@%s is not loaded", name, version)
	}
	l = l.withDefaults(pv.limits)
	// The clock is read twice a call (here and at the end): a read costs
	// up to a few hundred ns on a virtual machine.
	start := h.mono()
	pv.m.calls.Inc()
	// Waiting for a free instance is the pool being busy, not the plugin
	// being slow: it has its own bound (MaxInstanceWait, or the request's
	// deadline), and the guest's deadline starts when it runs.
	now := start
	in, waited, kind, err := pv.get(ctx, MaxInstanceWait)
	if waited {
		now = h.mono()
	}
	pv.m.wait.Observe(time.Duration(now - start).Seconds())
	if err != nil {
		pv.m.failures[kind].Inc()
		return dst, err
	}
	timeout := l.Timeout
	if d, ok := ctx.Deadline(); ok {
		// The time left, from the monotonic readings of d (from
		// context.WithTimeout) and h.start: no clock read.
		if left := d.Sub(h.start) - time.Duration(now); left < timeout {
			// The request ends first: report its deadline, rounded to be
			// readable, but stop the guest exactly at it.
			timeout = left
			l.Timeout = max(timeout, 0).Round(time.Millisecond)
		}
	}
	var out []byte
	keep := false
	if timeout <= 0 {
		kind, err, keep = failDeadline, pv.errorf("the request's deadline passed waiting for an instance"), true
	} else {
		out, kind, err, keep = in.run(ctx, config, input, now, timeout, l.Timeout, l.MemoryPages)
	}
	if err == nil {
		dst = append(dst, out...)
	} else {
		pv.m.failures[kind].Inc()
	}
	pv.m.duration.Observe(time.Duration(h.mono() - start).Seconds())
	if in.calls++; keep && in.fnIdle != nil && in.calls >= idleEvery && pv.mayIdle() {
		in.calls = 0
		go pv.idleThenPut(in)
	} else {
		pv.put(in, keep)
	}
	return dst, err
}

// mono is the monotonic time since the host started, in ns: one clock
// read, where time.Now reads two clocks.
func (h *Host) mono() int64 { return int64(time.Since(h.start)) }
