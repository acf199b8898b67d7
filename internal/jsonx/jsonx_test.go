package jsonx

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

var cases = []string{
	`{"account_id":"acct-42","amount":120.5,"merchant":"m1","ts":1764039600,"tags":["a",1,true,null,{"x":[]}],"n":-0.5e-3}`,
	`{"a":1,"a":2}`,
	`{"s":"\u00e9\"\\\/\b\f\n\r\t\ud83d\ude00","bad":"caf` + "\xe9" + `"}`,
	` {} `,
	`null`,
	`{"big":1e400}`, `{"z":0,"big":123456789012345678901234567890}`, `{"a":-0.0e+1}`,
	`{"a":"\ud83d"}`, `{"n":{"x":[1,{"y":"]}"}]},"arr":[1,"a",null]}`, "{\"t\":\t\"x\"\n}",
	`{"x":01}`, `{"x":1.}`, `{"x":-}`, `{"x":1e}`, `{"x":tru}`, `{"x":nul}`, `{"x":"a` + "\x01" + `"}`,
	`{"x":"\x"}`, `{"x":"\u12"}`, `{"x":1,}`, `{"x" 1}`, `{'x':1}`, `{"x":1}}`, `{"x":[1,]}`, `{"x":[1 2]}`,
	`[1]`, `"s"`, `1`, `true`, ``, `{`, `{"x":`,
	`{"d":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`,
	// At most MaxDepth objects and arrays open at once, the document's own
	// included, as encoding/json allows.
	`{"d":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`,
	`{"d":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`,
	`{"d":` + strings.Repeat("[", 9999) + `1` + strings.Repeat("]", 9999) + `}`,
	`{"d":` + strings.Repeat("[", 9998) + `{}` + strings.Repeat("]", 9998) + `}`,
	`{"d":` + strings.Repeat("[", 9999) + `{}` + strings.Repeat("]", 9999) + `}`,
}

func check(t *testing.T, b []byte) {
	t.Helper()
	var want map[string]any
	werr := json.Unmarshal(b, &want)
	got, gerr := DecodeObject(b)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%.200q: DecodeObject error %v, encoding/json error %v", b, gerr, werr)
	}
	if werr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%.200q:\n got  %#v\n want %#v", b, got, want)
	}
	checkUseNumber(t, b)
	var v any
	validObj := json.Unmarshal(b, &v) == nil && reflect.TypeOf(v) == reflect.TypeFor[map[string]any]()
	if json.Valid(b) && len(strings.TrimSpace(string(b))) > 0 && strings.TrimSpace(string(b))[0] == '{' {
		validObj = true
	}
	if ValidObject(b) != validObj {
		t.Fatalf("%.200q: ValidObject %v, want %v", b, ValidObject(b), validObj)
	}
}

// checkUseNumber checks DecodeObjectUseNumber against a json.Decoder with
// UseNumber that must reach the end of b.
func checkUseNumber(t *testing.T, b []byte) {
	t.Helper()
	var want map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	werr := dec.Decode(&want)
	if werr == nil {
		if _, err := dec.Token(); err != io.EOF {
			werr = fmt.Errorf("after the value: %v", err)
		}
	}
	got, gerr := DecodeObjectUseNumber(b)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%.200q: DecodeObjectUseNumber error %v, encoding/json error %v", b, gerr, werr)
	}
	if werr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%.200q: DecodeObjectUseNumber:\n got  %#v\n want %#v", b, got, want)
	}
}

func TestDecodeObjectMatchesEncodingJSON(t *testing.T) {
	for _, c := range cases {
		check(t, []byte(c))
	}
}

func FuzzDecodeObject(f *testing.F) {
	for _, c := range cases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) { check(t, b) })
}

var event = []byte(`{"tx_id":"tx-000123","account_id":"acct-00042","amount":120.5,"merchant":"grocer",` +
	`"country":"DE","ts":1764039600,"amount_log":4.8,"amount_zscore":0.3,"merchant_risk":0.05,"is_night":0}`)

func BenchmarkDecodeObject(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeObject(event); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeObjectEncodingJSON(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		var m map[string]any
		if err := json.Unmarshal(event, &m); err != nil {
			b.Fatal(err)
		}
	}
}

// Syntax errors say what encoding/json says, with the offset added.
func TestSyntaxErrorsWordedAsEncodingJSON(t *testing.T) {
	offset := regexp.MustCompile(` \(offset \d+\)$`)
	for _, c := range []string{`{"a":\}`, `{"a":tru}`, `{"a":nulx}`, `{"a":'x'}`, `{"a":"\x"}`, `{"a":"\u12x"}`,
		`{"a":1.e}`, `{"a":-x}`, `{"a":1e+}`, `{"a" 1}`, `{"a":1 "b"}`, `{1:2}`, `[1 2]`, "{\"a\":\x7f}", "{\"a\":\xe9}", `{"a":1}}`} {
		var want map[string]any
		werr := json.Unmarshal([]byte(c), &want)
		_, gerr := DecodeObject([]byte(c))
		if werr == nil || gerr == nil {
			t.Fatalf("%q: DecodeObject error %v, encoding/json error %v", c, gerr, werr)
		}
		if got := offset.ReplaceAllString(gerr.Error(), ""); got != werr.Error() {
			t.Errorf("%q: DecodeObject says %q, encoding/json %q", c, got, werr.Error())
		}
	}
}
