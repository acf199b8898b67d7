package plugin

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// jsonSeeds are inputs where a hand-written decoder and encoding/json have
// disagreed or could: leading zeros, invalid UTF-8, lone and paired
// surrogates, duplicate keys, deep nesting, huge numbers, trailing data.
var jsonSeeds = []string{
	`{}`, `{"a":1}`, `{"a":01}`, `{"a":-01.5}`, `{"a":-0}`, `{"a":0.5e-3}`, `{"a":1e400}`,
	`{"a":-}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":+1}`,
	"{\"a\":\"\xff\xfe\"}", "{\"\xc3\x28\":1}", `{"a":"\ud83d\ude00"}`, `{"a":"\ud83d"}`,
	`{"a":"\ud83d\u0041"}`, `{"a":"\ude00\ud83d"}`, `{"a":"\u00e9\/\b\f\n\r\t"}`,
	`{"a":1,"a":2}`, `{"a":[1,[2,[3,{"b":null}]]]}`, `{"a":true,"b":false,"c":null}`,
	`{"a":1} x`, `{"a":1}}`, ` {"a" : [ ] } `, `{"a":"\x01"}`, `{"a":tru}`, `[1]`, `null`,
	`{"a":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`,
}

// FuzzDecodeObject checks DecodeObject against encoding/json: both accept
// the same JSON objects and produce the same values, or both refuse.
func FuzzDecodeObject(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeObject(b)
		if !bytes.HasPrefix(bytes.TrimLeft(b, " \t\r\n"), []byte("{")) {
			if err == nil {
				t.Fatalf("DecodeObject(%q) accepted a value that is not an object", b)
			}
			return
		}
		var want map[string]any
		werr := json.Unmarshal(b, &want)
		if err != nil && strings.Contains(err.Error(), "nesting too deep") {
			return // a limit of ours that encoding/json sets higher
		}
		if (err == nil) != (werr == nil) {
			t.Fatalf("DecodeObject(%q) error %v; encoding/json error %v", b, err, werr)
		}
		if err == nil && !reflect.DeepEqual(map[string]any(got), want) {
			t.Fatalf("DecodeObject(%q) = %#v; encoding/json gives %#v", b, got, want)
		}
		if err == nil {
			// What decodes must encode to JSON that decodes to the same.
			out, err := AppendJSON(nil, map[string]any(got))
			if err != nil {
				t.Fatalf("AppendJSON of decoded %q: %v", b, err)
			}
			var back map[string]any
			if err := json.Unmarshal(out, &back); err != nil || !reflect.DeepEqual(back, want) {
				t.Fatalf("AppendJSON(%q) = %s, which decodes to %#v (%v)", b, out, back, err)
			}
		}
	})
}
