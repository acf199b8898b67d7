package features

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

func stdDecode(b []byte) (map[string]any, error) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errSyntax
	}
	return m, nil
}

func TestParseObject(t *testing.T) {
	good := []string{
		`{}`, ` { } `, `{"a":1}`, `{"a":-1.5e+3,"b":"x","c":true,"d":false,"e":null}`,
		`{"s":"q\"uo\\te\u00e9\n","ü":"é"}`, `{"n":{"x":[1,{"y":"]}"}]},"arr":[1,"a",null]}`,
		`{"a":1,"a":2}`, `{"z":0,"big":123456789012345678901234567890}`, "{\"t\":\t\"x\"\n}",
	}
	for _, in := range good {
		want, err := stdDecode([]byte(in))
		if err != nil {
			t.Fatalf("bad test input %s: %v", in, err)
		}
		got, err := parseObject([]byte(in))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parseObject(%s) = %#v, %v; want %#v", in, got, err, want)
		}
	}
	bad := []string{``, `[]`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":01}`, `{"a":1.}`, `{"a":-}`, `{"a":tru}`,
		`{"a":"x}`, `{"a":1} x`, `{a:1}`, `{"a":1 "b":2}`, "{\"a\":\"\x01\"}", `{"a":+1}`, `{"a":.5}`, `{"a":[1,2}`}
	for _, in := range bad {
		if _, err := parseObject([]byte(in)); err == nil {
			t.Errorf("parseObject(%q) accepted invalid JSON", in)
		}
	}
}

func TestSplitArray(t *testing.T) {
	els, err := splitArray([]byte(` [ {"a":1} , {"b":"]"},3, "x" ] `))
	if err != nil || len(els) != 4 || string(els[1]) != `{"b":"]"}` || string(els[2]) != "3" {
		t.Errorf("splitArray = %q, %v", els, err)
	}
	for _, in := range []string{`[`, `[{"a":1}`, `[1 2]`, `[1,]`, `{}`, `[] x`} {
		if _, err := splitArray([]byte(in)); err == nil {
			t.Errorf("splitArray(%q) accepted invalid JSON", in)
		}
	}
}

// FuzzParseObject checks parseObject against encoding/json with UseNumber:
// the same objects accepted with the same values, the same inputs refused.
func FuzzParseObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `{"a":01}`, `{"a":-01.5}`, `{"a":-0.0e+1}`, "{\"a\":\"\xff\"}",
		`{"a":"\ud83d"}`, `{"a":"\ud83d\ude00"}`, `{"a":1,"a":2}`, `{"n":{"x":[1,{"y":"]}"}]}}`, `{"a":1} x`,
		`{"a":[1,2}`, `{"a":1,}`, `{"big":123456789012345678901234567890}`, `{"a":"\x01"}`, `[]`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseObject(b)
		want, werr := stdDecode(b)
		if werr == nil && want == nil {
			werr = errSyntax // `null` decodes to a nil map, but is no object
		}
		if (err == nil) != (werr == nil) {
			t.Fatalf("parseObject(%q) error %v; encoding/json error %v", b, err, werr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("parseObject(%q) = %#v; encoding/json gives %#v", b, got, want)
		}
	})
}
