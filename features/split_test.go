package features

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestSplitArray(t *testing.T) {
	els, err := splitArray([]byte(` [ {"a":1} , {"b":"]"},3, "x" ] `))
	if err != nil || len(els) != 4 || string(els[1]) != `{"b":"]"}` || string(els[2]) != "3" {
		t.Errorf("splitArray = %q, %v", els, err)
	}
	// A broken event is cut out whole, for decodeEvent to refuse alone.
	els, err = splitArray([]byte(`[{"a":1},{"b":},{"c":2}]`))
	if err != nil || len(els) != 3 || string(els[1]) != `{"b":}` {
		t.Errorf("splitArray = %q, %v", els, err)
	}
	for _, in := range []string{`[`, `[{"a":1}`, `[1 2]`, `[1,]`, `{}`, `[] x`, `[01]`, `[tru]`, `["a` + "\x01" + `"]`} {
		if _, err := splitArray([]byte(in)); err == nil {
			t.Errorf("splitArray(%q) accepted invalid JSON", in)
		}
	}
}

// decodeEvent keeps numbers exact (json.Number) and refuses what is not
// one JSON object; internal/jsonx's tests hold its decoder to encoding/json.
func TestDecodeEvent(t *testing.T) {
	ev, e := decodeEvent([]byte(`{"id":123456789012345678901234567890,"x":{"y":[1.50]}}`))
	if e != nil || ev["id"] != json.Number("123456789012345678901234567890") ||
		!reflect.DeepEqual(ev["x"], map[string]any{"y": []any{json.Number("1.50")}}) {
		t.Errorf("decodeEvent = %#v, %v", ev, e)
	}
	for _, in := range []string{``, `null`, `[]`, `"s"`, `{"a":1} x`, `{"a":1,}`} {
		if _, e := decodeEvent([]byte(in)); e == nil || e.reason != ReasonBadJSON {
			t.Errorf("decodeEvent(%q) = %v, want a %s rejection", in, e, ReasonBadJSON)
		}
	}
}
