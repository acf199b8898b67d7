package deadline

import (
	"context"
	"sync"
	"time"
)

// WithTimeout is context.WithTimeout(parent, d) with a lazily armed timer.
// A parent that can be canceled gets context.WithTimeout itself: only a
// context that ends at its deadline or at cancel takes the short way.
func WithTimeout(parent context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if parent.Done() != nil {
		return context.WithTimeout(parent, d)
	}
	c := &timeoutCtx{Context: parent, deadline: time.Now().Add(d)}
	return c, c.cancel
}

// timeoutCtx ends at deadline or at cancel, whichever comes first. Until
// Done or AfterFunc is called it holds no timer and no channel.
type timeoutCtx struct {
	context.Context // the parent, for Value; it never ends
	deadline        time.Time

	mu    sync.Mutex
	err   error                // set when the context ends
	done  chan struct{}        // made by the first Done
	timer *time.Timer          // armed by the first Done or AfterFunc
	funcs map[*func()]struct{} // AfterFuncs still waiting
}

func (c *timeoutCtx) Deadline() (time.Time, bool) { return c.deadline, true }

// Err reports the end once the deadline has passed, as context's contexts
// do once their timer fires; this one reads the clock instead.
func (c *timeoutCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && !time.Now().Before(c.deadline) {
		c.endLocked(context.DeadlineExceeded)
	}
	return c.err
}

func (c *timeoutCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.err != nil {
			close(c.done)
		} else {
			c.armLocked()
		}
	}
	return c.done
}

// AfterFunc runs f in its own goroutine once the context ends, like
// context.AfterFunc. context.WithCancel and WithDeadline use it to tie a
// child to this context without a goroutine of their own.
func (c *timeoutCtx) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		go f()
		return func() bool { return false }
	}
	if c.funcs == nil {
		c.funcs = make(map[*func()]struct{})
	}
	key := &f
	c.funcs[key] = struct{}{}
	c.armLocked()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, waiting := c.funcs[key]
		delete(c.funcs, key)
		return waiting
	}
}

func (c *timeoutCtx) String() string { return "deadline.WithTimeout(" + c.deadline.String() + ")" }

// armLocked starts the timer that ends the context at its deadline.
func (c *timeoutCtx) armLocked() {
	if c.timer == nil {
		c.timer = time.AfterFunc(time.Until(c.deadline), func() { c.end(context.DeadlineExceeded) })
	}
}

func (c *timeoutCtx) cancel() { c.end(context.Canceled) }

func (c *timeoutCtx) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endLocked(err)
}

// endLocked ends the context with err unless it has ended already: it
// closes done, runs the AfterFuncs and stops the timer.
func (c *timeoutCtx) endLocked(err error) {
	if c.err != nil {
		return
	}
	c.err = err
	if c.done != nil {
		close(c.done)
	}
	for f := range c.funcs {
		go (*f)()
	}
	c.funcs = nil
	if c.timer != nil {
		c.timer.Stop()
	}
}
