package plugins

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// Every plugin the tests build instruments into a module wazero accepts,
// with the interrupt global exported and a check in each function.
func TestInstrumentProducesValidModules(t *testing.T) {
	ctx := context.Background()
	rt := newHost(t, Options{PoolSize: 1}).rt // offers the imports; shares the test compilation cache
	check := []byte{0x04, 0x40, 0x00, 0x0B}   // if unreachable end
	for _, name := range []string{"wat-echo", "loop", "grow", "stdout", "c-normalize", "fraud-features", "decision", "goplugin"} {
		wasm := wasmFile(t, name)
		out, err := instrument(wasm)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cm, err := rt.CompileModule(ctx, out)
		if err != nil {
			t.Fatalf("%s: instrumented module does not compile: %v", name, err)
		}
		mod, err := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName("").WithStartFunctions())
		if err != nil {
			t.Fatalf("%s: instrumented module does not instantiate: %v", name, err)
		}
		if _, ok := mod.ExportedGlobal(interruptExport).(api.MutableGlobal); !ok {
			t.Errorf("%s: no mutable %s export", name, interruptExport)
		}
		mod.Close(ctx)
		orig, err := rt.CompileModule(ctx, wasm)
		if err != nil {
			t.Fatal(err)
		}
		if n, fns := bytes.Count(out, check), len(orig.ExportedFunctions()); n < fns {
			t.Errorf("%s: %d checks for at least %d functions", name, n, fns)
		}
	}
}

func TestInstrumentRejectsGarbage(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("\x00asm\x01\x00\x00\x00\x0a\xff"), []byte("\x00asm\x01\x00\x00\x00\x0a\x03\x01\x05\x00")} {
		if _, err := instrument(b); !errors.Is(err, errNotInstrumentable) {
			t.Errorf("instrument(%q) = %v, want errNotInstrumentable", b, err)
		}
	}
}

func hexModule(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// What instrument adds (two globals, exports, a function reference) must
// not make an invalid module valid: the worst case is a guest that writes
// the fuel countdown or the interrupt flag and so never meets its
// deadline. Each module here is one wazero rejects (found by the spec
// corpus, corpus_test.go); instrument must refuse it too, and the host then
// reports wazero's verdict on the original.
func TestInstrumentKeepsInvalidModulesInvalid(t *testing.T) {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	for _, c := range []struct{ name, wasm string }{
		// (memory 1) (func (loop (global.set 1 (i32.const 100)) (br 0))):
		// global 1 is the fuel countdown once instrumented.
		{"sets the fuel global", "0061736d01000000010401600000030201000503010001071102066d656d6f72790200047370696e00000a0e010c00034041e40024010c000b0b"},
		// (memory 1) (export "flag" (global 0)) with no globals
		{"exports the interrupt global", "0061736d01000000050301000107080104666c61670300"},
		// (func $f (param i32)) (start $f): instrument moves the start
		// section to an export, where the signature is not checked
		{"start function with a parameter", "0061736d0100000001050160017f00030201000801000a040102000b"},
		// (func (loop (br 0))) (start 0) (start 0)
		{"two start sections", "0061736d01000000010401600000030201000801000801000a0901070003400c000b0b"},
		// a custom section whose size overflows 32 bits
		{"section size over 32 bits", "0061736d01000000008080808010"},
		// (func (result funcref) (ref.func 0)) without memory: instrument
		// exports function 0 for its trip to Go, declaring it
		{"undeclared function reference", "0061736d0100000001050160000170030201000a06010400d2000b"},
	} {
		wasm := hexModule(t, c.wasm)
		if _, err := rt.CompileModule(ctx, wasm); err == nil {
			t.Fatalf("%s: wazero accepts the module", c.name)
		}
		out, err := instrument(wasm)
		if err == nil {
			_, cerr := rt.CompileModule(ctx, out)
			t.Errorf("%s: instrument accepts the module (then wazero says %v)", c.name, cerr)
		} else if !errors.Is(err, errNotInstrumentable) {
			t.Errorf("%s: %v, want errNotInstrumentable", c.name, err)
		}
	}
}

// A module without memory has no memory.grow for its trip to Go; it takes
// a function reference instead (wazero serves ref.func in Go), and its
// deadline still stops it.
func TestInstrumentWithoutMemory(t *testing.T) {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	for _, c := range []struct{ name, wasm, call string }{
		// (func (export "spin") (loop (br 0)))
		{"exported loop", "0061736d0100000001040160000003020100070801047370696e00000a0901070003400c000b0b", "spin"},
		// (func $spin (loop (br 0))) (start $spin): nothing exported
		{"looping start function", "0061736d01000000010401600000030201000801000a0901070003400c000b0b", startExport},
	} {
		out, err := instrument(hexModule(t, c.wasm))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		cm, err := rt.CompileModule(ctx, out)
		if err != nil {
			t.Fatalf("%s: instrumented module does not compile: %v", c.name, err)
		}
		mod, err := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName("").WithStartFunctions())
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		mod.ExportedGlobal(interruptExport).(api.MutableGlobal).Set(1)
		if _, err := mod.ExportedFunction(c.call).Call(ctx); err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Errorf("%s: interrupted call returned %v, want the unreachable trap", c.name, err)
		}
		mod.Close(ctx)
	}
}
