package onnx

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/weirhq/weir/internal/weirerr"
)

// testDataDir is where Debian's libonnx-testdata puts ONNX's backend node
// tests (ONNX_TESTDATA overrides it).
func testDataDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("ONNX_TESTDATA")
	if dir == "" {
		dir = "/usr/share/libonnx-testdata/data/node"
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("ONNX backend test data not found at %s (run make debs to install libonnx-testdata): %v", dir, err)
	}
	return dir
}

func readTestTensor(t testing.TB, test, file string) *Tensor {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testDataDir(t), test, "test_data_set_0", file))
	if err != nil {
		t.Fatal(err)
	}
	tt, err := DecodeTensor(b)
	if err != nil {
		t.Fatalf("%s/%s: %v", test, file, err)
	}
	return tt
}

func TestDecodeTensorBackendData(t *testing.T) {
	cases := []struct {
		test, file string
		name       string
		dt         DataType
		dims       []int64
		first      any // the first values
	}{
		{"test_abs", "input_0.pb", "x", Float, []int64{3, 4, 5}, []float32{1.7640524, 0.4001572, 0.978738}},
		{"test_abs", "output_0.pb", "y", Float, []int64{3, 4, 5}, []float32{1.7640524, 0.4001572, 0.978738, 2.2408931, 1.867558, 0.9772779}},
		{"test_argmax_default_axis_example", "output_0.pb", "result", Int64, []int64{1, 2}, []int64{1, 1}},
		{"test_and2d", "input_0.pb", "x", Bool, []int64{3, 4}, []bool{true, true, true, true, true, false, true, false}},
		{"test_strnormalizer_export_monday_casesensintive_lower", "input_0.pb", "x", String, []int64{4}, []string{"monday", "tuesday", "wednesday", "thursday"}},
		{"test_cast_FLOAT16_to_FLOAT", "input_0.pb", "input", Float16, []int64{3, 4}, []float32{0.11828613, 0.6401367, 0.14331055}},
		{"test_cast_FLOAT_to_DOUBLE", "output_0.pb", "output", Double, []int64{3, 4}, []float64{0.5680445432662964, 0.9255966544151306}},
	}
	for _, c := range cases {
		t.Run(c.test+"/"+c.file, func(t *testing.T) {
			tt := readTestTensor(t, c.test, c.file)
			if tt.Name != c.name || tt.DataType != c.dt || !reflect.DeepEqual(tt.Dims, c.dims) {
				t.Fatalf("got %s, want %s %s%v", tt, c.name, c.dt, c.dims)
			}
			n, _ := NumElements(c.dims)
			v := reflect.ValueOf(tt.Values)
			if v.Type() != reflect.TypeOf(c.first) || v.Len() != n {
				t.Fatalf("values %T of len %d, want %T of len %d", tt.Values, v.Len(), c.first, n)
			}
			want := reflect.ValueOf(c.first)
			if got := v.Slice(0, want.Len()).Interface(); !reflect.DeepEqual(got, c.first) {
				t.Fatalf("first values %v, want %v", got, c.first)
			}
		})
	}
}

// TestFloat16MatchesONNXCast compares Float32ToFloat16 with ONNX's reference
// Cast(FLOAT->FLOAT16) results in the backend test data.
func TestFloat16MatchesONNXCast(t *testing.T) {
	in := readTestTensor(t, "test_cast_FLOAT_to_FLOAT16", "input_0.pb")
	out := readTestTensor(t, "test_cast_FLOAT_to_FLOAT16", "output_0.pb")
	if out.DataType != Float16 {
		t.Fatalf("output is %s, want FLOAT16", out.DataType)
	}
	x, y := in.Values.([]float32), out.Values.([]float32)
	if len(x) != len(y) || len(x) == 0 {
		t.Fatalf("%d inputs, %d outputs", len(x), len(y))
	}
	for i := range x {
		if got := Float16ToFloat32(Float32ToFloat16(x[i])); got != y[i] {
			t.Errorf("cast(%g) = %g, ONNX says %g", x[i], got, y[i])
		}
	}
}

func TestTensorRoundTrip(t *testing.T) {
	cases := []*Tensor{
		{Name: "f", DataType: Float, Dims: []int64{2, 2}, Values: []float32{1, -2.5, float32(math.Inf(1)), 0}},
		{Name: "d", DataType: Double, Dims: []int64{3}, Values: []float64{1e300, -1e-300, 0.1}},
		{Name: "h", DataType: Float16, Dims: []int64{4}, Values: []float32{1, -2, 65504, 5.9604644775390625e-08}},
		{Name: "i8", DataType: Int8, Dims: []int64{3}, Values: []int8{-128, 0, 127}},
		{Name: "u8", DataType: Uint8, Dims: []int64{2}, Values: []uint8{0, 255}},
		{Name: "i16", DataType: Int16, Dims: []int64{2}, Values: []int16{-32768, 32767}},
		{Name: "u16", DataType: Uint16, Dims: []int64{2}, Values: []uint16{0, 65535}},
		{Name: "i32", DataType: Int32, Dims: []int64{2}, Values: []int32{math.MinInt32, math.MaxInt32}},
		{Name: "u32", DataType: Uint32, Dims: []int64{1}, Values: []uint32{math.MaxUint32}},
		{Name: "i64", DataType: Int64, Dims: []int64{1, 2}, Values: []int64{math.MinInt64, math.MaxInt64}},
		{Name: "u64", DataType: Uint64, Dims: []int64{1}, Values: []uint64{math.MaxUint64}},
		{Name: "b", DataType: Bool, Dims: []int64{3}, Values: []bool{true, false, true}},
		{Name: "s", DataType: String, Dims: []int64{2}, Values: []string{"héllo", ""}},
		{Name: "scalar", DataType: Float, Dims: []int64{}, Values: []float32{42}},
		{Name: "empty", DataType: Int64, Dims: []int64{0, 3}, Values: []int64{}},
	}
	for _, want := range cases {
		t.Run(want.Name, func(t *testing.T) {
			b, err := EncodeTensor(want)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeTensor(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip: got %s %v, want %s %v", got, got.Values, want, want.Values)
			}
		})
	}
}

// TestDecodeTypedFields covers the typed repeated fields, packed and
// unpacked, which ONNX's own writers use instead of raw_data.
func TestDecodeTypedFields(t *testing.T) {
	header := func(dt DataType, dims ...int64) []byte {
		var b []byte
		for _, d := range dims { // unpacked dims, as proto2 writers emit them
			b = putInt64(b, tensorDims, d)
		}
		return putInt64(b, tensorDataType, int64(dt))
	}
	unpackedInt32 := func(b []byte, vs ...int32) []byte {
		for _, v := range vs {
			b = putInt64(b, tensorInt32Data, int64(v))
		}
		return b
	}
	cases := []struct {
		name string
		b    []byte
		want any
	}{
		{"int8 in int32_data", unpackedInt32(header(Int8, 3), -1, 7, -128), []int8{-1, 7, -128}},
		{"uint16 in int32_data", unpackedInt32(header(Uint16, 2), 65535, 1), []uint16{65535, 1}},
		{"bool in int32_data", unpackedInt32(header(Bool, 2), 1, 0), []bool{true, false}},
		{"float16 bits in int32_data", unpackedInt32(header(Float16, 2), 0x3C00, 0xC000), []float32{1, -2}},
		{"int32 negative", unpackedInt32(header(Int32, 1), -5), []int32{-5}},
		{"packed float_data", putPackedFloats(header(Float, 2), tensorFloatData, []float32{0.5, -1}), []float32{0.5, -1}},
		{"unpacked float_data", putFloat(putFloat(header(Float, 2), tensorFloatData, 3), tensorFloatData, 4), []float32{3, 4}},
		{"packed int64_data", putPackedInt64s(header(Int64, 2), tensorInt64Data, []int64{-1, 1 << 40}), []int64{-1, 1 << 40}},
		{"uint32 in uint64_data", putVarint(header(Uint32, 1), tensorUint64Data, math.MaxUint32), []uint32{math.MaxUint32}},
		{"uint64_data", putVarint(header(Uint64, 1), tensorUint64Data, math.MaxUint64), []uint64{math.MaxUint64}},
		{"double_data", protowire.AppendFixed64(protowire.AppendTag(header(Double, 1), tensorDoubleData, protowire.Fixed64Type), math.Float64bits(2.5)), []float64{2.5}},
		{"string_data", putString(putString(header(String, 2), tensorStringData, "a"), tensorStringData, "b"), []string{"a", "b"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := DecodeTensor(c.b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Values, c.want) {
				t.Fatalf("values %#v, want %#v", got.Values, c.want)
			}
		})
	}
}

func TestDecodeTensorErrors(t *testing.T) {
	raw := func(dt DataType, dims []int64, data []byte) []byte {
		b := putPackedInt64s(nil, tensorDims, dims)
		b = putInt64(b, tensorDataType, int64(dt))
		b = putString(b, tensorName, "x")
		return putBytes(b, tensorRawData, data)
	}
	cases := []struct {
		name string
		b    []byte
		want string // in the message
	}{
		{"short raw", raw(Float, []int64{2, 2}, make([]byte, 12)), "raw_data has 12 bytes, 4 FLOAT elements need 16"},
		{"string in raw", raw(String, []int64{1}, []byte("a")), "STRING data must be in string_data"},
		{"count", putPackedFloats(putInt64(putPackedInt64s(nil, tensorDims, []int64{3}), tensorDataType, int64(Float)), tensorFloatData, []float32{1, 2}), "2 FLOAT values in float_data, dims [3] need 3"},
		{"missing data", putInt64(putPackedInt64s(nil, tensorDims, []int64{2}), tensorDataType, int64(Float)), "0 FLOAT values in the FLOAT field, dims [2] need 2"},
		{"negative dim", putInt64(putPackedInt64s(nil, tensorDims, []int64{-1}), tensorDataType, int64(Float)), "negative"},
		{"external", putBytes(raw(Float, nil, make([]byte, 4)), tensorExternalData, nil), "external_data"},
		{"complex", raw(Complex64, []int64{1}, make([]byte, 8)), "COMPLEX64 is not supported"},
		{"garbage", []byte{0xff, 0xff, 0xff}, "onnx tensor"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeTensor(c.b)
			if err == nil {
				t.Fatal("no error")
			}
			if weirerr.KindOf(err) != weirerr.Invalid {
				t.Errorf("kind %v, want Invalid", weirerr.KindOf(err))
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
		})
	}
}

func TestEncodeTensorErrors(t *testing.T) {
	cases := []struct {
		t    *Tensor
		want string
	}{
		{&Tensor{Name: "a", DataType: Float, Dims: []int64{2}, Values: []float64{1, 2}}, "FLOAT values cannot be []float64"},
		{&Tensor{Name: "b", DataType: Int32, Dims: []int64{3}, Values: []int32{1, 2}}, "2 values, dims [3] need 3"},
		{&Tensor{Name: "c", DataType: String, Dims: []int64{1}, Values: []byte("x")}, "STRING values must be []string"},
	}
	for _, c := range cases {
		_, err := EncodeTensor(c.t)
		var we *weirerr.Error
		if err == nil || !errors.As(err, &we) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("EncodeTensor(%s) = %v, want an Invalid error mentioning %q", c.t, err, c.want)
		}
	}
}

func TestDataTypeNames(t *testing.T) {
	for dt, want := range map[DataType][2]string{
		Float: {"FLOAT", "FP32"}, Float16: {"FLOAT16", "FP16"}, Double: {"DOUBLE", "FP64"},
		String: {"STRING", "BYTES"}, Bool: {"BOOL", "BOOL"}, Uint8: {"UINT8", "UINT8"},
		Int64: {"INT64", "INT64"}, Uint64: {"UINT64", "UINT64"},
	} {
		oip, ok := dt.OIP()
		if dt.String() != want[0] || oip != want[1] || !ok {
			t.Errorf("%d: String %q OIP %q %v, want %q %q", int(dt), dt.String(), oip, ok, want[0], want[1])
		}
		if back, ok := DataTypeFromOIP(want[1]); !ok || back != dt {
			t.Errorf("DataTypeFromOIP(%q) = %s %v, want %s", want[1], back, ok, dt)
		}
	}
	if _, ok := BFloat16.OIP(); ok {
		t.Error("BFLOAT16 has no OIP name")
	}
	if s := DataType(99).String(); s != "DataType(99)" {
		t.Errorf("unknown type prints %q", s)
	}
}

func BenchmarkDecodeTensorFloat1k(b *testing.B) {
	vals := make([]float32, 1024)
	for i := range vals {
		vals[i] = float32(i)
	}
	enc, err := EncodeTensor(&Tensor{Name: "x", DataType: Float, Dims: []int64{32, 32}, Values: vals})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		if _, err := DecodeTensor(enc); err != nil {
			b.Fatal(err)
		}
	}
}
