package plugins

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weirhq/weir/internal/testpoll"
	"github.com/weirhq/weir/internal/weirerr"
)

// A call takes the instance returned last: its memory is the one most
// likely still in the CPU's caches.
func TestPoolServesTheWarmestInstance(t *testing.T) {
	h := newHost(t, Options{PoolSize: 3})
	load(t, h, "wat-echo", Limits{})
	pv := h.plugins[pluginKey{"wat-echo", "1"}]
	ins := growTo(t, pv, 3)
	for range 3 {
		takesLastReturned(t, pv, ins)
	}
}

// Instances a burst added close once they have stayed free for
// InstanceIdleTimeout, longest idle first, down to the one a version keeps;
// the pool grows again when calls ask.
func TestPoolShrinksToOneWhenIdle(t *testing.T) {
	h := newHost(t, Options{PoolSize: 3, InstanceIdleTimeout: 20 * time.Millisecond})
	load(t, h, "wat-echo", Limits{})
	pv := h.plugins[pluginKey{"wat-echo", "1"}]
	ins := growTo(t, pv, 3)
	shrinksToOne(t, pv)
	if n := testutil.ToFloat64(pv.m.instances); n != 1 {
		t.Errorf("weir_plugin_instances is %v, want 1", n)
	}
	takesLastReturned(t, pv, ins)
	growTo(t, pv, 3)
}

// An idle timeout too short to sweep by half of it still sweeps (a ticker
// of no interval would panic).
func TestPoolSweepsWithATinyIdleTimeout(t *testing.T) {
	h := newHost(t, Options{PoolSize: 2, InstanceIdleTimeout: time.Nanosecond})
	load(t, h, "wat-echo", Limits{})
	pv := h.plugins[pluginKey{"wat-echo", "1"}]
	growTo(t, pv, 2)
	shrinksToOne(t, pv)
}

// shrinksToOne waits for pv's idle instances to be swept down to one.
func shrinksToOne(t *testing.T, pv *pluginVersion) {
	t.Helper()
	testpoll.For(t, testpoll.MinWait, "the pool back to one instance", func() error {
		pv.mu.Lock()
		defer pv.mu.Unlock()
		if pv.live != 1 || pv.want != 1 || len(pv.free) != 1 {
			return fmt.Errorf("%d instances (%d wanted), %d free", pv.live, pv.want, len(pv.free))
		}
		return nil
	})
}

// A negative InstanceIdleTimeout keeps every instance a pool has grown.
func TestPoolKeepsIdleInstancesWhenTold(t *testing.T) {
	h := newHost(t, Options{PoolSize: 2, InstanceIdleTimeout: -1})
	load(t, h, "wat-echo", Limits{})
	pv := h.plugins[pluginKey{"wat-echo", "1"}]
	growTo(t, pv, 2)
	time.Sleep(50 * time.Millisecond)
	pv.mu.Lock()
	live := pv.live
	pv.mu.Unlock()
	if live != 2 {
		t.Fatalf("%d instances after a wait, want the 2 the pool grew to", live)
	}
}

// A call that gives up waiting leaves the queue, so the next instance
// returned is kept for later calls, not handed to it.
func TestGetThatGivesUpLeavesTheQueue(t *testing.T) {
	pv, in := takeTheOnlyEcho(t)
	_, waited, kind, err := pv.get(context.Background(), 5*time.Millisecond)
	if !waited || kind != failOverload || weirerr.KindOf(err) != weirerr.Overloaded {
		t.Fatalf("get with the only instance busy: waited %v, %v, %v", waited, kind, err)
	}
	pv.put(in, true)
	pv.mu.Lock()
	free, waiters := len(pv.free), len(pv.waiters)
	pv.mu.Unlock()
	if free != 1 || waiters != 0 {
		t.Fatalf("%d instances free and %d calls waiting, want 1 and 0", free, waiters)
	}
}

// A waiting call is handed the instance another call returns.
func TestPutHandsTheInstanceToAWaitingCall(t *testing.T) {
	pv, in := takeTheOnlyEcho(t)
	got := make(chan *instance)
	go func() {
		w, _, _, err := pv.get(context.Background(), testpoll.MinWait)
		if err != nil {
			t.Error(err)
		}
		got <- w
	}()
	testpoll.For(t, testpoll.MinWait, "the second call waiting", func() error {
		pv.mu.Lock()
		defer pv.mu.Unlock()
		if len(pv.waiters) != 1 {
			return fmt.Errorf("%d calls waiting", len(pv.waiters))
		}
		return nil
	})
	pv.put(in, true)
	w := <-got
	pv.put(w, true)
	if w != in {
		t.Fatal("the waiting call got another instance than the one returned")
	}
}

// takeTheOnlyEcho loads wat-echo in a pool of one and takes its instance.
func takeTheOnlyEcho(t *testing.T) (*pluginVersion, *instance) {
	t.Helper()
	h := newHost(t, Options{PoolSize: 1})
	load(t, h, "wat-echo", Limits{})
	pv := h.plugins[pluginKey{"wat-echo", "1"}]
	in, _, _, err := pv.get(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return pv, in
}

// growTo takes n instances of pv at once, the pool growing to n as the
// calls wait, and returns them to it in the order it returns them.
func growTo(t *testing.T, pv *pluginVersion, n int) []*instance {
	t.Helper()
	var ins []*instance
	for range n {
		in, _, _, err := pv.get(context.Background(), testpoll.MinWait)
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, in)
	}
	for _, in := range ins {
		pv.put(in, true)
	}
	return ins
}

// takesLastReturned takes a free instance of pv and gives it back,
// failing unless it is the last of ins.
func takesLastReturned(t *testing.T, pv *pluginVersion, ins []*instance) {
	t.Helper()
	in, waited, _, err := pv.get(context.Background(), 0)
	if err != nil || waited {
		t.Fatalf("get with an instance free: waited %v, %v", waited, err)
	}
	pv.put(in, true)
	if last := len(ins) - 1; in != ins[last] {
		t.Fatalf("got instance %d of %d, want %d, the one returned last", indexOf(ins, in), len(ins), last)
	}
}

func indexOf(ins []*instance, in *instance) int {
	for i, x := range ins {
		if x == in {
			return i
		}
	}
	return -1
}
