package drift

import "time"

// window is a ring buffer of one feature's latest values, bounded by count and
// by event time. It stores each value's fine bin only (see featureRef), and
// keeps the per-bin counts up to date on every add and eviction, so that a
// recompute never rescans or sorts the values.
type window struct {
	bins   []uint16 // fine bin of each value
	ts     []int64  // event time, unix nanoseconds
	start  int      // index of the oldest value
	n      int
	maxAge int64
	newest int64 // the latest event time added: the window ends there
	// fine counts values per fine bin (nil when fine bins are the coarse
	// bins, as for categorical features); counts per coarse bin, the
	// histogram of psi, tvd, hellinger and kl. coarseOf maps a fine bin to its
	// coarse bin (nil: identity).
	fine     []float64
	counts   []float64
	coarseOf []uint16
}

func newWindow(capacity int, maxAge time.Duration, ref *featureRef) *window {
	w := &window{
		bins:     make([]uint16, capacity),
		ts:       make([]int64, capacity),
		maxAge:   int64(maxAge),
		counts:   make([]float64, ref.numBins()),
		coarseOf: ref.coarseOf,
	}
	if ref.coarseOf != nil {
		w.fine = make([]float64, len(ref.coarseOf))
	}
	return w
}

// add appends a value by its fine bin, evicting the oldest value when full
// and every value older than maxAge before the newest event time seen. The
// window follows event time, not arrival: a value older than that is not
// counted and add reports false (a spool replayed after a NATS outage
// delivers old events after new ones, and counting them would flap the
// judgement). O(1) amortised: each value is evicted once.
func (w *window) add(bin int, ts int64) bool {
	w.newest = max(w.newest, ts)
	cutoff := w.newest - w.maxAge
	if ts < cutoff {
		return false
	}
	if w.n == len(w.bins) {
		w.evictOldest()
	}
	for w.n > 0 && w.ts[w.start] < cutoff {
		w.evictOldest()
	}
	i := w.at(w.n)
	w.bins[i], w.ts[i] = uint16(bin), ts
	w.count(bin, 1)
	w.n++
	return true
}

func (w *window) count(bin int, d float64) {
	if w.coarseOf == nil {
		w.counts[bin] += d
		return
	}
	w.fine[bin] += d
	w.counts[w.coarseOf[bin]] += d
}

func (w *window) evictOldest() {
	w.count(int(w.bins[w.start]), -1)
	w.start++
	if w.start == len(w.bins) {
		w.start = 0
	}
	w.n--
}

// at returns the slot of the i-th oldest value.
func (w *window) at(i int) int {
	j := w.start + i
	if j >= len(w.bins) {
		j -= len(w.bins)
	}
	return j
}

// span returns the event times of the oldest and newest value.
func (w *window) span() (from, to time.Time) {
	if w.n == 0 {
		return time.Time{}, time.Time{}
	}
	return time.Unix(0, w.ts[w.start]).UTC(), time.Unix(0, w.ts[w.at(w.n-1)]).UTC()
}

// resized returns a window of a new capacity and age holding the newest
// values of w that fit.
func (w *window) resized(capacity int, maxAge time.Duration) *window {
	nw := &window{
		bins: make([]uint16, capacity), ts: make([]int64, capacity), maxAge: int64(maxAge),
		counts: make([]float64, len(w.counts)), coarseOf: w.coarseOf, newest: w.newest,
	}
	if w.fine != nil {
		nw.fine = make([]float64, len(w.fine))
	}
	for i := max(0, w.n-capacity); i < w.n; i++ {
		j := w.at(i)
		nw.add(int(w.bins[j]), w.ts[j])
	}
	return nw
}
