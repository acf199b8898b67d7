package plugins

import (
	"bytes"
	"context"
	"errors"
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
