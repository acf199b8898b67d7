package plugins

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/weirhq/weir/internal/weirerr"
)

// pluginVersion is one loaded plugin version: its compiled module, its limits
// and its pool of instances. It owns the instances and the refill goroutine;
// close (from Unload or Host.Close) stops both, and the compiled module is
// released once the last in-flight call has returned its instance.
type pluginVersion struct {
	host          *Host
	name, version string
	label         string // name@version, as errors and logs name it
	comp          *compiled
	limits        Limits
	size          int // the most instances the pool may have

	mu sync.Mutex
	// free holds the idle instances, the one returned last at the end: a
	// call takes the instance that ran most recently, whose memory the
	// CPU's caches most likely still hold. Sequential traffic is then
	// served by one instance (and another while it runs weir_idle); had
	// the instances taken turns, all of their memories would compete for
	// the caches, which cost a Go plugin 3-6 µs a call with four.
	free []*instance
	// waiters are the calls that found no instance free, oldest first; put
	// hands an instance to the first. Each channel has capacity one.
	waiters []chan *instance
	// want is how many instances the pool keeps. It starts at one and
	// grows, up to size, when a call finds no instance free or an
	// instance due for weir_idle finds no other to serve meanwhile: a
	// version no route calls keeps one instance (a Go plugin's is
	// megabytes), a busy one as many as its concurrency asks for. It
	// shrinks back as instances stay free (sweep).
	want int
	// sweeps counts the idle sweeps so far; put stamps each instance it
	// frees with it, so that a sweep knows how long an instance has been
	// free without reading the clock on the call path.
	sweeps uint64
	live   int  // instances in existence: idle, in a call, or being created
	closed bool // unloaded: no new calls, instances close on return
	// instances are all the instantiated instances, idle or busy, so that
	// Host.Close can interrupt the busy ones (halt); once halted, an
	// instance made later is halted at once.
	instances map[*instance]struct{}
	halted    bool
	released  chan struct{}

	refill     chan struct{} // wakes the refiller; capacity 1
	stop       chan struct{} // closed by close
	refillDone chan struct{}

	stdout, stderr *guestWriter
	logs           *rateLimiter
	m              pluginMetrics
}

func (pv *pluginVersion) errorf(format string, args ...any) error {
	return weirerr.Upstreamf("plugin %q: %s", pv.label, fmt.Sprintf(format, args...))
}

// fill creates the instances the pool wants (one, at load time), so that the
// first request does not pay for instantiation.
func (pv *pluginVersion) fill(ctx context.Context) error {
	for pv.reserve() {
		in, err := pv.newInstance(ctx)
		if err != nil {
			pv.unreserve()
			return err
		}
		pv.put(in, true)
	}
	return nil
}

// reserve claims a slot for a new instance when the pool has fewer than it
// wants.
func (pv *pluginVersion) reserve() bool {
	pv.mu.Lock()
	defer pv.mu.Unlock()
	if pv.closed || pv.live >= pv.want {
		return false
	}
	pv.live++
	pv.m.instances.Inc()
	return true
}

func (pv *pluginVersion) unreserve() {
	pv.mu.Lock()
	pv.live--
	pv.m.instances.Dec()
	last := pv.closed && pv.live == 0
	pv.mu.Unlock()
	if last {
		pv.release()
	}
}

// get borrows an instance, waiting up to wait when all are busy. waited
// reports that it did not find one at once.
func (pv *pluginVersion) get(ctx context.Context, wait time.Duration) (_ *instance, waited bool, _ failure, _ error) {
	pv.mu.Lock()
	if n := len(pv.free); n > 0 {
		in := pv.free[n-1]
		pv.free[n-1] = nil
		pv.free = pv.free[:n-1]
		pv.mu.Unlock()
		return in, false, okCall, nil
	}
	// Slow path: every instance is busy (or being replaced). The pool
	// grows by one, and the call takes whichever instance is free first.
	var handoff chan *instance
	if wait > 0 {
		handoff = make(chan *instance, 1)
		pv.waiters = append(pv.waiters, handoff)
	}
	pv.mu.Unlock()
	pv.grow()
	if wait <= 0 {
		return nil, true, failOverload, weirerr.Overloadedf("plugin %q: all %d instances are busy", pv.label, pv.size)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	var kind failure
	var err error
	select {
	case in := <-handoff:
		return in, true, okCall, nil
	case <-pv.stop:
		kind, err = failUnloaded, weirerr.NotFoundf("plugin %q was unloaded", pv.label)
	case <-ctx.Done():
		kind, err = failOverload, weirerr.Overloadedf("plugin %q: all %d instances stayed busy until the request ended: %w", pv.label, pv.size, ctx.Err())
	case <-t.C:
		kind, err = failOverload, weirerr.Overloadedf("plugin %q: all %d instances stayed busy for %s", pv.label, pv.size, wait.Round(time.Microsecond))
	}
	// Leave the queue; a put that got there first has handed this call an
	// instance, which goes back.
	pv.mu.Lock()
	i := slices.Index(pv.waiters, handoff)
	if i >= 0 {
		pv.waiters = slices.Delete(pv.waiters, i, i+1)
	}
	pv.mu.Unlock()
	if i < 0 {
		pv.put(<-handoff, true)
	}
	return nil, true, kind, err
}

// put returns an instance to the pool, to the call waiting longest if any;
// a broken instance (keep false), or any instance once the plugin is
// unloaded, is closed instead, and the refiller is asked for a
// replacement.
func (pv *pluginVersion) put(in *instance, keep bool) {
	pv.mu.Lock()
	if keep && !pv.closed {
		if len(pv.waiters) > 0 {
			handoff := pv.waiters[0]
			pv.waiters = slices.Delete(pv.waiters, 0, 1)
			handoff <- in // never blocks: each waiter is handed one instance
		} else {
			in.freeSince = pv.sweeps
			pv.free = append(pv.free, in)
		}
		pv.mu.Unlock()
		return
	}
	pv.live--
	pv.m.instances.Dec()
	closed, last := pv.closed, pv.closed && pv.live == 0
	pv.mu.Unlock()
	in.close()
	if !closed {
		pv.wakeRefiller()
	}
	if last {
		pv.release()
	}
}

// mayIdle reports whether an instance due for weir_idle may run it now:
// while another instance is free to serve the next request. Under steady
// concurrent traffic the instances come to their idleEvery-th call
// together; were they all to run weir_idle then, the next request would
// wait for one. A due instance that may not idle stays due and tries again
// after its next call, and the pool grows by one so that another is free
// then. A pool of one has no other instance, and its instance idles when
// due.
func (pv *pluginVersion) mayIdle() bool {
	pv.mu.Lock()
	other := len(pv.free) > 0
	pv.mu.Unlock()
	if pv.size == 1 || other {
		return true
	}
	pv.grow()
	return false
}

// grow raises the number of instances the pool wants by one, up to its
// size, and wakes the refiller to create it.
func (pv *pluginVersion) grow() {
	pv.mu.Lock()
	grew := !pv.closed && pv.want < pv.size
	if grew {
		pv.want++
	}
	pv.mu.Unlock()
	if grew {
		pv.wakeRefiller()
	}
}

// wakeRefiller asks the refiller to create what the pool lacks.
func (pv *pluginVersion) wakeRefiller() {
	select {
	case pv.refill <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// idleThenPut runs the guest's weir_idle after a call has answered and then
// returns the instance to the pool: a Go guest collects its garbage here,
// while the request's response is on its way and other instances serve,
// instead of inside a later request's call. weir_idle runs under the
// plugin's deadline like any guest entry; an instance that overruns it or
// traps is replaced.
func (pv *pluginVersion) idleThenPut(in *instance) {
	now := pv.host.mono()
	err := in.guard(now, now+int64(pv.limits.Timeout), in.fnIdle)
	if err != nil {
		pv.m.failures[failIdle].Inc()
		if ok, _ := pv.logs.allow(); ok {
			pv.host.log.Warn("plugin instance failed between calls; replacing it", "plugin", pv.label, "export", exportIdle, "error", firstLine(err))
		}
	}
	pv.put(in, err == nil)
}

// sweepsPerIdleTimeout is how many sweeps run per InstanceIdleTimeout. An
// instance freed between two sweeps closes at the third sweep after it
// unless a call takes it first, so once it has been free for between the
// timeout and one and a half of it.
const sweepsPerIdleTimeout = 2

// sweep closes the instances that have stayed free for the idle timeout,
// longest free first (the bottom of the stack), keeping one, so that a
// pool grown by a burst gives its memory back once the burst has passed.
// The pool grows again as calls ask.
func (pv *pluginVersion) sweep() {
	pv.mu.Lock()
	pv.sweeps++
	n := 0
	for n < len(pv.free) && pv.want-n > 1 && pv.sweeps-pv.free[n].freeSince > sweepsPerIdleTimeout {
		n++
	}
	idle := slices.Clone(pv.free[:n])
	pv.free = slices.Delete(pv.free, 0, n)
	pv.want -= n
	pv.live -= n
	pv.m.instances.Sub(float64(n))
	pv.mu.Unlock()
	for _, in := range idle {
		in.close()
	}
}

// refiller creates the instances the pool wants in the background: those
// it grows by and those replacing discarded ones, so that the next request
// finds a warm one. It also sweeps idle instances away.
func (pv *pluginVersion) refiller() {
	defer close(pv.refillDone)
	var sweep <-chan time.Time
	if d := pv.host.opts.InstanceIdleTimeout; d > 0 {
		t := time.NewTicker(max(d/sweepsPerIdleTimeout, time.Millisecond))
		defer t.Stop()
		sweep = t.C
	}
	for {
		select {
		case <-pv.stop:
			return
		case <-sweep:
			pv.sweep()
			continue
		case <-pv.refill:
		}
		for pv.reserve() {
			in, err := pv.newInstance(context.Background())
			if err != nil {
				pv.unreserve()
				pv.host.log.Error("plugin instance could not be replaced", "plugin", pv.label, "error", err)
				// Back off instead of spinning on a plugin that cannot start.
				select {
				case <-pv.stop:
					return
				case <-time.After(time.Second):
				}
				continue
			}
			pv.put(in, true)
		}
	}
}

// close unloads the plugin version: no new calls, idle instances close now,
// busy ones when their call returns. It does not wait for them.
func (pv *pluginVersion) close() {
	pv.mu.Lock()
	if pv.closed {
		pv.mu.Unlock()
		return
	}
	pv.closed = true
	close(pv.stop)
	idle := pv.free
	pv.free = nil
	pv.live -= len(idle)
	pv.m.instances.Sub(float64(len(idle)))
	last := pv.live == 0
	pv.mu.Unlock()
	for _, in := range idle {
		in.close()
	}
	if last {
		pv.release()
	}
}

// track records a new instance for halt.
func (pv *pluginVersion) track(in *instance) {
	pv.mu.Lock()
	if pv.instances == nil {
		pv.instances = make(map[*instance]struct{})
	}
	pv.instances[in] = struct{}{}
	halted := pv.halted
	pv.mu.Unlock()
	if halted {
		in.halt()
	}
}

func (pv *pluginVersion) untrack(in *instance) {
	pv.mu.Lock()
	delete(pv.instances, in)
	pv.mu.Unlock()
}

// halt interrupts every instance of the version, for Host.Close: a guest
// running a call, weir_idle or a start function traps within microseconds
// (interrupt.go), and one that enters the guest later traps at once. A
// guest blocked in a host function (a features read) returns when the
// function does.
func (pv *pluginVersion) halt() {
	pv.mu.Lock()
	pv.halted = true
	all := make([]*instance, 0, len(pv.instances))
	for in := range pv.instances {
		all = append(all, in)
	}
	pv.mu.Unlock()
	for _, in := range all {
		in.halt()
	}
}

// release runs once, when the plugin is closed and its last instance is gone.
// It may run on the refiller's goroutine, so it must not wait for it.
func (pv *pluginVersion) release() {
	pv.host.released(pv)
	close(pv.released)
}

// guestLog writes a guest's log line, rate limited per plugin version.
func (pv *pluginVersion) guestLog(level slog.Level, source string, msg []byte) {
	ok, dropped := pv.logs.allow()
	if dropped > 0 {
		pv.host.log.Warn("plugin log lines dropped by the rate limit", "plugin", pv.label, "dropped", dropped)
	}
	if !ok {
		pv.m.logDropped.Inc()
		return
	}
	pv.host.log.Log(context.Background(), level, string(msg), "plugin", pv.label, "source", source)
}
