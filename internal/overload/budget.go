package overload

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

var (
	// ErrExhausted: the budget stayed in use by other requests for as long
	// as a request may wait. Try again later (503 with Retry-After).
	ErrExhausted = errors.New("memory budget exhausted")
	// ErrTooLarge: the charge is more than the whole budget; it would never
	// fit (413).
	ErrTooLarge = errors.New("charge larger than the whole memory budget")
)

// Budget is a budget of bytes in flight, shared by every request of the
// process. A nil *Budget is no budget: every charge is granted.
type Budget struct {
	size     int64
	wait     time.Duration
	sem      *semaphore.Weighted
	inflight atomic.Int64
	shed     atomic.Int64
}

// New makes a budget of size bytes, on which a charge waits at most wait
// for room. size <= 0 makes none (nil).
func New(size int64, wait time.Duration) *Budget {
	if size <= 0 {
		return nil
	}
	return &Budget{size: size, wait: wait, sem: semaphore.NewWeighted(size)}
}

// Acquire charges n bytes, waiting at most the budget's wait (or until ctx
// ends, if sooner) for other charges to be released. It fails with
// ErrTooLarge when n is more than the whole budget, and with ErrExhausted
// when no room came in time; both count as shed. A granted charge must be
// given back with Release(n).
func (b *Budget) Acquire(ctx context.Context, n int64) error {
	if b == nil || n <= 0 {
		return nil
	}
	if n > b.size {
		b.shed.Add(1)
		return ErrTooLarge
	}
	if !b.sem.TryAcquire(n) { // the common case takes no timer
		wctx, cancel := context.WithTimeout(ctx, b.wait)
		err := b.sem.Acquire(wctx, n)
		cancel()
		if err != nil {
			b.shed.Add(1)
			return ErrExhausted
		}
	}
	b.inflight.Add(n)
	return nil
}

// Release gives back a charge of n bytes that Acquire granted.
func (b *Budget) Release(n int64) {
	if b == nil || n <= 0 {
		return
	}
	b.inflight.Add(-n)
	b.sem.Release(n)
}

// Size is the budget in bytes (0 for none).
func (b *Budget) Size() int64 {
	if b == nil {
		return 0
	}
	return b.size
}

// InFlight is the bytes charged now.
func (b *Budget) InFlight() int64 {
	if b == nil {
		return 0
	}
	return b.inflight.Load()
}

// Shed is how many charges were refused so far.
func (b *Budget) Shed() int64 {
	if b == nil {
		return 0
	}
	return b.shed.Load()
}
