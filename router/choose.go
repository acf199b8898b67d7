package router

import (
	"math/rand/v2"

	"github.com/weirhq/weir/internal/fnv1a"
)

// layout assigns the 100 sticky buckets to variants.
//
// Variants are laid out so that the two that a canary rollout moves weight
// between, the first variant (stable) and the last one (canary), are
// neighbours at the top of the bucket range, and every other variant sits
// below them:
//
//	[ variants[1] .. variants[n-2] | variants[0] | variants[n-1] ]
//	0                                                          100
//
// The last variant owns [100-w, 100) and the first variant the buckets just
// below it. Guarantees:
//   - Moving weight between the first and the last variant (stable 90/canary
//     10 -> 75/25 -> 50/50) moves only users of the shrinking one to the
//     growing one, never back, and every other variant keeps exactly its
//     users: raising the canary takes users from stable only.
//   - With two variants that is every possible weight change.
//
// Limits with three or more variants: changing the weight of a middle
// variant shifts the ranges of the middle variants after it and of the
// first variant, so users may move between those variants in both
// directions. Reordering variants or renaming the route reshuffles users.
func (r *Route) layout() {
	vs := r.cfg.Variants
	n := len(vs)
	b := 0
	fill := func(idx int) {
		for end := b + vs[idx].Weight; b < end; b++ {
			r.bucket[b] = uint8(idx)
		}
	}
	for i := 1; i < n-1; i++ {
		fill(i)
	}
	fill(0)
	if n > 1 {
		fill(n - 1)
	}
}

// Choose picks the variant for one request. header returns a request
// header's value ("" when absent; it may be nil). key is the sticky key (the
// header or body field the route's Sticky names) and hasKey whether the
// request carried one.
//
//  1. The first match rule whose header equals its value forces its variant
//     (even one with weight 0).
//  2. With a key, the key is hashed (FNV-1a 64, salted by the route name) to
//     one of 100 buckets, owned by variants as described at layout: the same
//     key gets the same variant for as long as the weights do not change.
//  3. Without a key, a variant is drawn at random by weight.
//
// Choose does not allocate. The returned variant must not be modified.
func (r *Route) Choose(key string, hasKey bool, header func(string) string) *Variant {
	if header != nil {
		for i := range r.cfg.Match {
			m := &r.cfg.Match[i]
			if header(m.Header) == m.Value {
				if v, ok := r.Variant(m.Variant); ok {
					return v
				}
			}
		}
	}
	var b int
	if hasKey {
		b = r.Bucket(key)
	} else {
		b = rand.IntN(Buckets)
	}
	return &r.cfg.Variants[r.bucket[b]]
}

// Bucket is the sticky bucket (0..99) of key on this route.
func (r *Route) Bucket(key string) int {
	h := fnv1a.String(r.seed^0xff, key) // ^0xff separates the name from the key
	// Mixed: FNV-1a's low bits are weak for short, similar keys (user-1,
	// user-2, ...), and the bucket is taken modulo 100.
	return int(fnv1a.Mix(h) % Buckets)
}

// Shadow returns the route's shadow target and whether this request should
// be mirrored to it (drawn at random with the configured percent).
func (r *Route) Shadow() (*Shadow, bool) {
	s := r.cfg.Shadow
	if s == nil || s.Percent <= 0 {
		return s, false
	}
	if s.Percent >= 100 {
		return s, true
	}
	return s, rand.Float64()*100 < s.Percent
}
