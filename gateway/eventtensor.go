package gateway

import (
	"encoding/binary"
	"math"
	"unsafe"

	"github.com/cespare/xxhash/v2"

	"github.com/weirhq/weir/models"
	"github.com/weirhq/weir/monitor/event"
)

// wide reports whether t is summarised in events rather than carried value
// by value: one row of it (all but its first dimension; the whole of a
// rank-0 or rank-1 tensor) is wider than event.WideElements. A batch of
// many one-value rows stays tabular.
func wide(t models.Tensor) bool {
	n := t.Data.Len()
	if len(t.Shape) >= 2 && t.Shape[0] > 0 {
		n /= int(t.Shape[0])
	}
	return n > event.WideElements
}

// summaryOf is t's stand-in in an event: {"summary": event.TensorSummary}.
// It reads t once (and hashes its bytes in place) and keeps nothing of it,
// so an event costs the same for a 600 KB image as for a 12 KB one.
func summaryOf(t models.Tensor) map[string]any {
	s := &event.TensorSummary{Shape: append([]int64(nil), t.Shape...), Datatype: string(t.Datatype)}
	h := xxhash.New()
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
			h.WriteString(e)
			s.Bytes += 4 + len(e)
		}
	}
	if size := models.ElementSize(t.Datatype); size > 0 {
		s.Bytes = size * t.Data.Len()
	}
	s.Hash = "xxh64:" + hex16(h.Sum64())
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

// littleEndian is whether this machine's memory order is the raw layout's.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// hashLE writes vals' little-endian bytes to h: in place on a little-endian
// machine (every platform weir ships for), through a small buffer
// otherwise.
func hashLE[T number](h *xxhash.Digest, vals []T) {
	if len(vals) == 0 {
		return
	}
	if littleEndian {
		h.Write(unsafe.Slice((*byte)(unsafe.Pointer(&vals[0])), len(vals)*int(unsafe.Sizeof(vals[0]))))
		return
	}
	buf := make([]byte, 0, 4096)
	for off := 0; off < len(vals); off += 512 {
		var err error
		if buf, err = binary.Append(buf[:0], binary.LittleEndian, vals[off:min(off+512, len(vals))]); err == nil {
			h.Write(buf)
		}
	}
}

// summarizeNumbers fills s's statistics and channel statistics from vals,
// in one pass, and hashes vals' bytes.
func summarizeNumbers[T number](s *event.TensorSummary, vals []T, h *xxhash.Digest) {
	hashLE(h, vals)
	var all accum
	c, block, stride := channelLayout(s.Shape)
	if c == 0 {
		all = statsOf(vals, 0, 1, len(vals))
	} else {
		chans := make([]accum, c)
		if stride == 1 { // NCHW: channel i is every c-th run of block values
			for start, i := 0, 0; start < len(vals); start, i = start+block, (i+1)%c {
				chans[i].merge(statsOf(vals, start, 1, min(start+block, len(vals))))
			}
		} else { // NHWC: channel i is every c-th value
			for i := range chans {
				chans[i] = statsOf(vals, i, stride, len(vals))
			}
		}
		s.Channels = make([]event.Stats, c)
		for i, ch := range chans {
			all.merge(ch)
			if ch.count == 0 {
				s.Channels = nil // a channel of NaNs: no channel statistics at all
			} else if s.Channels != nil {
				s.Channels[i] = ch.stats()
			}
		}
	}
	s.NonFinite = all.nonFinite
	if all.count > 0 {
		st := all.stats()
		s.Stats = &st
	}
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
// deviations (Chan et al.'s parallel form, so parts merge exactly), and
// counts the others.
type accum struct {
	count, nonFinite int
	mean, m2         float64
	min, max         float64
}

func (a *accum) merge(b accum) {
	nf := a.nonFinite + b.nonFinite
	switch {
	case b.count == 0:
	case a.count == 0:
		*a = b
	default:
		n := float64(a.count + b.count)
		d := b.mean - a.mean
		a.mean += d * float64(b.count) / n
		a.m2 += b.m2 + d*d*float64(a.count)*float64(b.count)/n
		a.count += b.count
		a.min, a.max = min(a.min, b.min), max(a.max, b.max)
	}
	a.nonFinite = nf
}

func (a accum) stats() event.Stats {
	return event.Stats{Mean: a.mean, Std: math.Sqrt(a.m2 / float64(a.count)), Min: a.min, Max: a.max}
}

// statsOf gathers vals[from], vals[from+step], ... below to in one pass.
// Sums are taken about the first finite value (shifted data), so the spread
// of values far from zero keeps its precision.
func statsOf[T number](vals []T, from, step, to int) accum {
	var a accum
	var shift, sum, sq float64
	for i := from; i < to; i += step {
		f := float64(vals[i])
		if f-f != 0 { // NaN or ±Inf
			a.nonFinite++
			continue
		}
		if a.count == 0 {
			shift, a.min, a.max = f, f, f
		}
		a.count++
		d := f - shift
		sum += d
		sq += d * d
		if f < a.min {
			a.min = f
		}
		if f > a.max {
			a.max = f
		}
	}
	if a.count > 0 {
		n := float64(a.count)
		a.mean = shift + sum/n
		a.m2 = max(sq-sum*sum/n, 0)
	}
	return a
}
