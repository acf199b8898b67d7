package monitor

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// appendEventJSON writes exactly what json.Marshal writes, for the values
// events carry (and falls back to it for others).
func TestAppendEventJSONMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	strs := []string{"", "DE", "a\"b\\c", "<script>&amp;", "tab\there\nnl", "\x00\x1f\x7f", "héllo wörld", "bad\xffutf8\xc3", "line\u2028sep\u2029", "emoji 🙂"}
	floats := []float64{0, -0.0, 1, -1.5, 0.1, 1e-7, 1e-6, 123456789.125, 1e20, 1e21, 1.2345e-300, math.MaxFloat64, math.SmallestNonzeroFloat64}
	value := func(depth int) any { return nil }
	value = func(depth int) any {
		switch r.IntN(12) {
		case 0:
			return nil
		case 1:
			return strs[r.IntN(len(strs))]
		case 2:
			return r.IntN(2) == 0
		case 3, 4:
			return floats[r.IntN(len(floats))] * float64(r.IntN(3)-1)
		case 5:
			return float32(floats[r.IntN(len(floats))])
		case 6:
			return r.Int64() - r.Int64()
		case 7:
			if depth > 2 {
				return 1
			}
			a := make([]any, r.IntN(4))
			for i := range a {
				a[i] = value(depth + 1)
			}
			return a
		case 8:
			if depth > 2 {
				return "deep"
			}
			m := map[string]any{}
			for range r.IntN(20) {
				m[strs[r.IntN(len(strs))]+string(rune('a'+r.IntN(26)))] = value(depth + 1)
			}
			return m
		case 9:
			return []float32{1.5, float32(r.NormFloat64())}
		case 10:
			return []float64{r.NormFloat64(), 1e-9}
		default:
			return json.Number("12.5") // a type it leaves to encoding/json
		}
	}
	for i := range 2000 {
		ev := testEvent(strs[r.IntN(len(strs))], i)
		ev.TS = time.Unix(r.Int64N(1<<34), r.Int64N(1e9)).In(time.FixedZone("x", 3600*(r.IntN(5)-2)))
		ev.Error = strs[r.IntN(len(strs))]
		ev.Shadow, ev.Pinned, ev.Truncated = r.IntN(2) == 0, r.IntN(2) == 0, r.IntN(2) == 0
		ev.Features = map[string]any{}
		for range r.IntN(20) {
			ev.Features[strs[r.IntN(len(strs))]+string(rune('a'+r.IntN(26)))] = value(0)
		}
		ev.Outputs = map[string]any{"score": value(0)}
		if i%7 == 0 {
			ev.Features = nil
		}
		want, werr := json.Marshal(ev)
		got, gerr := appendEventJSON(nil, ev)
		if werr != nil {
			if gerr == nil {
				t.Fatalf("json.Marshal fails (%v) where appendEventJSON gives %s", werr, got)
			}
			continue
		}
		if gerr != nil || !bytes.Equal(got, want) {
			t.Fatalf("event %d: err %v\n got %s\nwant %s", i, gerr, got, want)
		}
	}
	nan := testEvent("r", 1)
	nan.Outputs["score"] = math.NaN()
	if _, err := appendEventJSON(nil, nan); err == nil {
		t.Error("a NaN output encoded without error")
	}
}

func BenchmarkEncodeEvent(b *testing.B) {
	ev := testEvent("bench", 1)
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(ev)
		}
	})
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf, _ = appendEventJSON(buf[:0], ev)
		}
	})
}

// nonZeroEvent sets every field of an Event (found by reflection, so a
// field added later is covered too) to a value other than its zero.
func nonZeroEvent(t *testing.T) *Event {
	t.Helper()
	ev := testEvent("r", 1)
	v := reflect.ValueOf(ev).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("x" + v.Type().Field(i).Name)
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int, reflect.Int64, reflect.Int32:
			f.SetInt(int64(7 + i))
		case reflect.Map, reflect.Struct: // set by testEvent
		default:
			t.Fatalf("Event.%s: a field of kind %s this test cannot fill", v.Type().Field(i).Name, f.Kind())
		}
		if f.IsZero() {
			t.Fatalf("Event.%s left zero", v.Type().Field(i).Name)
		}
	}
	return ev
}

// Every field of Event reaches the stream: the hand-written encoder must
// learn of a field added to the event, or this test fails.
func TestAppendEventJSONEncodesEveryField(t *testing.T) {
	ev := nonZeroEvent(t)
	want, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	got, err := appendEventJSON(nil, ev)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("err %v\n got %s\nwant %s", err, got, want)
	}
}

// Stats, fed from the shared decode, carries every field it reads.
func TestStatsEventOfCarriesEveryField(t *testing.T) {
	ev := nonZeroEvent(t)
	se := statsEventOf(ev)
	v := reflect.ValueOf(se)
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		if !reflect.DeepEqual(v.Field(i).Interface(), reflect.ValueOf(ev).Elem().FieldByName(name).Interface()) {
			t.Errorf("statsEvent.%s not carried from Event", name)
		}
	}
}
