// Pooled data buffers for parsed inputs, given back by Release.

package models

import (
	"sync"
)

// maxPooled is the largest buffer (in elements) kept for reuse: enough
// for an image tensor (1x3x224x224 is 150,528), so that JSON images parse
// into a reused buffer. A sync.Pool lets the collector free what it holds
// when it goes unused over two collections, so memory still returns after
// a burst.
const maxPooled = 1 << 21

// slicePool reuses typed data buffers between requests.
type slicePool[T any] struct{ p sync.Pool }

func (sp *slicePool[T]) get(n int) *[]T {
	if b, ok := sp.p.Get().(*[]T); ok {
		if cap(*b) >= n {
			*b = (*b)[:0]
			return b
		}
		sp.p.Put(b)
	}
	s := make([]T, 0, n)
	return &s
}

func (sp *slicePool[T]) put(b *[]T) {
	if cap(*b) <= maxPooled {
		sp.p.Put(b)
	}
}

var (
	poolF32  slicePool[float32]
	poolF64  slicePool[float64]
	poolI8   slicePool[int8]
	poolI16  slicePool[int16]
	poolI32  slicePool[int32]
	poolI64  slicePool[int64]
	poolU8   slicePool[uint8]
	poolU16  slicePool[uint16]
	poolU32  slicePool[uint32]
	poolU64  slicePool[uint64]
	poolBool slicePool[bool]
)

func parsePooled[T any](raw []byte, sp *slicePool[T], n int, conv func([]byte) (T, error)) (any, any, error) {
	b := sp.get(n)
	out, err := parseElements(raw, *b, conv)
	if err != nil {
		*b = out
		sp.put(b)
		return nil, nil, err
	}
	*b = out
	return out, b, nil
}

// Release returns the data buffers of tensors that Prepare parsed to their
// pools. The tensors' data must not be used afterwards.
func Release(ts []Tensor) {
	for i := range ts {
		switch b := ts[i].buf.(type) {
		case *[]float32:
			poolF32.put(b)
		case *[]float64:
			poolF64.put(b)
		case *[]int8:
			poolI8.put(b)
		case *[]int16:
			poolI16.put(b)
		case *[]int32:
			poolI32.put(b)
		case *[]int64:
			poolI64.put(b)
		case *[]uint8:
			poolU8.put(b)
		case *[]uint16:
			poolU16.put(b)
		case *[]uint32:
			poolU32.put(b)
		case *[]uint64:
			poolU64.put(b)
		case *[]bool:
			poolBool.put(b)
		}
		ts[i].buf = nil
		ts[i].Data.Values = nil
	}
}
