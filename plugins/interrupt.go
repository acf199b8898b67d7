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

// maxLocals bounds the locals of one function: wazero's decoder and
// compiler allocate per local, and a function may declare 2^32 of them in
// six bytes. 50,000 is the web's limit (the JS API's "implementation
// limits"), which toolchains keep within.
const maxLocals = 50_000

var errTooManyLocals = errors.New("plugin has a function with too many locals")

// instrument returns wasm with the interrupt global and checks added. It
// walks what it must rewrite and checks what its additions could make
// valid (a global or function index beyond the module's, the start
// function's type, section order): a module wazero rejects either fails
// here or fails to compile instrumented, and one wazero compiles compiles
// instrumented and behaves the same (TestInstrumentSpecCorpus), except
// that its tables are bounded (see "Bounding tables") and claims beyond
// its bytes are refused (see walkedInvalid).
func instrument(wasm []byte) ([]byte, error) {
	return instrumentTicks(wasm, fuelTicks)
}

// Bounding tables.
//
// wazero allocates a table's elements when it is instantiated and when
// table.grow asks, up to the table's declared maximum, or 2^32-1 elements
// without one (the Go toolchain declares none): a grow by 100,000,000 took
// seconds, out of reach of the deadline (it runs in Go, not in the guest),
// and 800 MB. So instrument refuses a module whose tables declare more than
// MaxTableElements elements between them (errTablesTooLarge), and rewrites
// each table's maximum so that all of them together cannot grow past it:
// the limit's room beyond the declared sizes is shared evenly, so the one
// table real plugins have may grow to the limit. wazero then answers a
// grow past it with -1, as for any table at its maximum, and allocates
// nothing; table.fill, table.copy and table.init stay within a table's
// size, and so within the limit.

var errTablesTooLarge = errors.New("plugin's tables are over the host's limit")

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

// tripExport is where instrument exports the function its trip to Go
// names, in a module without memory that exports no function.
const tripExport = "weir_trip"

// module is what instrument learns about a module before rewriting its
// code. Every global index the module uses is checked against the globals
// it has: the two instrument adds must not turn an invalid module into a
// valid one in which the guest resets its own fuel or interrupt flag.
// Likewise a function reference in code must name a declared function.
type module struct {
	globals   uint32 // imported and defined, before instrument adds two
	funcs     uint32 // imported and defined
	hasMemory bool
	declared  map[uint32]bool // functions ref.func may name in code
	exported  map[uint32]bool // exported functions
	nullaries []bool          // by type index: does the function type take and return nothing
	tables    []table         // defined tables (the host offers none to import)
	funcTypes []uint32        // by function index (imported and defined): its type index
	// typesUnknown is set when the type section holds forms instrument
	// does not read.
	typesUnknown bool
	// invalid is the first index or name found wrong; the walk goes on,
	// so that the whole module's structure is checked (see walkedInvalid).
	invalid error
}

// refuse records err, a wrong index or name, unless one came before.
func (m *module) refuse(err error) {
	if m.invalid == nil {
		m.invalid = err
	}
}

func (m *module) nullary(typ uint32) bool {
	return m.typesUnknown || typ < uint32(len(m.nullaries)) && m.nullaries[typ]
}

func (m *module) typeSection(body []byte) error {
	r := reader{b: body}
	n := r.count()
	for range n {
		if form := r.byte(); form != 0x60 {
			// A form of a later proposal (a recursive group): the start
			// function's type goes unchecked.
			m.typesUnknown = true
			return nil
		}
		params := r.count()
		for range params {
			r.valType()
		}
		results := r.count()
		for range results {
			r.valType()
		}
		m.nullaries = append(m.nullaries, params == 0 && results == 0)
	}
	return r.err
}

func (m *module) funcSection(body []byte) error {
	r := reader{b: body}
	n := r.count()
	for range n {
		m.funcTypes = append(m.funcTypes, r.u32())
	}
	m.funcs += n
	return r.err
}

// first is the lowest function index in fs (or 0 and false).
func (m *module) first(fs map[uint32]bool) (uint32, bool) {
	first, ok := uint32(0), false
	for f, in := range fs {
		if in && (!ok || f < first) {
			first, ok = f, true
		}
	}
	return first, ok
}

func (m *module) imports(body []byte) error {
	r := reader{b: body}
	n := r.count()
	for range n {
		r.name()
		r.name()
		switch kind := r.byte(); kind {
		case 0: // func
			m.funcTypes = append(m.funcTypes, r.u32())
			m.funcs++
		case 1: // table
			r.valType()
			r.limits()
		case 2: // memory
			r.limits()
			m.hasMemory = true
		case 3: // global
			r.valType()
			r.byte()
			m.globals++
		case 4: // tag
			r.byte()
			r.u32()
		default:
			if r.err == nil {
				return fmt.Errorf("import kind %d", kind)
			}
		}
	}
	return r.err
}

// table is a table of the table section: where its limits are in the
// section's body, and what they say.
type table struct {
	at, end  int // the limits' bytes
	min, max uint32
	bounded  bool // a maximum is declared (limits flags 0x01)
	valid    bool // limits flags 0x00 or 0x01; wazero refuses others
}

func (m *module) tableSection(body []byte) error {
	r := reader{b: body}
	n := r.count()
	for range n {
		init := r.i+1 < len(r.b) && r.b[r.i] == 0x40 && r.b[r.i+1] == 0x00
		if init { // a table with an initializer (typed function references)
			r.skip(2)
		}
		r.valType()
		t := table{at: r.i}
		flags := r.byte()
		t.valid, t.bounded = flags <= 1, flags&1 != 0
		t.min = r.u32()
		if t.bounded {
			t.max = r.u32()
		}
		t.end = r.i
		m.tables = append(m.tables, t)
		if init {
			if err := m.constExpr(&r); err != nil {
				return err
			}
		}
	}
	return r.err
}

// boundTables returns the table section body with each table's maximum
// lowered so that together the tables hold at most limit elements (see
// "Bounding tables"); the declared sizes are within it.
func (m *module) boundTables(body []byte, limit uint32) []byte {
	if len(m.tables) == 0 {
		return body
	}
	var declared uint32
	for _, t := range m.tables {
		declared += t.min
	}
	room := (limit - declared) / uint32(len(m.tables))
	out := make([]byte, 0, len(body)+len(m.tables)*5)
	last := 0
	for _, t := range m.tables {
		max := t.min + room
		if !t.valid || t.bounded && t.max <= max {
			continue
		}
		out = append(out, body[last:t.at]...)
		out = append(out, 0x01)
		out = appendU32(out, t.min)
		out = appendU32(out, max)
		last = t.end
	}
	return append(out, body[last:]...)
}

func (m *module) globalSection(body []byte) error {
	r := reader{b: body}
	n := r.count()
	m.globals += n
	for range n {
		r.valType()
		r.byte()
		if err := m.constExpr(&r); err != nil {
			return err
		}
	}
	return r.err
}

func (m *module) exports(body []byte) error {
	r := reader{b: body}
	n := r.count()
	for range n {
		if name := r.name(); name == interruptExport || name == startExport || name == tripExport {
			m.refuse(fmt.Errorf("the module exports %q, a name the host reserves", name))
		}
		kind, idx := r.byte(), r.u32()
		switch kind {
		case 0:
			m.declared[idx] = true
			m.exported[idx] = true
		case 3:
			if idx >= m.globals && r.err == nil {
				m.refuse(fmt.Errorf("export of global %d, beyond the module's %d", idx, m.globals))
			}
		}
	}
	return r.err
}

func (m *module) elems(body []byte) error {
	r := reader{b: body}
	n := r.count()
	for range n {
		flags := r.u32()
		if flags > 7 {
			return fmt.Errorf("element segment flags %d", flags)
		}
		if flags&3 == 2 {
			r.u32() // table
		}
		if flags&1 == 0 { // active: an offset
			if err := m.constExpr(&r); err != nil {
				return err
			}
		}
		if flags&3 != 0 {
			if flags&4 != 0 {
				r.valType()
			} else {
				r.byte() // element kind
			}
		}
		items := r.count()
		for range items {
			if flags&4 != 0 {
				if err := m.constExpr(&r); err != nil {
					return err
				}
			} else {
				m.declared[r.u32()] = true
			}
		}
		if r.err != nil {
			return r.err
		}
	}
	return r.err
}

func (m *module) datas(body []byte) error {
	r := reader{b: body}
	n := r.count()
	for range n {
		switch flags := r.u32(); flags {
		case 2:
			r.u32() // memory
			fallthrough
		case 0:
			if err := m.constExpr(&r); err != nil {
				return err
			}
		case 1:
		default:
			return fmt.Errorf("data segment flags %d", flags)
		}
		r.skip(int(r.u32()))
	}
	return r.err
}

// tagSection walks the tags of the exception handling proposal.
func tagSection(body []byte) error {
	r := reader{b: body}
	n := r.count()
	for range n {
		r.byte() // attribute
		r.u32()  // type
	}
	return r.err
}

// customSection checks a custom section's name and, in the "name"
// section, every count and name wazero decodes, each within its
// subsection, which must hold nothing else: wazero reads the subsections
// it knows (module, function and local names) without their sizes, so
// the walk must read what it reads.
func customSection(body []byte) error {
	r := reader{b: body}
	if r.name() != "name" || r.err != nil {
		return r.err
	}
	for r.i < len(r.b) && r.err == nil {
		id, size := r.byte(), r.u32()
		if r.err != nil || int64(size) > int64(len(r.b)-r.i) {
			return fmt.Errorf("name section: truncated subsection %d", id)
		}
		sub := reader{b: r.b[r.i : r.i+int(size)]}
		r.i += int(size)
		switch id {
		case 0:
			sub.name()
		case 1, 2:
			n := sub.count()
			for range n {
				sub.u32()
				if id == 1 {
					sub.name()
					continue
				}
				locals := sub.count()
				for range locals {
					sub.u32()
					sub.name()
				}
			}
		default:
			continue
		}
		if sub.err != nil {
			return fmt.Errorf("name section: subsection %d: %w", id, sub.err)
		}
		if sub.i != len(sub.b) {
			return fmt.Errorf("name section: subsection %d holds %d bytes beyond its entries", id, len(sub.b)-sub.i)
		}
	}
	return r.err
}

// constExpr walks an initializer up to its end.
func (m *module) constExpr(r *reader) error {
	for {
		op := r.byte()
		if r.err != nil {
			return r.err
		}
		if op == 0x0B {
			return nil
		}
		if err := m.instruction(r, op, false); err != nil {
			return err
		}
	}
}

// instruction moves past op's immediates, refusing a global the module
// does not have. A ref.func outside code declares its function; one in
// code must name a declared function.
func (m *module) instruction(r *reader, op byte, inCode bool) error {
	switch op {
	case 0x23, 0x24: // global.get, global.set
		if g := r.u32(); r.err == nil && g >= m.globals {
			m.refuse(fmt.Errorf("global %d, beyond the module's %d", g, m.globals))
		}
	case 0xD2: // ref.func
		f := r.u32()
		if !inCode {
			m.declared[f] = true
		} else if r.err == nil && !m.declared[f] {
			m.refuse(fmt.Errorf("undeclared function reference %d", f))
		}
	default:
		return r.skipImmediates(op)
	}
	if r.err != nil {
		return fmt.Errorf("%w: %w", errNotInstrumentable, r.err)
	}
	return nil
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
