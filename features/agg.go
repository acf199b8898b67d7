package features

import (
	"encoding/json"
	"math"
	"slices"

	"github.com/weirhq/weir/internal/fnv1a"
)

// Window buckets: a window of W is split into fixed buckets of W/60 (at
// least one second), so an aggregate keeps at most about 60 buckets per
// entity whatever the event rate. An aggregate evaluated at time T covers the
// buckets whose index lies in (idx(T)-n, idx(T)], i.e. between W-width and W
// of history: the window slides one bucket at a time. See DESIGN.md.
const (
	bucketsPerWindow = 60
	minBucketMillis  = 1000
	// kmvK is the size of the K-minimum-values sketch kept per bucket for
	// distinct: exact up to kmvK distinct values per window, an estimate
	// (relative error about 1/sqrt(kmvK-2), ~13%) beyond.
	kmvK = 64
)

// bucketGeometry returns the bucket width in milliseconds and the number of
// buckets that cover window.
func bucketGeometry(windowMillis int64) (width int64, n int64) {
	width = windowMillis / bucketsPerWindow
	if width < minBucketMillis {
		width = minBucketMillis
	}
	n = (windowMillis + width - 1) / width
	return width, n
}

// bucket is one time slice of one aggregate. Moments use Welford's (n, mean,
// M2) so that std does not suffer from cancellation on large amounts.
type bucket struct {
	Idx    int64           `json:"i"`
	N      int64           `json:"n"`
	Mean   float64         `json:"m,omitempty"`
	M2     float64         `json:"q,omitempty"`
	Sum    float64         `json:"s,omitempty"`
	Min    float64         `json:"lo,omitempty"`
	Max    float64         `json:"hi,omitempty"`
	LastTS int64           `json:"lt,omitempty"`
	Last   json.RawMessage `json:"lv,omitempty"`
	Hashes []uint64        `json:"h,omitempty"`
}

// aggState is the state of one aggregation for one entity: its non-empty
// buckets in increasing index order, at most n of them.
type aggState struct {
	Buckets []bucket `json:"b,omitempty"`
}

// observation is the part of one event that one aggregation needs.
type observation struct {
	ts   int64           // event time, unix milliseconds
	num  float64         // numeric value (sum, mean, std, min, max)
	raw  json.RawMessage // value as JSON (last)
	hash uint64          // hashed value (distinct)
}

// add folds obs into the state. latest is the entity's newest event time
// before this event; events older than the window relative to it are late
// and ignored (reported false).
func (a *aggState) add(op Op, width, n int64, latest int64, obs observation) bool {
	idx := floorDiv(obs.ts, width)
	top := floorDiv(max(latest, obs.ts), width)
	if idx <= top-n {
		return false
	}
	// Drop buckets that slid out of the window.
	cut := 0
	for cut < len(a.Buckets) && a.Buckets[cut].Idx <= top-n {
		cut++
	}
	if cut > 0 {
		a.Buckets = slices.Delete(a.Buckets, 0, cut)
	}
	// Find or insert the bucket; usually it is the last one.
	pos := len(a.Buckets)
	for pos > 0 && a.Buckets[pos-1].Idx > idx {
		pos--
	}
	if pos == 0 || a.Buckets[pos-1].Idx != idx {
		a.Buckets = slices.Insert(a.Buckets, pos, bucket{Idx: idx})
	} else {
		pos--
	}
	b := &a.Buckets[pos]
	b.N++
	switch op {
	case OpSum:
		b.Sum += obs.num
	case OpMean, OpStd:
		d := obs.num - b.Mean
		b.Mean += d / float64(b.N)
		b.M2 += d * (obs.num - b.Mean)
	case OpMin:
		if b.N == 1 || obs.num < b.Min {
			b.Min = obs.num
		}
	case OpMax:
		if b.N == 1 || obs.num > b.Max {
			b.Max = obs.num
		}
	case OpLast:
		if b.Last == nil || obs.ts >= b.LastTS {
			b.LastTS, b.Last = obs.ts, obs.raw
		}
	case OpDistinct:
		b.Hashes = kmvAdd(b.Hashes, obs.hash)
	}
	return true
}

// value evaluates the aggregate at time now (unix ms). Aggregates of no data
// are 0 for count, sum and distinct, and null for the others.
func (a *aggState) value(op Op, width, n int64, now int64) any {
	lo := floorDiv(now, width) - n
	var (
		cnt    int64
		mean   float64
		m2     float64
		sum    float64
		mn, mx float64
		lastTS int64
		last   json.RawMessage
		hashes []uint64
	)
	for i := range a.Buckets {
		b := &a.Buckets[i]
		if b.Idx <= lo || b.N == 0 {
			continue
		}
		switch op {
		case OpMean, OpStd:
			// Chan et al.'s parallel combination of (n, mean, M2).
			tot := cnt + b.N
			d := b.Mean - mean
			mean += d * float64(b.N) / float64(tot)
			m2 += b.M2 + d*d*float64(cnt)*float64(b.N)/float64(tot)
		case OpSum:
			sum += b.Sum
		case OpMin:
			if cnt == 0 || b.Min < mn {
				mn = b.Min
			}
		case OpMax:
			if cnt == 0 || b.Max > mx {
				mx = b.Max
			}
		case OpLast:
			if last == nil || b.LastTS >= lastTS {
				lastTS, last = b.LastTS, b.Last
			}
		case OpDistinct:
			for _, h := range b.Hashes {
				hashes = kmvAdd(hashes, h)
			}
		}
		cnt += b.N
	}
	switch op {
	case OpCount:
		return cnt
	case OpSum:
		return sum
	case OpDistinct:
		return kmvEstimate(hashes)
	}
	if cnt == 0 {
		return nil
	}
	switch op {
	case OpMean:
		return mean
	case OpStd:
		return math.Sqrt(m2 / float64(cnt)) // population std (ddof 0)
	case OpMin:
		return mn
	case OpMax:
		return mx
	case OpLast:
		return last
	}
	return nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// kmvAdd keeps the kmvK smallest distinct hashes, sorted.
func kmvAdd(hs []uint64, h uint64) []uint64 {
	i, found := slices.BinarySearch(hs, h)
	if found {
		return hs
	}
	if len(hs) >= kmvK {
		if i >= kmvK {
			return hs
		}
		hs = hs[:kmvK-1]
	}
	return slices.Insert(hs, i, h)
}

// kmvEstimate is the distinct count: exact below kmvK values, else the
// K-minimum-values estimator (k-1)/U(k) scaled to the hash range.
func kmvEstimate(hs []uint64) int64 {
	if len(hs) < kmvK {
		return int64(len(hs))
	}
	kth := float64(hs[kmvK-1]) / math.MaxUint64
	if kth == 0 {
		return int64(len(hs))
	}
	return int64(math.Round(float64(kmvK-1) / kth))
}

// hashValue hashes a distinct value's canonical text: FNV-1a, then a
// splitmix64 finaliser so the low bits the sketch relies on are uniform. It
// is stable across processes, which matters because sketches are persisted.
func hashValue(kind byte, s string) uint64 {
	return fnv1a.MixSplit(fnv1a.String(fnv1a.Byte(fnv1a.Offset, kind), s))
}
