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
//	  memory.grow(0)          ;; returns to Go for a moment (see fuelTicks);
//	                          ;; ref.func in a module without memory
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

// walkedInvalid wraps what instrument found wrong in a module it walked to
// its end: every section, count, size and instruction is within the
// module's bytes, only an index or a name is wrong. wazero may decode
// such a module to say why it rejects it. Any other error may come from
// a module claiming more than it holds (2^32 functions, locals or name
// entries in a few bytes), which wazero's decoder allocates for before
// noticing, so the host never hands it to wazero.
type walkedInvalid struct{ error }

// instrument returns wasm with the interrupt global and checks added. It
// walks what it must rewrite and checks what its additions could make
// valid (a global or function index beyond the module's, the start
// function's type, section order): a module wazero rejects either fails
// here or fails to compile instrumented, and one wazero compiles compiles
// instrumented and behaves the same (TestInstrumentSpecCorpus), except
// that its tables are bounded (see "Bounding tables" in
// interrupt_limits.go) and claims beyond its bytes are refused (see
// walkedInvalid).
func instrument(wasm []byte) ([]byte, error) {
	return instrumentTicks(wasm, fuelTicks)
}

// instrumentTicks is instrument with ticks checks between trips to Go
// (tests use a small number to take the trip path often).
func instrumentTicks(wasm []byte, ticks int32) ([]byte, error) {
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

	// Learn the module's globals, functions and memory, checking every
	// global index outside the code on the way: sections come in order,
	// so the count of globals is complete before any use. order gives each
	// known section id its place: a module with sections out of order, or
	// twice, is invalid and must stay so (instrument drops the start
	// section, and may add global and export sections).
	order := map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}
	m := module{declared: map[uint32]bool{}, exported: map[uint32]bool{}}
	hasGlobal, hasExport := false, false
	start, hasStart := uint32(0), false
	last := 0
	for _, s := range sections {
		if s.id != 0 {
			o, ok := order[s.id]
			if !ok || o <= last {
				return nil, fmt.Errorf("%w: section %d out of order or unknown", errNotInstrumentable, s.id)
			}
			last = o
		}
		var err error
		switch s.id {
		case 0:
			err = customSection(s.body)
		case 1:
			err = m.typeSection(s.body)
		case 2:
			err = m.imports(s.body)
		case 3:
			err = m.funcSection(s.body)
		case 4:
			err = m.tableSection(s.body)
		case 5:
			sr := reader{b: s.body}
			m.hasMemory = m.hasMemory || sr.u32() > 0
		case 6:
			hasGlobal = true
			err = m.globalSection(s.body)
		case 7:
			hasExport = true
			err = m.exports(s.body)
		case 8:
			sr := reader{b: s.body}
			start, hasStart = sr.u32(), true
			err = sr.err
		case 9:
			err = m.elems(s.body)
		case 11:
			err = m.datas(s.body)
		case 13:
			err = tagSection(s.body)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: section %d: %w", errNotInstrumentable, s.id, err)
		}
	}
	if hasStart && (start >= uint32(len(m.funcTypes)) || !m.nullary(m.funcTypes[start])) {
		m.refuse(fmt.Errorf("start function %d does not exist or takes parameters or returns results", start))
	}
	var tableElems uint64
	for _, t := range m.tables {
		tableElems += uint64(t.min)
	}
	if tableElems > MaxTableElements {
		return nil, fmt.Errorf("%w: they declare %d table elements, the limit is %d", errTablesTooLarge, tableElems, MaxTableElements)
	}
	interrupt, fuel := m.globals, m.globals+1

	// The trip to Go is memory.grow(0), or in a module without memory
	// ref.func of a function the module exports. If it exports none,
	// instrument exports one it declares otherwise (in a table, say), or
	// function 0, which the module's code then cannot name (its
	// reference would be invalid without the export). Both trips are
	// served in Go by wazero's compiler.
	trip := []byte{0x41, 0x00, 0x40, 0x00, 0x1A} // i32.const 0; memory.grow 0; drop
	var exportTrip bool
	var tripFunc uint32
	if !m.hasMemory && m.funcs > 0 {
		f, ok := m.first(m.exported)
		if !ok {
			f, _ = m.first(m.declared)
			exportTrip = true
		}
		trip = append(appendU32([]byte{0xD2}, f), 0x1A) // ref.func f; drop
		tripFunc = f
	}

	// mut i32 = 0 (the interrupt flag), mut i32 = ticks (the countdown)
	newGlobal := []byte{0x7F, 0x01, 0x41, 0x00, 0x0B, 0x7F, 0x01, 0x41}
	newGlobal = appendS32(newGlobal, ticks)
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
	if exportTrip {
		newExport = appendName(newExport, tripExport)
		newExport = append(newExport, 0x00) // func
		newExport = appendU32(newExport, tripFunc)
		nExports++
	}

	out := append([]byte(nil), wasm[:8]...)
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	// Insert missing global and export sections where the binary format
	// wants them.
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
		case 4:
			emit(4, m.boundTables(s.body, MaxTableElements))
		case 8: // moved to startExport
		case 7:
			emit(7, appendItems(s.body, nExports, newExport))
		case 10:
			body, err := m.instrumentCode(s.body, interrupt, fuel, ticks, trip)
			if err != nil {
				return nil, err
			}
			emit(10, body)
		default:
			emit(s.id, s.body)
		}
	}
	addMissing(0)
	if m.invalid != nil {
		return nil, fmt.Errorf("%w: %w", errNotInstrumentable, walkedInvalid{m.invalid})
	}
	return out, nil
}

// instrumentCode rewrites every function body of a code section; trip is
// the instructions that return to Go.
func (m *module) instrumentCode(body []byte, interrupt, fuel uint32, ticks int32, trip []byte) ([]byte, error) {
	g := func(op byte, idx uint32) []byte { return appendU32([]byte{op}, idx) }
	var check []byte
	check = append(check, g(0x23, fuel)...)       // global.get $fuel
	check = append(check, 0x41, 0x01, 0x6B)       // i32.const 1; i32.sub
	check = append(check, g(0x24, fuel)...)       // global.set $fuel
	check = append(check, g(0x23, fuel)...)       // global.get $fuel
	check = append(check, 0x45, 0x04, 0x40, 0x41) // i32.eqz; if; i32.const
	check = appendS32(check, ticks)               //   ticks
	check = append(check, g(0x24, fuel)...)       //   global.set $fuel
	check = append(check, trip...)                //   a trip to Go
	check = append(check, g(0x23, interrupt)...)  //   global.get $interrupt
	check = append(check, 0x04, 0x40, 0x00, 0x0B) //   if unreachable end
	check = append(check, 0x0B)                   // end

	r := reader{b: body}
	n := r.count()
	out := appendU32(make([]byte, 0, len(body)+len(body)/8), n)
	var fn []byte
	for range n {
		size := r.u32()
		if r.err != nil || int(size) > len(r.b)-r.i {
			return nil, fmt.Errorf("%w: truncated function body", errNotInstrumentable)
		}
		f := reader{b: r.b[r.i : r.i+int(size)]}
		r.i += int(size)

		nLocals := f.count()
		var locals uint64
		for range nLocals {
			locals += uint64(f.u32())
			f.valType()
		}
		if f.err != nil {
			return nil, fmt.Errorf("%w: locals: %w", errNotInstrumentable, f.err)
		}
		if locals > maxLocals {
			return nil, fmt.Errorf("%w: it declares %d, the limit is %d", errTooManyLocals, locals, maxLocals)
		}
		fn = append(fn[:0], f.b[:f.i]...)
		fn = append(fn, check...)
		start := f.i
		for f.i < len(f.b) {
			op := f.byte()
			if err := m.instruction(&f, op, true); err != nil {
				return nil, err
			}
			if op == 0x03 { // loop
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

// appendItems adds n items to a vector section body (count, items...).
func appendItems(body []byte, n uint32, items []byte) []byte {
	r := reader{b: body}
	count := r.u32()
	out := appendU32(nil, count+n)
	out = append(out, body[r.i:]...)
	return append(out, items...)
}

// tripExport is where instrument exports the function its trip to Go
// names, in a module without memory that exports no function.
const tripExport = "weir_trip"
