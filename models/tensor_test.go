package models

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestParseData(t *testing.T) {
	cases := []struct {
		dt   Datatype
		raw  string
		want any
		err  string
	}{
		{FP32, `[[1, 2.5], [-3e2, "NaN"]]`, []float32{1, 2.5, -300, float32(math.NaN())}, ""},
		{FP64, `["Infinity", "-Infinity", 0]`, []float64{math.Inf(1), math.Inf(-1), 0}, ""},
		{Int8, `[127, -128, 3.0]`, []int8{127, -128, 3}, ""},
		{Int8, `[128]`, nil, "element 0: 128 is not an integer that fits in 8 bits"},
		{Uint8, `[[0, 255]]`, []uint8{0, 255}, ""},
		{Uint16, `[-1]`, nil, "not an unsigned integer"},
		{Int64, `[9007199254740993]`, []int64{9007199254740993}, ""},
		{Bool, `[true, false, 1, 0]`, []bool{true, false, true, false}, ""},
		{Bool, `["yes"]`, nil, `"yes" is not a boolean`},
		{Bytes, `["a", "b\"c", "\u00e9"]`, []string{"a", `b"c`, "é"}, ""},
		{Bytes, `[1]`, nil, "1 is not a string"},
		{FP32, `[1, {"x": 2}]`, nil, "found an object"},
		{FP32, `7`, []float32{7}, ""},
	}
	for _, c := range cases {
		got, _, err := parseData([]byte(c.raw), c.dt, 4)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s %s: error %v, want %q", c.dt, c.raw, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %s: %v", c.dt, c.raw, err)
			continue
		}
		if f, ok := got.([]float32); ok && len(f) == 4 && math.IsNaN(float64(f[3])) {
			f[3] = 0
			c.want.([]float32)[3] = 0
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s %s: %#v, want %#v", c.dt, c.raw, got, c.want)
		}
	}
}

func TestTensorDataJSON(t *testing.T) {
	cases := []struct {
		values any
		want   string
	}{
		{[]uint8{1, 2, 255}, `[1,2,255]`}, // numbers, not base64
		{[]float32{0.1, float32(math.NaN()), float32(math.Inf(-1))}, `[0.1,"NaN","-Infinity"]`},
		{[]float64{1e-300}, `[1e-300]`},
		{[]bool{true, false}, `[true,false]`},
		{[]string{`a"b`}, `["a\"b"]`},
		{[]int64{}, `[]`},
	}
	for _, c := range cases {
		b, err := TensorData{Values: c.values}.MarshalJSON()
		if err != nil || string(b) != c.want {
			t.Errorf("%#v: %s %v, want %s", c.values, b, err, c.want)
		}
	}
}

func BenchmarkParseFP32(b *testing.B) {
	raw := []byte(`[` + strings.Repeat("0.123456,", 1023) + `0.5]`)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := parseData(raw, FP32, 1024); err != nil {
			b.Fatal(err)
		}
	}
}
