//go:build !wasip1

package plugin

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
)

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`{}`,
		` {"a":1,"b":-2.5e3,"c":"x\"y\\z\u00e9\ud83d\ude00\n","d":[1,"two",null,true,false,{"e":[]}],"f":{}} `,
		`{"unicode":"日本語","esc":"\/\b\f\r\t"}`,
		`{"big":12345678901234567890,"small":1e-10}`,
	} {
		got, err := DecodeObject([]byte(in))
		if err != nil {
			t.Fatalf("DecodeObject(%s): %v", in, err)
		}
		var want map[string]any
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("DecodeObject(%s) = %#v, want %#v", in, got, want)
		}
		// Encoding gives what encoding/json gives (both sort keys).
		enc, err := AppendJSON(nil, got)
		if err != nil {
			t.Fatal(err)
		}
		wantEnc, _ := json.Marshal(want)
		if string(enc) != string(wantEnc) {
			t.Errorf("AppendJSON = %s, want %s", enc, wantEnc)
		}
	}
}

func TestDecodeRejectsInvalid(t *testing.T) {
	for _, in := range []string{``, `[]`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":tru}`, `{"a":"\x01"}`, `{} x`, `{"a":01x}`,
		`{"a":"\q"}`, strings.Repeat(`{"a":`, 200) + `1` + strings.Repeat(`}`, 200)} {
		if _, err := DecodeObject([]byte(in)); err == nil {
			t.Errorf("DecodeObject(%q) succeeded, want an error", in)
		}
	}
}

func TestInvokeRunsTheHandlerWithConfigAndFeatures(t *testing.T) {
	Handle(func(ev Event) (Event, error) {
		if ev["fail"] == true {
			return nil, errors.New("asked to fail")
		}
		f, found, err := Features(ev["id"].(string))
		if err != nil {
			return nil, err
		}
		ev["found"] = found
		if found {
			ev["mean"] = f["mean"]
		}
		ev["factor"] = Config()["factor"]
		return ev, nil
	})
	defer Handle(nil)
	feats := map[string][]byte{"a": []byte(`{"mean":3}`)}
	out, err := Invoke([]byte(`{"id":"a"}`), []byte(`{"factor":2}`), feats)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `{"factor":2,"found":true,"id":"a","mean":3}` {
		t.Errorf("got %s", out)
	}
	// A config change between calls is seen (the parsed config is cached by
	// its bytes).
	out, err = Invoke([]byte(`{"id":"b"}`), []byte(`{"factor":5}`), feats)
	if err != nil || string(out) != `{"factor":5,"found":false,"id":"b"}` {
		t.Errorf("got %s, %v", out, err)
	}
	if _, err := Invoke([]byte(`{"fail":true}`), nil, nil); err == nil || err.Error() != "asked to fail" {
		t.Errorf("got %v, want the handler's error", err)
	}
	if _, err := Invoke([]byte(`not json`), nil, nil); err == nil {
		t.Error("invalid input accepted")
	}
}

func BenchmarkDecodeEncode(b *testing.B) {
	in := []byte(`{"account_id":"acct-42","amount":120.5,"merchant":"m1","ts":"2024-05-01T13:45:00Z",` +
		`"currency":"EUR","country":"DE","channel":"web","device_id":"d-7f3a9c","ip":"203.0.113.7","card_bin":"411111"}`)
	var out []byte
	b.ReportAllocs()
	for b.Loop() {
		m, err := DecodeObject(in)
		if err != nil {
			b.Fatal(err)
		}
		if out, err = AppendJSON(out[:0], m); err != nil {
			b.Fatal(err)
		}
	}
}

func TestInvokeReportsAPanicWithItsFrames(t *testing.T) {
	Handle(func(ev Event) (Event, error) {
		ev["n"] = ev["missing"].(string) // interface conversion: nil
		return ev, nil
	})
	defer Handle(nil)
	_, err := Invoke([]byte(`{}`), nil, nil)
	if err == nil {
		t.Fatal("a panicking handler succeeded")
	}
	msg := err.Error()
	for _, want := range []string{"panic: interface conversion: interface {} is nil, not string", "[at ", "plugin_test.go:"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "runtime.") || strings.Contains(msg, "sdk/plugin.invoke") {
		t.Errorf("error %q names runtime or SDK frames", msg)
	}
	// The next call works: the panic was recovered.
	Handle(func(ev Event) (Event, error) { return ev, nil })
	if out, err := Invoke([]byte(`{"a":1}`), nil, nil); err != nil || string(out) != `{"a":1}` {
		t.Errorf("after a panic: %s, %v", out, err)
	}
}

func TestInvokeEnforcesTheHostsOutputRules(t *testing.T) {
	defer HandleBytes(nil)
	for out, want := range map[string]string{
		`[1,2]`:       "not a JSON object",
		`{"a":`:       "not a JSON object",
		`{"a":1} {}`:  "not a JSON object",
		`"just text"`: "not a JSON object",
	} {
		HandleBytes(func([]byte) ([]byte, error) { return []byte(out), nil })
		if _, err := Invoke([]byte(`{}`), nil, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("output %s: got %v, want an error containing %q", out, err, want)
		}
	}
	HandleBytes(func([]byte) ([]byte, error) { return []byte(` {"ok":true} `), nil })
	if out, err := Invoke([]byte(`{}`), nil, nil); err != nil || string(out) != ` {"ok":true} ` {
		t.Errorf("a valid object: %s, %v", out, err)
	}
}

func TestMetricsAreRecordedNatively(t *testing.T) {
	Handle(func(ev Event) (Event, error) {
		Count("calls", 1)
		Observe("amount", 2.5)
		return ev, nil
	})
	defer Handle(nil)
	if _, err := Invoke([]byte(`{}`), nil, nil); err != nil {
		t.Fatal(err)
	}
	got := RecordedMetrics()
	want := []MetricCall{{0, "calls", 1}, {1, "amount", 2.5}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("recorded %+v, want %+v", got, want)
	}
}

var garbage []byte

func gcCycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestIdleCollectsHalfWayToTheGoal: weir_idle collects once the heap is half
// way from its live size to the next automatic collection, and not before,
// so a collection happens between calls instead of inside one.
func TestIdleCollectsHalfWayToTheGoal(t *testing.T) {
	runtime.GC()
	c := gcCycles()
	idle()
	if got := gcCycles(); got != c {
		t.Fatalf("idle right after a collection collected again (%d cycles, want %d)", got, c)
	}
	for attempt := 0; ; attempt++ {
		start := gcCycles()
		for {
			metrics.Read(heapSamples)
			objects, live, goal := heapSamples[0].Value.Uint64(), heapSamples[1].Value.Uint64(), heapSamples[2].Value.Uint64()
			if objects >= live+(goal-live)/2 {
				break
			}
			garbage = make([]byte, 16<<10)
		}
		if gcCycles() != start {
			if attempt == 10 {
				t.Fatal("the runtime kept collecting on its own before the heap was half way to its goal")
			}
			continue // collected on its own meanwhile: fill again
		}
		break
	}
	c = gcCycles()
	idle()
	if got := gcCycles(); got != c+1 {
		t.Errorf("idle with the heap half way to its goal ran %d collections, want 1", got-c)
	}
}

// A value that contains itself is refused, not a stack overflow that kills
// the instance.
func TestAppendJSONRefusesAValueThatContainsItself(t *testing.T) {
	m := map[string]any{}
	m["self"] = []any{m}
	if _, err := AppendJSON(nil, m); err == nil || !strings.Contains(err.Error(), "nesting too deep") {
		t.Fatalf("got %v, want a nesting error", err)
	}
	// The scratch kept per depth still serves the next call.
	if out, err := AppendJSON(nil, map[string]any{"b": 1.0, "a": map[string]any{"d": true, "c": nil}}); err != nil || string(out) != `{"a":{"c":null,"d":true},"b":1}` {
		t.Fatalf("got %s, %v", out, err)
	}
}

// Keys come out sorted, as encoding/json sorts them, for objects small
// enough for sortMembers' insertion sort and for larger ones.
func TestAppendJSONSortsKeys(t *testing.T) {
	for _, n := range []int{0, 1, 2, 7, 24, 25, 100} {
		m := map[string]any{}
		for i := range n {
			m[strings.Repeat("k", i%5)+string(rune('z'-i%26))+strconv.Itoa(i)] = float64(i)
		}
		encodesAsEncodingJSON(t, m)
	}
}

// Numbers print as encoding/json prints them, whole ones included.
func TestAppendJSONNumbersMatchEncodingJSON(t *testing.T) {
	for _, f := range []float64{0, math.Copysign(0, -1), 1, -1, 15, 1795966160, 46.86, -3.5, 0.05,
		1e15 - 1, 1e15, -1e15, 1e20, 1e21, 123456789012345678, 1e-7, math.MaxInt64, math.MinInt64} {
		encodesAsEncodingJSON(t, f)
	}
}

// encodesAsEncodingJSON fails unless AppendJSON writes v as json.Marshal
// does, byte for byte.
func encodesAsEncodingJSON(t *testing.T, v any) {
	t.Helper()
	got, err := AppendJSON(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(v)
	if string(got) != string(want) {
		t.Errorf("AppendJSON(%v):\n got %s\nwant %s", v, got, want)
	}
}
