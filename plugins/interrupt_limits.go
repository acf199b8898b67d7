// Limits the module rewriter enforces on what it instruments, beyond
// wazero's own: tables bounded to MaxTableElements (see "Bounding tables"
// below) and locals per function bounded to maxLocals.

package plugins

import (
	"errors"
)

// maxLocals bounds the locals of one function: wazero's decoder and
// compiler allocate per local, and a function may declare 2^32 of them in
// six bytes. 50,000 is the web's limit (the JS API's "implementation
// limits"), which toolchains keep within.
const maxLocals = 50_000

var errTooManyLocals = errors.New("plugin has a function with too many locals")

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
