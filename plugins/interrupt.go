package plugins

import (
	"errors"
	"fmt"
)

// Interrupting a guest cheaply.
//
// wazero stops a running guest (an infinite loop) only when the runtime is
// built WithCloseOnContextDone(true), and then every loop iteration leaves
// native code to ask Go whether the module was closed, and every call spawns
// a goroutine to watch its context. Measured on the Go SDK's round trip that
// made a plugin call about ten times slower, and the trivial echo call
// twenty times slower.
//
// Instead the host rewrites each module once, before compiling it: it adds
// two mutable i32 globals, an interrupt flag (exported as interruptExport)
// and a fuel countdown, and at the start of every function and every loop
// body inserts
//
//	fuel -= 1
//	if fuel == 0 {
//	  fuel = fuelTicks
//	  memory.grow(0)          ;; returns to Go for a moment (see fuelTicks)
//	  if interrupt { unreachable }
//	}
//
// which compiles to a few instructions on the common path. A call's deadline
// timer sets the flag, the guest traps within fuelTicks checks, and the host,
// knowing its timer fired, reports a deadline. The instance is then
// discarded, so the flag is never reset.

// fuelTicks is how many checks pass between trips to Go. The trip
// (memory.grow by 0 pages, which wazero serves in Go) is what lets Go's
// garbage collector stop a guest that loops: native code has no preemption
// points, so without it a looping guest would block a stop-the-world pause,
// and with it the timer goroutine that sets the interrupt flag. The flag is
// read on the same trip, so a deadline is noticed within fuelTicks loop
// iterations or calls (microseconds).
const fuelTicks = 4096

// interruptExport names the global the host adds; a module exporting this
// name itself is refused.
const interruptExport = "weir_interrupt"

// startExport is where instrument moves a module's start section: wazero
// runs a start section inside InstantiateModule, before the interrupt
// global can be reached, so one that loops would hang the load for ever.
// As an export, the host calls it under a deadline like _initialize.
const startExport = "weir_start_section"

var errNotInstrumentable = errors.New("cannot instrument module")

// instrument returns wasm with the interrupt global and checks added. wasm
// must be a module wazero can compile; instrument only checks what it
// needs to walk.
func instrument(wasm []byte) ([]byte, error) {
	if len(wasm) < 8 {
		return nil, errNotInstrumentable
	}
	type section struct {
		id   byte
		body []byte
	}
	var sections []section
	r := reader{b: wasm, i: 8}
	for r.i < len(r.b) {
		id := r.byte()
		size := r.u32()
		if r.err != nil || int(size) > len(r.b)-r.i {
			return nil, fmt.Errorf("%w: truncated section", errNotInstrumentable)
		}
		sections = append(sections, section{id, r.b[r.i : r.i+int(size)]})
		r.i += int(size)
	}

	// Count globals (imported and defined) to find the new global's index.
	var nGlobals uint32
	hasGlobal, hasExport := false, false
	start, hasStart := uint32(0), false
	for _, s := range sections {
		switch s.id {
		case 8: // start
			sr := reader{b: s.body}
			start, hasStart = sr.u32(), true
			if sr.err != nil {
				return nil, fmt.Errorf("%w: start section: %w", errNotInstrumentable, sr.err)
			}
		case 2: // import
			sr := reader{b: s.body}
			n := sr.u32()
			for range n {
				sr.name()
				sr.name()
				switch kind := sr.byte(); kind {
				case 0: // func
					sr.u32()
				case 1: // table
					sr.byte()
					sr.limits()
				case 2: // memory
					sr.limits()
				case 3: // global
					sr.byte()
					sr.byte()
					nGlobals++
				case 4: // tag
					sr.byte()
					sr.u32()
				default:
					return nil, fmt.Errorf("%w: import kind %d", errNotInstrumentable, kind)
				}
			}
			if sr.err != nil {
				return nil, fmt.Errorf("%w: import section: %w", errNotInstrumentable, sr.err)
			}
		case 6:
			hasGlobal = true
			sr := reader{b: s.body}
			nGlobals += sr.u32()
		case 7:
			hasExport = true
		}
	}
	interrupt, fuel := nGlobals, nGlobals+1

	// mut i32 = 0 (the interrupt flag), mut i32 = fuelTicks (the countdown)
	newGlobal := []byte{0x7F, 0x01, 0x41, 0x00, 0x0B, 0x7F, 0x01, 0x41}
	newGlobal = appendS32(newGlobal, fuelTicks)
	newGlobal = append(newGlobal, 0x0B)
	newExport := appendName(nil, interruptExport)
	newExport = append(newExport, 0x03) // global
	newExport = appendU32(newExport, interrupt)
	nExports := uint32(1)
	if hasStart {
		newExport = appendName(newExport, startExport)
		newExport = append(newExport, 0x00) // func
		newExport = appendU32(newExport, start)
		nExports++
	}

	out := append([]byte(nil), wasm[:8]...)
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	// order gives each known section id its place, to insert missing
	// global and export sections where the binary format wants them.
	order := map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}
	addMissing := func(before byte) {
		if !hasGlobal && (before == 0 || order[before] > order[6]) {
			emit(6, append(appendU32(nil, 2), newGlobal...))
			hasGlobal = true
		}
		if !hasExport && (before == 0 || order[before] > order[7]) {
			emit(7, append(appendU32(nil, nExports), newExport...))
			hasExport = true
		}
	}
	for _, s := range sections {
		if s.id != 0 {
			addMissing(s.id)
		}
		switch s.id {
		case 6:
			emit(6, appendItems(s.body, 2, newGlobal))
		case 8: // moved to startExport
		case 7:
			body, err := appendExport(s.body, newExport, nExports)
			if err != nil {
				return nil, err
			}
			emit(7, body)
		case 10:
			body, err := instrumentCode(s.body, interrupt, fuel)
			if err != nil {
				return nil, err
			}
			emit(10, body)
		default:
			emit(s.id, s.body)
		}
	}
	addMissing(0)
	return out, nil
}

// appendItems adds n items to a vector section body (count, items...).
func appendItems(body []byte, n uint32, items []byte) []byte {
	r := reader{b: body}
	count := r.u32()
	out := appendU32(nil, count+n)
	out = append(out, body[r.i:]...)
	return append(out, items...)
}

func appendExport(body, exports []byte, nExports uint32) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	for range n {
		if name := r.name(); name == interruptExport || name == startExport {
			return nil, fmt.Errorf("%w: the module exports %q, a name the host reserves", errNotInstrumentable, name)
		}
		r.byte()
		r.u32()
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: export section: %w", errNotInstrumentable, r.err)
	}
	return appendItems(body, nExports, exports), nil
}

// instrumentCode rewrites every function body of a code section.
func instrumentCode(body []byte, interrupt, fuel uint32) ([]byte, error) {
	g := func(op byte, idx uint32) []byte { return appendU32([]byte{op}, idx) }
	var check []byte
	check = append(check, g(0x23, fuel)...)       // global.get $fuel
	check = append(check, 0x41, 0x01, 0x6B)       // i32.const 1; i32.sub
	check = append(check, g(0x24, fuel)...)       // global.set $fuel
	check = append(check, g(0x23, fuel)...)       // global.get $fuel
	check = append(check, 0x45, 0x04, 0x40, 0x41) // i32.eqz; if; i32.const
	check = appendS32(check, fuelTicks)           //   fuelTicks
	check = append(check, g(0x24, fuel)...)       //   global.set $fuel
	check = append(check, 0x41, 0x00, 0x40, 0x00) //   memory.grow(0): a trip to Go
	check = append(check, 0x1A)                   //   drop
	check = append(check, g(0x23, interrupt)...)  //   global.get $interrupt
	check = append(check, 0x04, 0x40, 0x00, 0x0B) //   if unreachable end
	check = append(check, 0x0B)                   // end

	r := reader{b: body}
	n := r.u32()
	out := appendU32(make([]byte, 0, len(body)+len(body)/8), n)
	var fn []byte
	for range n {
		size := r.u32()
		if r.err != nil || int(size) > len(r.b)-r.i {
			return nil, fmt.Errorf("%w: truncated function body", errNotInstrumentable)
		}
		f := reader{b: r.b[r.i : r.i+int(size)]}
		r.i += int(size)

		nLocals := f.u32()
		for range nLocals {
			f.u32()
			f.byte()
		}
		if f.err != nil {
			return nil, fmt.Errorf("%w: locals: %w", errNotInstrumentable, f.err)
		}
		fn = append(fn[:0], f.b[:f.i]...)
		fn = append(fn, check...)
		start := f.i
		for f.i < len(f.b) {
			op := f.byte()
			isLoop := op == 0x03
			if err := f.skipImmediates(op); err != nil {
				return nil, err
			}
			if isLoop {
				fn = append(fn, f.b[start:f.i]...)
				fn = append(fn, check...)
				start = f.i
			}
		}
		fn = append(fn, f.b[start:]...)
		out = appendU32(out, uint32(len(fn)))
		out = append(out, fn...)
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: code section: %w", errNotInstrumentable, r.err)
	}
	return out, nil
}

// skipImmediates moves past the immediates of instruction op.
func (r *reader) skipImmediates(op byte) error {
	switch {
	case op == 0x02 || op == 0x03 || op == 0x04 || op == 0x06: // block loop if try
		r.blockType()
	case op == 0x07 || op == 0x08 || op == 0x09 || op == 0x18: // catch throw rethrow delegate
		r.u32()
	case op == 0x1F: // try_table
		r.blockType()
		n := r.u32()
		for range n {
			kind := r.byte()
			if kind == 0 || kind == 1 {
				r.u32()
			}
			r.u32()
		}
	case op == 0x0C || op == 0x0D || op == 0x10 || op == 0x12 || op == 0xD2: // br br_if call return_call ref.func
		r.u32()
	case op == 0x0E: // br_table
		n := r.u32()
		for range n + 1 {
			r.u32()
		}
	case op == 0x11 || op == 0x13: // call_indirect return_call_indirect
		r.u32()
		r.u32()
	case op == 0x1C: // select t*
		n := r.u32()
		for range n {
			r.byte()
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
	case op == 0xD0: // ref.null
		r.byte()
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
		op == 0x1A || op == 0x1B || (op >= 0x45 && op <= 0xC4) || op == 0xD1:
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
		v |= uint32(c&0x7F) << shift
		if c&0x80 == 0 {
			return v
		}
	}
	if r.err == nil {
		r.err = errors.New("LEB128 integer too long")
	}
	return 0
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

func (r *reader) blockType() {
	if r.i < len(r.b) {
		switch r.b[r.i] {
		case 0x40, 0x7F, 0x7E, 0x7D, 0x7C, 0x7B, 0x70, 0x6F:
			r.i++
			return
		}
	}
	r.s64() // a type index, as s33
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
