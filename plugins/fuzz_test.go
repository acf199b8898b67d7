package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

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
