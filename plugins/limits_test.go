package plugins

import (
	"bytes"
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/weirerr"
)

// TestOutputLimit pins issue 11 defect 5: a plugin's output is capped
// (default 1 MiB); past it the call fails with a clear Upstream (502) error
// that names the size and the limit and echoes none of the output.
func TestOutputLimit(t *testing.T) {
	h := newHost(t, Options{PoolSize: 1})
	load(t, h, "bigoutput", Limits{})
	// bigoutput answers 1 KiB per input byte.
	out, err := h.Call(context.Background(), "bigoutput", "1", nil, bytes.Repeat([]byte(" "), 1000))
	if err != nil || len(out) != 1000<<10 {
		t.Fatalf("a 1000 KiB output: %d bytes, %v", len(out), err)
	}
	_, err = h.Call(context.Background(), "bigoutput", "1", nil, bytes.Repeat([]byte(" "), 1025))
	wantErr(t, err, weirerr.Upstream, `"bigoutput@1"`, "1049600 bytes", "limit of 1048576 bytes")
	if len(err.Error()) > 300 || bytes.Contains([]byte(err.Error()), []byte("big")) && bytes.Contains([]byte(err.Error()), []byte(`{"big"`)) {
		t.Errorf("error echoes the output: %.300s", err)
	}
	// The instance is still good.
	if out, err := h.Call(context.Background(), "bigoutput", "1", nil, []byte("{}")); err != nil || len(out) != 2048 {
		t.Errorf("call after the refused output: %d bytes, %v", len(out), err)
	}

	small := newHost(t, Options{PoolSize: 1, MaxOutputBytes: 4096})
	load(t, small, "bigoutput", Limits{})
	_, err = small.Call(context.Background(), "bigoutput", "1", nil, []byte("12345"))
	wantErr(t, err, weirerr.Upstream, "5120 bytes", "limit of 4096 bytes")
}

// within runs f and fails the test if it has not returned after limit: a
// guest that ignores its deadline would otherwise hang the test binary.
func within(t *testing.T, limit time.Duration, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		t.Fatalf("%s still running after %s: the deadline did not reach it", what, limit)
		return nil
	}
}

// TestDeadlinesReachEveryGuestEntry pins issue 11 defect 8: a guest
// sleeping in WASI poll_oneoff, a start section that loops and a
// weir_abi_version that loops are all stopped by a deadline.
func TestDeadlinesReachEveryGuestEntry(t *testing.T) {
	h := newHost(t, Options{PoolSize: 1})
	load(t, h, "sleep", Limits{Timeout: 300 * time.Millisecond})
	err := within(t, 20*time.Second, "a call sleeping for an hour", func() error {
		_, err := h.Call(context.Background(), "sleep", "1", nil, []byte(`{}`))
		return err
	})
	wantErr(t, err, weirerr.Upstream, "deadline of 300ms exceeded")

	for _, c := range []struct{ name, want string }{
		{"startloop", "did not return within"},
		{"abiloop", "weir_abi_version did not return within"},
	} {
		err := within(t, 30*time.Second, "validating "+c.name, func() error {
			return h.Validate(context.Background(), wasmFile(t, c.name))
		})
		wantErr(t, err, weirerr.Invalid, c.want)
	}
}

// TestRandomIsRandom pins part of issue 11 defect 10: WASI random_get is
// real randomness, not wazero's deterministic default (the same bytes in
// every instance).
func TestRandomIsRandom(t *testing.T) {
	seen := map[string]bool{}
	for range 3 {
		h := newHost(t, Options{PoolSize: 1})
		load(t, h, "random", Limits{})
		out, err := h.Call(context.Background(), "random", "1", nil, []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		r := decode(t, out)["r"].(string)
		if seen[r] {
			t.Fatalf("two fresh instances drew the same random bytes %s", r)
		}
		seen[r] = true
	}
}

// allocated runs f and returns the bytes the process allocated meanwhile
// (cumulative, so memory freed again still counts).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// tableAllocBound is the most a refused table.grow may cost: the tables
// the limit allows (MaxTableElements references, under a megabyte) and the
// instance around them, with room for the test's own work.
const tableAllocBound = 64 << 20

// TestTableGrowLimit pins issue 25 defect 4: table.grow by 100,000,000
// elements took 8.7 s against a 20 ms deadline and +1.5 GB in weir_call,
// and held an upload for 8 s and +760 MB in _initialize. A grow past
// MaxTableElements now fails (-1, which the guest sees) without allocating,
// wherever it runs, and a table declared larger is refused at upload.
func TestTableGrowLimit(t *testing.T) {
	h := newHost(t, Options{PoolSize: 1})
	load(t, h, "tablegrow", Limits{})
	var err error
	n := allocated(func() {
		err = within(t, 30*time.Second, "a call growing its table by 100,000,000", func() error {
			_, err := h.Call(context.Background(), "tablegrow", "1", nil, []byte(`{}`))
			return err
		})
	})
	// The guest saw -1 and said so: not a deadline, not a trap.
	wantErr(t, err, weirerr.Upstream, "failed (status 2): table.grow by 100000000 returned -1")
	if n > tableAllocBound {
		t.Errorf("the call allocated %d MiB, want at most %d", n>>20, tableAllocBound>>20)
	}

	n = allocated(func() {
		err = within(t, 30*time.Second, "an upload growing its table by 100,000,000 in _initialize", func() error {
			return h.Validate(context.Background(), wasmFile(t, "tablegrowinit"))
		})
	})
	if err != nil {
		t.Errorf("_initialize's table.grow was not refused: %v", err)
	}
	if n > tableAllocBound {
		t.Errorf("the upload allocated %d MiB, want at most %d", n>>20, tableAllocBound>>20)
	}

	// Several tables share the limit.
	load(t, h, "tabletwo", Limits{})
	_, err = h.Call(context.Background(), "tabletwo", "1", nil, []byte(`{}`))
	wantErr(t, err, weirerr.Upstream, "returned status 0 without calling set_output")

	// A table declared above the limit is refused, naming it.
	err = h.Validate(context.Background(), wasmFile(t, "tablebig"))
	wantErr(t, err, weirerr.Invalid, "tables are over the host's limit", "100000001 table elements", "the limit is 100000")
}

// TestBulkMemoryStaysInBounds checks that memory.fill and memory.copy
// cannot reach past the memory limit as table.grow reached past the
// table's (issue 25 defect 4): a length beyond the guest's memory traps
// out of bounds and allocates nothing.
func TestBulkMemoryStaysInBounds(t *testing.T) {
	h := newHost(t, Options{PoolSize: 1})
	load(t, h, "bulkmem", Limits{})
	for _, input := range []string{"1", "{}"} {
		var err error
		n := allocated(func() {
			_, err = h.Call(context.Background(), "bulkmem", "1", nil, []byte(input))
		})
		wantErr(t, err, weirerr.Upstream, "trapped: ", "out of bounds memory access")
		if n > tableAllocBound {
			t.Errorf("input %s: the call allocated %d MiB, want at most %d", input, n>>20, tableAllocBound>>20)
		}
	}
}

// TestValidateRefusesClaimsBeyondItsBytes: a module of a few bytes may
// claim 2^32 functions, tables, exports, tags, name entries or locals, or
// a 4 GiB name. The rewriter walked such claims item by item (a 15-byte
// upload ran the host out of memory), and wazero's decoder allocates for
// them before reading the items: refused from the bytes alone (issue 25:
// what an upload costs is bounded by its bytes).
func TestValidateRefusesClaimsBeyondItsBytes(t *testing.T) {
	h := newHost(t, Options{PoolSize: 1})
	huge := []byte{0xff, 0xff, 0xff, 0xff, 0x0f} // 2^32-1
	section := func(id byte, body ...[]byte) []byte {
		b := bytes.Join(body, nil)
		return append(append([]byte{id}, appendU32(nil, uint32(len(b)))...), b...)
	}
	module := func(sections ...[]byte) []byte {
		return append([]byte("\x00asm\x01\x00\x00\x00"), bytes.Join(sections, nil)...)
	}
	body := func(b ...[]byte) []byte { // a function body, sized
		j := bytes.Join(b, nil)
		return append(appendU32(nil, uint32(len(j))), j...)
	}
	for _, c := range []struct {
		name  string
		wasm  []byte
		parts []string
	}{
		{"functions", module(section(3, huge)), []string{"not a valid WebAssembly module", "a vector of 4294967295 items in 0 bytes"}},
		{"tables", module(section(4, huge)), []string{"not a valid WebAssembly module"}},
		{"exports", module(section(7, huge)), []string{"not a valid WebAssembly module"}},
		{"tags", module(section(13, huge)), []string{"not a valid WebAssembly module"}},
		{"a custom section's name", module(section(0, huge)), []string{"not a valid WebAssembly module"}},
		{"function names", module(section(0, []byte("\x04name\x01\x05"), huge)), []string{"not a valid WebAssembly module", "name section"}},
		{"local names", module(section(0, []byte("\x04name\x02\x07\x01\x00"), huge)), []string{"not a valid WebAssembly module", "name section"}},
		{"locals", module(section(1, []byte{1, 0x60, 0, 0}), section(3, []byte{1, 0}),
			section(10, []byte{1}, body([]byte{1}, huge, []byte{0x7f, 0x0b}))),
			[]string{"too many locals", "declares 4294967295, the limit is 50000"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var err error
			n := allocated(func() {
				err = within(t, 30*time.Second, "validating "+c.name, func() error {
					return h.Validate(context.Background(), c.wasm)
				})
			})
			wantErr(t, err, weirerr.Invalid, c.parts...)
			if n > tableAllocBound {
				t.Errorf("validating %d bytes allocated %d MiB, want at most %d", len(c.wasm), n>>20, tableAllocBound>>20)
			}
		})
	}
}
