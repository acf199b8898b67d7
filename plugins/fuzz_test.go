package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/weirerr"
)

// FuzzPluginOutput fuzzes the plugin output path: wat-echo sets its input
// as its output, so the fuzzer chooses exactly what a guest hands the host.
// A call must answer the output unchanged when it is a JSON object within
// the output cap, and otherwise fail as Upstream without echoing a large
// output back; the instance must stay usable either way.
func FuzzPluginOutput(f *testing.F) {
	const maxOut = 4096
	for _, seed := range []string{
		`{}`, `{"score":0.5,"decision":"allow"}`, `  {"a":[1,2,3]}`, `[1,2]`, `"str"`, `null`, ``, `{`,
		`{"a":"` + string(bytes.Repeat([]byte("x"), maxOut)) + `"}`, // over the cap
		`{"a":NaN}`, `{"a":1e999}`, "\xff{}", "{\x00}",
	} {
		f.Add([]byte(seed))
	}
	h := newHost(f, Options{PoolSize: 1, MaxOutputBytes: maxOut})
	load(f, h, "wat-echo", Limits{})
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := h.Call(context.Background(), "wat-echo", "1", nil, in)
		if err != nil {
			if k := weirerr.KindOf(err); k != weirerr.Upstream {
				t.Fatalf("error of kind %d: %v", k, err)
			}
			if len(err.Error()) > 512 {
				t.Fatalf("error of %d bytes echoes the output", len(err.Error()))
			}
			if isObject(in) && len(in) <= maxOut {
				t.Fatalf("a %d-byte object output was refused: %v", len(in), err)
			}
			return
		}
		if !bytes.Equal(out, in) || !isObject(out) || len(out) > maxOut {
			t.Fatalf("accepted output %q for input %q", out, in)
		}
		// What the gateway does next (runChain) must not panic either.
		var row map[string]any
		_ = json.Unmarshal(out, &row)
	})
}

// FuzzValidate fuzzes what an upload hands the host: any bytes are either
// a plugin or refused as Invalid, never a crash, and validating them
// allocates a bounded amount whatever they claim (issue 25: a 15-byte
// module claiming 2^32 functions ran the host out of memory).
func FuzzValidate(f *testing.F) {
	for _, name := range []string{"wat-echo", "grow", "tablegrow", "tabletwo", "guesterr", "startloop", "reserved"} {
		f.Add(wasmFile(f, name))
	}
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x03\x05\xff\xff\xff\xff\x0f"))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x00\x0c\x04name\x01\x05\xff\xff\xff\xff\x0f"))
	h := newHost(f, Options{PoolSize: 1, Limits: Limits{Timeout: 50 * time.Millisecond}})
	f.Fuzz(func(t *testing.T, wasm []byte) {
		var err error
		n := allocated(func() { err = h.Validate(context.Background(), wasm) })
		if err != nil && weirerr.KindOf(err) != weirerr.Invalid {
			t.Fatalf("error of kind %d: %v", weirerr.KindOf(err), err)
		}
		// The instance's memory (16 MiB at most) and tables (under 1 MiB),
		// and the compiled code, which grows with the module's bytes.
		if limit := uint64(64<<20 + 1024*len(wasm)); n > limit {
			t.Fatalf("validating %d bytes allocated %d MiB", len(wasm), n>>20)
		}
	})
}
