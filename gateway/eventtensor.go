package gateway

import (
	"encoding/binary"
	"hash/fnv"
	"math"

	"github.com/weirhq/weir/models"
	"github.com/weirhq/weir/monitor/event"
)

// wide reports whether a tensor of n elements is summarised in events
// rather than carried value by value (event.WideElements).
func wide(n int) bool { return n > event.WideElements }

// summaryOf is t's stand-in in an event: {"summary": event.TensorSummary}.
// It reads t once or twice and keeps nothing of it, so an event costs the
// same for a 600 KB image as for a 12 KB one.
func summaryOf(t models.Tensor) map[string]any {
	s := &event.TensorSummary{Shape: append([]int64(nil), t.Shape...), Datatype: string(t.Datatype)}
	h := fnv.New64a()
	switch v := t.Data.Values.(type) {
	case []float32:
		summarizeNumbers(s, v, h)
	case []float64:
		summarizeNumbers(s, v, h)
	case []int8:
		summarizeNumbers(s, v, h)
	case []int16:
		summarizeNumbers(s, v, h)
	case []int32:
		summarizeNumbers(s, v, h)
	case []int64:
		summarizeNumbers(s, v, h)
	case []uint8:
		summarizeNumbers(s, v, h)
	case []uint16:
		summarizeNumbers(s, v, h)
	case []uint32:
		summarizeNumbers(s, v, h)
	case []uint64:
		summarizeNumbers(s, v, h)
	case []bool:
		bs := make([]uint8, len(v))
		for i, b := range v {
			if b {
				bs[i] = 1
			}
		}
		summarizeNumbers(s, bs, h)
	case []string:
		var n [4]byte
		for _, e := range v {
			binary.LittleEndian.PutUint32(n[:], uint32(len(e)))
			h.Write(n[:])
			h.Write([]byte(e))
			s.Bytes += 4 + len(e)
		}
	}
	if size := models.ElementSize(t.Datatype); size > 0 {
		s.Bytes = size * t.Data.Len()
	}
	s.Hash = "fnv64a:" + hex16(h.Sum64())
	return map[string]any{event.SummaryKey: s}
}

// hex16 is u in exactly 16 hex digits.
func hex16(u uint64) string {
	const digits = "0123456789abcdef"
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = digits[u&0xf]
		u >>= 4
	}
	return string(b[:])
}

type number interface {
	~float32 | ~float64 | ~int8 | ~int16 | ~int32 | ~int64 | ~uint8 | ~uint16 | ~uint32 | ~uint64
}

// summarizeNumbers fills s's hash input, statistics and channel statistics
// from vals.
func summarizeNumbers[T number](s *event.TensorSummary, vals []T, h interface{ Write([]byte) (int, error) }) {
	// Hash the little-endian bytes a chunk at a time: no copy of the tensor.
	var chunk [512]T
	buf := make([]byte, 0, 4096)
	for off := 0; off < len(vals); off += len(chunk) {
		n := copy(chunk[:], vals[off:])
		var err error
		buf, err = binary.Append(buf[:0], binary.LittleEndian, chunk[:n])
		if err == nil {
			h.Write(buf)
		}
	}
	all, nonFinite := statsOf(vals, 0, 1, len(vals))
	s.NonFinite = nonFinite
	if all.count > 0 {
		st := all.stats()
		s.Stats = &st
	}
	c, block, stride := channelLayout(s.Shape)
	if c == 0 {
		return
	}
	chans := make([]event.Stats, c)
	for i := range chans {
		var acc accum
		if stride == 1 { // NCHW: channel i is every c-th block of block values
			for start := i * block; start < len(vals); start += c * block {
				part, _ := statsOf(vals, start, 1, min(start+block, len(vals)))
				acc.merge(part)
			}
		} else { // NHWC: channel i is every c-th value
			acc, _ = statsOf(vals, i, stride, len(vals))
		}
		if acc.count == 0 {
			return // a channel of NaNs: no channel statistics at all
		}
		chans[i] = acc.stats()
	}
	s.Channels = chans
}

// channelLayout says how a rank-4 tensor's values split into channels
// (event.TensorSummary.Channels): c channels, each a run of block values
// repeated every c*block (NCHW, stride 1), or every stride-th value (NHWC,
// block 1). c is 0 when the layout names no small channel dimension.
func channelLayout(shape []int64) (c, block, stride int) {
	if len(shape) != 4 {
		return 0, 0, 0
	}
	small := func(d int64) bool { return d >= 1 && d <= event.MaxSummaryChannels }
	switch {
	case small(shape[1]) && shape[2] > 0 && shape[3] > 0:
		return int(shape[1]), int(shape[2] * shape[3]), 1
	case small(shape[3]):
		return int(shape[3]), 1, int(shape[3])
	}
	return 0, 0, 0
}

// accum gathers finite values: count, mean and the sum of squared
// deviations (Chan et al.'s parallel form, so parts merge exactly).
type accum struct {
	count    int
	mean, m2 float64
	min, max float64
}

func (a *accum) merge(b accum) {
	if b.count == 0 {
		return
	}
	if a.count == 0 {
		*a = b
		return
	}
	n := float64(a.count + b.count)
	d := b.mean - a.mean
	a.mean += d * float64(b.count) / n
	a.m2 += b.m2 + d*d*float64(a.count)*float64(b.count)/n
	a.count += b.count
	a.min, a.max = min(a.min, b.min), max(a.max, b.max)
}

func (a accum) stats() event.Stats {
	return event.Stats{Mean: a.mean, Std: math.Sqrt(a.m2 / float64(a.count)), Min: a.min, Max: a.max}
}

// statsOf gathers vals[from], vals[from+step], ... below to, in two
// passes (mean, then deviations) so that the spread of values far from
// zero keeps its precision. It also counts non-finite values.
func statsOf[T number](vals []T, from, step, to int) (accum, int) {
	var a accum
	var sum float64
	nonFinite := 0
	a.min, a.max = math.Inf(1), math.Inf(-1)
	for i := from; i < to; i += step {
		f := float64(vals[i])
		if math.IsNaN(f) || math.IsInf(f, 0) {
			nonFinite++
			continue
		}
		a.count++
		sum += f
		a.min, a.max = min(a.min, f), max(a.max, f)
	}
	if a.count == 0 {
		return accum{}, nonFinite
	}
	a.mean = sum / float64(a.count)
	for i := from; i < to; i += step {
		f := float64(vals[i])
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		a.m2 += (f - a.mean) * (f - a.mean)
	}
	return a, nonFinite
}
