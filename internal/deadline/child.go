package deadline

import (
	"context"
	"sync"
	"time"
)

// Child is what context.WithDeadline(parent, d) gives, made only when
// something waits on it: Deadline, Err and Value answer from the parent
// and the clock, and the first Done derives the real child. Deriving one
// from a WithTimeout context arms that context's timer, and its own, so a
// call that usually answers at once (a plugin's feature read, served from
// the store's cache) pays two timers and a dozen allocations for nothing.
// end, like WithDeadline's cancel, ends it once the call has returned.
func Child(parent context.Context, d time.Time) (ctx context.Context, end func()) {
	c := &childCtx{parent: parent, deadline: d}
	return c, c.end
}

type childCtx struct {
	parent   context.Context
	deadline time.Time

	mu     sync.Mutex
	ctx    context.Context // made by the first Done before end
	cancel context.CancelFunc
	err    error // set by end when no ctx was made
}

func (c *childCtx) Deadline() (time.Time, bool) {
	if d, ok := c.parent.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

func (c *childCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx == nil {
		if c.err != nil {
			return closedChan
		}
		c.ctx, c.cancel = context.WithDeadline(c.parent, c.deadline)
	}
	return c.ctx.Done()
}

func (c *childCtx) Err() error {
	c.mu.Lock()
	ctx, err := c.ctx, c.err
	c.mu.Unlock()
	switch {
	case ctx != nil:
		return ctx.Err()
	case err != nil:
		return err
	}
	return c.errNow()
}

// errNow is why the context has ended, or nil, from the parent and the
// clock.
func (c *childCtx) errNow() error {
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

func (c *childCtx) Value(key any) any { return c.parent.Value(key) }

func (c *childCtx) String() string { return "deadline.Child(" + c.deadline.String() + ")" }

func (c *childCtx) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		c.cancel()
		return
	}
	if c.err = c.errNow(); c.err == nil {
		c.err = context.Canceled
	}
}

var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()
