package monitor

import (
	"math"
	"math/bits"
)

// Latency histogram: log-linear bins with 16 sub-bins per power of two, so a
// reported percentile is within 1/32 (about 3%) of the true value; values
// under 32µs are exact. Fixed bins merge by addition, which is what summing
// 10-second buckets into a window needs.
const (
	latSubBits = 4
	latSub     = 1 << latSubBits
	latMaxExp  = 40 // values are capped at 2^41-1 µs (about 25 days)
	latBins    = latSub + (latMaxExp-latSubBits+1)*latSub
)

type latHist struct {
	counts [latBins]uint32
	n      int64
}

func latBin(us int64) int {
	if us < 0 {
		us = 0
	}
	if us < latSub {
		return int(us)
	}
	if us >= 1<<(latMaxExp+1) {
		us = 1<<(latMaxExp+1) - 1
	}
	e := bits.Len64(uint64(us)) - 1 // >= latSubBits
	m := int(us>>(e-latSubBits)) & (latSub - 1)
	return latSub + (e-latSubBits)*latSub + m
}

// latValue is the bin's midpoint in µs.
func latValue(bin int) float64 {
	if bin < latSub {
		return float64(bin)
	}
	e := (bin-latSub)/latSub + latSubBits
	m := (bin - latSub) % latSub
	width := float64(uint64(1) << (e - latSubBits))
	lower := float64(uint64(latSub+m) << (e - latSubBits))
	if width == 1 {
		return lower
	}
	return lower + width/2
}

func (h *latHist) add(us int64) {
	h.counts[latBin(us)]++
	h.n++
}

func (h *latHist) merge(o *latHist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// quantile returns the nearest-rank q-quantile in µs (0 when empty).
func (h *latHist) quantile(q float64) float64 {
	if h == nil || h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var cum int64
	for i, c := range h.counts {
		cum += int64(c)
		if cum >= rank {
			return latValue(i)
		}
	}
	return latValue(latBins - 1)
}

// valueStats summarises one numeric output: exact count, sum, min and max,
// plus a sparse signed log-linear sketch (16 sub-bins per power of two) from
// which a coarse histogram over [min, max] is drawn at query time.
type valueStats struct {
	count    int64
	sum      float64
	min, max float64
	sketch   map[int32]uint32
}

func (v *valueStats) add(x float64) {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return
	}
	if v.count == 0 || x < v.min {
		v.min = x
	}
	if v.count == 0 || x > v.max {
		v.max = x
	}
	v.count++
	v.sum += x
	if v.sketch == nil {
		v.sketch = make(map[int32]uint32)
	}
	v.sketch[valueBin(x)]++
}

func (v *valueStats) merge(o *valueStats) {
	if o.count == 0 {
		return
	}
	if v.count == 0 || o.min < v.min {
		v.min = o.min
	}
	if v.count == 0 || o.max > v.max {
		v.max = o.max
	}
	v.count += o.count
	v.sum += o.sum
	if v.sketch == nil {
		v.sketch = make(map[int32]uint32, len(o.sketch))
	}
	for k, c := range o.sketch {
		v.sketch[k] += c
	}
}

const (
	valMinExp = -40
	valMaxExp = 80
)

func valueBin(x float64) int32 {
	if x == 0 || math.Abs(x) < 1e-12 {
		return 0
	}
	frac, exp := math.Frexp(math.Abs(x)) // frac in [0.5, 1)
	exp = min(max(exp, valMinExp), valMaxExp)
	m := min(int((frac-0.5)*2*latSub), latSub-1)
	bin := int32((exp-valMinExp)*latSub + m + 1)
	if x < 0 {
		return -bin
	}
	return bin
}

func valueOfBin(bin int32) float64 {
	if bin == 0 {
		return 0
	}
	sign := 1.0
	if bin < 0 {
		sign, bin = -1, -bin
	}
	b := int(bin - 1)
	exp := b/latSub + valMinExp
	m := b % latSub
	frac := 0.5 + (float64(m)+0.5)/(2*latSub)
	return sign * math.Ldexp(frac, exp)
}

// histogramBins is how many equal-width bins an output histogram has.
const histogramBins = 10

// histogram draws histogramBins equal-width bins over [min, max].
func (v *valueStats) histogram() Histogram {
	if v.count == 0 {
		return Histogram{Edges: []float64{}, Counts: []int64{}}
	}
	if v.min == v.max {
		return Histogram{Edges: []float64{v.min, v.max}, Counts: []int64{v.count}}
	}
	h := Histogram{Edges: make([]float64, histogramBins+1), Counts: make([]int64, histogramBins)}
	width := (v.max - v.min) / histogramBins
	for i := range h.Edges {
		h.Edges[i] = v.min + float64(i)*width
	}
	h.Edges[histogramBins] = v.max
	for bin, c := range v.sketch {
		x := min(max(valueOfBin(bin), v.min), v.max)
		i := min(int((x-v.min)/width), histogramBins-1)
		h.Counts[i] += int64(c)
	}
	return h
}
