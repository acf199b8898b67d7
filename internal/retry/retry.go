package retry

import (
	"math/rand/v2"
	"time"
)

// Jitter returns a wait drawn at random in [d/2, 3d/2): the same pace on
// average as d, spread out.
func Jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d)
}

// Backoff is exponential back-off with jitter: the waits Next returns
// double from Base up to Max, each one jittered. The zero Backoff of a
// Base and Max starts at Base.
type Backoff struct {
	Base, Max time.Duration
	wait      time.Duration
}

// Next returns the wait before the next try.
func (b *Backoff) Next() time.Duration {
	if b.wait == 0 {
		b.wait = b.Base
	} else {
		b.wait = min(2*b.wait, b.Max)
	}
	return Jitter(b.wait)
}
