// The parts of WebAssembly's binary format the module rewriter reads and
// writes: a reader with a sticky error, instruction immediates, and LEB128
// and name encoding.

package plugins

import (
	"errors"
	"fmt"
)

// skipImmediates moves past the immediates of instruction op.
func (r *reader) skipImmediates(op byte) error {
	switch {
	case op == 0x02 || op == 0x03 || op == 0x04 || op == 0x06: // block loop if try
		r.blockType()
	case op == 0x07 || op == 0x08 || op == 0x09 || op == 0x18: // catch throw rethrow delegate
		r.u32()
	case op == 0x1F: // try_table
		r.blockType()
		n := r.count()
		for range n {
			kind := r.byte()
			if kind == 0 || kind == 1 {
				r.u32()
			}
			r.u32()
		}
	case op == 0x0C || op == 0x0D || op == 0x10 || op == 0x12 || op == 0xD2 ||
		op == 0x14 || op == 0x15 || op == 0xD5 || op == 0xD6:
		// br br_if call return_call ref.func call_ref return_call_ref br_on_null br_on_non_null
		r.u32()
	case op == 0x0E: // br_table
		n := r.count()
		for range n + 1 {
			r.u32()
		}
	case op == 0x11 || op == 0x13: // call_indirect return_call_indirect
		r.u32()
		r.u32()
	case op == 0x1C: // select t*
		n := r.count()
		for range n {
			r.valType()
		}
	case op >= 0x20 && op <= 0x26: // local.*, global.*, table.get/set
		r.u32()
	case op >= 0x28 && op <= 0x3E: // loads and stores
		r.memarg()
	case op == 0x3F || op == 0x40: // memory.size memory.grow
		r.u32()
	case op == 0x41:
		r.s64()
	case op == 0x42:
		r.s64()
	case op == 0x43:
		r.skip(4)
	case op == 0x44:
		r.skip(8)
	case op == 0xD0: // ref.null heaptype
		r.s64()
	case op == 0xFC:
		switch sub := r.u32(); {
		case sub <= 7:
		case sub == 8 || sub == 10 || sub == 12 || sub == 14:
			r.u32()
			r.u32()
		case sub == 9 || sub == 11 || sub == 13 || (sub >= 15 && sub <= 17):
			r.u32()
		default:
			return fmt.Errorf("%w: unknown instruction 0xFC %d", errNotInstrumentable, sub)
		}
	case op == 0xFD: // SIMD
		switch sub := r.u32(); {
		case sub <= 11 || sub == 92 || sub == 93:
			r.memarg()
		case sub == 12 || sub == 13:
			r.skip(16)
		case sub >= 21 && sub <= 34:
			r.byte()
		case sub >= 84 && sub <= 91:
			r.memarg()
			r.byte()
		}
	case op == 0xFE: // threads
		if sub := r.u32(); sub == 3 {
			r.byte()
		} else {
			r.memarg()
		}
	case op <= 0x01 || op == 0x05 || op == 0x0A || op == 0x0B || op == 0x0F || op == 0x19 ||
		op == 0x1A || op == 0x1B || (op >= 0x45 && op <= 0xC4) || op == 0xD1 || op == 0xD4:
		// no immediates
	default:
		return fmt.Errorf("%w: unknown instruction 0x%02X", errNotInstrumentable, op)
	}
	if r.err != nil {
		return fmt.Errorf("%w: %w", errNotInstrumentable, r.err)
	}
	return nil
}

// reader decodes the parts of the binary format instrument needs. The first
// error sticks; later reads return zero.
type reader struct {
	b   []byte
	i   int
	err error
}

var errTruncated = errors.New("unexpected end of module")

func (r *reader) byte() byte {
	if r.err != nil || r.i >= len(r.b) {
		r.err = errTruncated
		return 0
	}
	c := r.b[r.i]
	r.i++
	return c
}

func (r *reader) skip(n int) {
	if r.err != nil || len(r.b)-r.i < n {
		r.err = errTruncated
		return
	}
	r.i += n
}

func (r *reader) u32() uint32 {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c := r.byte()
		if shift == 28 && c&0xF0 != 0 { // the fifth byte holds 4 bits
			break
		}
		v |= uint32(c&0x7F) << shift
		if c&0x80 == 0 {
			return v
		}
	}
	if r.err == nil {
		r.err = errors.New("LEB128 integer too long or over 32 bits")
	}
	return 0
}

// count reads the length of a vector. Every item takes at least a byte,
// so a count beyond the bytes left is refused before any loop over the
// items starts: a module of a few bytes claiming 2^32 of them must not
// cost the host minutes or gigabytes.
func (r *reader) count() uint32 {
	n := r.u32()
	if r.err == nil && int64(n) > int64(len(r.b)-r.i) {
		r.err = fmt.Errorf("a vector of %d items in %d bytes", n, len(r.b)-r.i)
		return 0
	}
	return n
}

// s64 skips a signed LEB128 of up to 64 bits (also used for s32 and s33).
func (r *reader) s64() {
	for range 10 {
		if r.byte()&0x80 == 0 {
			return
		}
	}
	if r.err == nil {
		r.err = errors.New("LEB128 integer too long")
	}
}

func (r *reader) name() string {
	n := r.u32()
	if r.err != nil || int(n) > len(r.b)-r.i {
		r.err = errTruncated
		return ""
	}
	s := string(r.b[r.i : r.i+int(n)])
	r.i += int(n)
	return s
}

func (r *reader) limits() {
	flags := r.byte()
	r.u32()
	if flags&1 != 0 {
		r.u32()
	}
}

func (r *reader) memarg() {
	align := r.u32()
	if align&0x40 != 0 { // multi-memory: a memory index follows
		r.u32()
	}
	r.u32()
}

// blockType moves past a block type: empty, a value type, or a type index
// (an s33, which also covers every one-byte value type).
func (r *reader) blockType() {
	if r.i < len(r.b) && (r.b[r.i] == 0x63 || r.b[r.i] == 0x64) {
		r.valType()
		return
	}
	r.s64()
}

// valType moves past a value type: one byte, or (ref null? heaptype) of
// the typed function references proposal, whose heap type is an s33.
func (r *reader) valType() {
	if t := r.byte(); t == 0x63 || t == 0x64 {
		r.s64()
	}
}

func appendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7F)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

// appendS32 appends v as a signed LEB128 (v >= 0 here).
func appendS32(b []byte, v int32) []byte {
	for {
		c := byte(v & 0x7F)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendName(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}
