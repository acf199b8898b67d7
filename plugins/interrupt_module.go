// What the module rewriter learns about a module before rewriting it: the
// section walkers that fill module, and the checks that keep an invalid
// module from becoming valid once instrumented (see module).

package plugins

import (
	"fmt"
)

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
