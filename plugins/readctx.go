package plugins

import (
	"context"
	"sync"
	"time"
)

// readCtx is the context a features read gets: the request's, ending at
// the call's deadline too, since wazero stops a guest at its deadline only
// once the host function it is in returns. It behaves as
// context.WithDeadline(parent, deadline) would, made lazily: most reads
// are answered from the feature store's cache and never wait, and
// WithDeadline would arm two timers for them (its own, and the request's,
// which the gateway arms only when something waits) and allocate a dozen
// times. The derived context is made at the first Done; until then
// Deadline, Err and Value answer from the parent and the clock.
type readCtx struct {
	parent   context.Context
	deadline time.Time

	mu     sync.Mutex
	ctx    context.Context // made by the first Done before end
	cancel context.CancelFunc
	err    error // set by end when no ctx was made
}

func newReadCtx(parent context.Context, deadline time.Time) *readCtx {
	return &readCtx{parent: parent, deadline: deadline}
}

func (c *readCtx) Deadline() (time.Time, bool) {
	if d, ok := c.parent.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

func (c *readCtx) Done() <-chan struct{} {
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

func (c *readCtx) Err() error {
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
func (c *readCtx) errNow() error {
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

func (c *readCtx) Value(key any) any { return c.parent.Value(key) }

// end cancels the context once the read has returned, as a WithDeadline's
// cancel would: a reader that kept it sees it ended.
func (c *readCtx) end() {
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
