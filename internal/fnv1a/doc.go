// Package fnv1a is weir's one string hash: 64-bit FNV-1a, inlined and free
// of allocation (hash/fnv's interface costs both on the request path), and
// the finalisers that spread FNV-1a's weak low bits.
//
// Two finalisers exist because each is fixed by state already out in the
// world: the router's sticky buckets (Mix) decide which variant a user has
// been seeing, and the feature store's distinct-count sketches (MixSplit)
// are persisted in JetStream. Changing either would move users between
// variants, or corrupt stored counts. New uses take Mix.
//
// It imports nothing from weir.
package fnv1a
