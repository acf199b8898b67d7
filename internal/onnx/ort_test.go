//go:build cgo

package onnx

// These tests prove the builder's models valid by loading and running them in
// real ONNX Runtime. A wrong field number would make ORT refuse the model or
// compute something else.

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	ort "github.com/yalue/onnxruntime_go"
	"google.golang.org/protobuf/encoding/protowire"
)

var (
	ortOnce sync.Once
	ortErr  error
)

// ortInit initialises ONNX Runtime's process-global environment once per
// test binary, from ONNXRUNTIME_LIB or <repo>/.cache/onnxruntime-1.30.0.
func ortInit(t testing.TB) {
	t.Helper()
	ortOnce.Do(func() {
		lib := os.Getenv("ONNXRUNTIME_LIB")
		if lib == "" {
			lib = filepath.Join(repoRoot(t), ".cache", "onnxruntime-1.30.0", "libonnxruntime.so.1")
		}
		if _, err := os.Stat(lib); err != nil {
			ortErr = err
			return
		}
		ort.SetSharedLibraryPath(lib)
		ortErr = ort.InitializeEnvironment()
	})
	if ortErr != nil {
		t.Fatalf("ONNX Runtime is not available (run make ort): %v", ortErr)
	}
}

func repoRoot(t testing.TB) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

func destroy(t testing.TB, vs ...interface{ Destroy() error }) {
	t.Helper()
	for _, v := range vs {
		if v != nil {
			if err := v.Destroy(); err != nil {
				t.Error(err)
			}
		}
	}
}

func session(t testing.TB, model []byte, ins, outs []string) *ort.DynamicAdvancedSession {
	t.Helper()
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(model, ins, outs, nil)
	if err != nil {
		t.Fatalf("ONNX Runtime refused the model: %v", err)
	}
	t.Cleanup(func() { destroy(t, s) })
	return s
}

// runFloat runs a one-input, one-output FLOAT model on x of shape [rows, n].
func runFloat(t testing.TB, s *ort.DynamicAdvancedSession, x []float32, rows, n, outCols int64) []float32 {
	t.Helper()
	in, err := ort.NewTensor(ort.NewShape(rows, n), x)
	if err != nil {
		t.Fatal(err)
	}
	out, err := ort.NewEmptyTensor[float32](ort.NewShape(rows, outCols))
	if err != nil {
		t.Fatal(err)
	}
	defer destroy(t, in, out)
	if err := s.Run([]ort.Value{in}, []ort.Value{out}); err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), out.GetData()...)
}

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

func TestORTLogisticRegression(t *testing.T) {
	ortInit(t)
	w := []float32{0.5, -1, 2}
	const bias = 0.1
	model, err := LogisticRegression("fraud-lr", []string{"amount", "age", "risk"}, w, bias)
	if err != nil {
		t.Fatal(err)
	}

	ins, outs, err := ort.GetInputOutputInfoWithONNXData(model)
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 1 || ins[0].Name != "features" || !reflect.DeepEqual([]int64(ins[0].Dimensions), []int64{-1, 3}) ||
		ins[0].DataType != ort.TensorElementDataTypeFloat {
		t.Errorf("ORT sees inputs %+v", ins)
	}
	if len(outs) != 1 || outs[0].Name != "score" || !reflect.DeepEqual([]int64(outs[0].Dimensions), []int64{-1, 1}) {
		t.Errorf("ORT sees outputs %+v", outs)
	}
	md, err := ort.GetModelMetadataWithONNXData(model)
	if err != nil {
		t.Fatal(err)
	}
	defer destroy(t, md)
	if v, ok, err := md.LookupCustomMetadataMap(MetadataFeatures); err != nil || !ok || v != "amount,age,risk" {
		t.Errorf("ORT metadata %s = %q %v %v", MetadataFeatures, v, ok, err)
	}
	if p, _ := md.GetProducerName(); p != "weir" {
		t.Errorf("producer %q", p)
	}

	s := session(t, model, []string{"features"}, []string{"score"})
	x := []float32{
		1, 2, 3,
		0, 0, 0,
		-4, 0.5, 1.25,
	}
	got := runFloat(t, s, x, 3, 3, 1)
	for r := range 3 {
		z := float64(bias)
		for j := range 3 {
			z += float64(x[3*r+j]) * float64(w[j])
		}
		if want := sigmoid(z); math.Abs(float64(got[r])-want) > 1e-6 {
			t.Errorf("row %d: score %g, want sigmoid(%g) = %g", r, got[r], z, want)
		}
	}
}

// initializers decodes a model's graph initializers (test-only reader).
func initializers(t testing.TB, model []byte) map[string]*Tensor {
	t.Helper()
	inits := map[string]*Tensor{}
	err := eachField(model, func(f field) error {
		if f.num != modelGraph {
			return nil
		}
		return eachField(f.bytes, func(f field) error {
			if f.num != graphInitializer {
				return nil
			}
			tt, err := DecodeTensor(f.bytes)
			if err == nil {
				inits[tt.Name] = tt
			}
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return inits
}

func TestORTMLP(t *testing.T) {
	ortInit(t)
	sizes := []int{32, 64, 16, 1}
	model, err := MLP("mlp", sizes, 42)
	if err != nil {
		t.Fatal(err)
	}
	s := session(t, model, []string{"features"}, []string{"score"})
	const rows = 4
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, rows*sizes[0])
	for i := range x {
		x[i] = rng.Float32()*4 - 2
	}
	got := runFloat(t, s, x, rows, int64(sizes[0]), 1)

	// The same forward pass in float64 from the stored weights.
	inits := initializers(t, model)
	for r := range rows {
		h := make([]float64, sizes[0])
		for j := range h {
			h[j] = float64(x[r*sizes[0]+j])
		}
		for l := 0; l+1 < len(sizes); l++ {
			W := inits["W"+string(rune('0'+l))].Values.([]float32)
			B := inits["B"+string(rune('0'+l))].Values.([]float32)
			in, out := sizes[l], sizes[l+1]
			next := make([]float64, out)
			for o := range out {
				z := float64(B[o])
				for i := range in {
					z += h[i] * float64(W[i*out+o])
				}
				if l+2 == len(sizes) {
					next[o] = sigmoid(z)
				} else {
					next[o] = math.Max(0, z)
				}
			}
			h = next
		}
		if math.Abs(float64(got[r])-h[0]) > 1e-5 {
			t.Errorf("row %d: ORT %g, Go %g", r, got[r], h[0])
		}
		if got[r] <= 0.001 || got[r] >= 0.999 {
			t.Errorf("row %d: score %g is saturated; weights badly scaled", r, got[r])
		}
	}
}

func identityRun[T ort.TensorData](t *testing.T, dt DataType, x []T) {
	t.Helper()
	model, err := Identity("id-"+dt.String(), dt, Sym("n"))
	if err != nil {
		t.Fatal(err)
	}
	s := session(t, model, []string{"x"}, []string{"y"})
	in, err := ort.NewTensor(ort.NewShape(int64(len(x))), x)
	if err != nil {
		t.Fatal(err)
	}
	out, err := ort.NewEmptyTensor[T](ort.NewShape(int64(len(x))))
	if err != nil {
		t.Fatal(err)
	}
	defer destroy(t, in, out)
	if err := s.Run([]ort.Value{in}, []ort.Value{out}); err != nil {
		t.Fatal(err)
	}
	if got := out.GetData(); !reflect.DeepEqual(got, x) {
		t.Errorf("%s: identity gave %v, want %v", dt, got, x)
	}
}

func TestORTIdentityDatatypes(t *testing.T) {
	ortInit(t)
	t.Run("FLOAT", func(t *testing.T) { identityRun(t, Float, []float32{1.5, -2}) })
	t.Run("DOUBLE", func(t *testing.T) { identityRun(t, Double, []float64{1e-300, 3}) })
	t.Run("INT8", func(t *testing.T) { identityRun(t, Int8, []int8{-128, 127}) })
	t.Run("UINT8", func(t *testing.T) { identityRun(t, Uint8, []uint8{0, 255}) })
	t.Run("INT16", func(t *testing.T) { identityRun(t, Int16, []int16{-300, 300}) })
	t.Run("UINT16", func(t *testing.T) { identityRun(t, Uint16, []uint16{65535, 1}) })
	t.Run("INT32", func(t *testing.T) { identityRun(t, Int32, []int32{math.MinInt32, 7}) })
	t.Run("UINT32", func(t *testing.T) { identityRun(t, Uint32, []uint32{math.MaxUint32, 7}) })
	t.Run("INT64", func(t *testing.T) { identityRun(t, Int64, []int64{math.MinInt64, 7}) })
	t.Run("UINT64", func(t *testing.T) { identityRun(t, Uint64, []uint64{math.MaxUint64, 7}) })
	t.Run("BOOL", func(t *testing.T) { identityRun(t, Bool, []bool{true, false, true}) })

	t.Run("FLOAT16", func(t *testing.T) {
		model, err := Identity("id-fp16", Float16, Sym("n"))
		if err != nil {
			t.Fatal(err)
		}
		s := session(t, model, []string{"x"}, []string{"y"})
		vals := []float32{1, -2, 65504, 0.1}
		raw := make([]byte, 0, 2*len(vals))
		for _, v := range vals {
			h := Float32ToFloat16(v)
			raw = append(raw, byte(h), byte(h>>8))
		}
		in, err := ort.NewCustomDataTensor(ort.NewShape(4), raw, ort.TensorElementDataTypeFloat16)
		if err != nil {
			t.Fatal(err)
		}
		out, err := ort.NewCustomDataTensor(ort.NewShape(4), make([]byte, len(raw)), ort.TensorElementDataTypeFloat16)
		if err != nil {
			t.Fatal(err)
		}
		defer destroy(t, in, out)
		if err := s.Run([]ort.Value{in}, []ort.Value{out}); err != nil {
			t.Fatal(err)
		}
		got := out.GetData()
		for i, v := range vals {
			h := uint16(got[2*i]) | uint16(got[2*i+1])<<8
			if want := Float16ToFloat32(Float32ToFloat16(v)); Float16ToFloat32(h) != want {
				t.Errorf("element %d: %g, want %g", i, Float16ToFloat32(h), want)
			}
		}
	})

	t.Run("STRING", func(t *testing.T) {
		model, err := Identity("id-bytes", String, Sym("n"))
		if err != nil {
			t.Fatal(err)
		}
		s := session(t, model, []string{"x"}, []string{"y"})
		in, err := ort.NewStringTensor(ort.NewShape(2))
		if err != nil {
			t.Fatal(err)
		}
		defer destroy(t, in)
		want := []string{"héllo", "weir"}
		if err := in.SetContents(want); err != nil {
			t.Fatal(err)
		}
		outs := []ort.Value{nil}
		if err := s.Run([]ort.Value{in}, outs); err != nil {
			t.Fatal(err)
		}
		defer destroy(t, outs[0])
		st, ok := outs[0].(*ort.StringTensor)
		if !ok {
			t.Fatalf("output is %T, want a string tensor", outs[0])
		}
		if got, err := st.GetContents(); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("identity gave %q %v, want %q", got, err, want)
		}
	})
}

func TestORTAddSumAllConstant(t *testing.T) {
	ortInit(t)

	add, err := Add("add", Int64, Fixed(3))
	if err != nil {
		t.Fatal(err)
	}
	s := session(t, add, []string{"a", "b"}, []string{"sum"})
	a, _ := ort.NewTensor(ort.NewShape(3), []int64{1, 2, 3})
	b, _ := ort.NewTensor(ort.NewShape(3), []int64{10, 20, -30})
	sum, _ := ort.NewEmptyTensor[int64](ort.NewShape(3))
	defer destroy(t, a, b, sum)
	if err := s.Run([]ort.Value{a, b}, []ort.Value{sum}); err != nil {
		t.Fatal(err)
	}
	if got := sum.GetData(); !reflect.DeepEqual(got, []int64{11, 22, -27}) {
		t.Errorf("add gave %v", got)
	}

	// A rank-0 output: ORT must agree it is a scalar.
	sa, err := SumAll("sum", Sym("batch"), Fixed(2))
	if err != nil {
		t.Fatal(err)
	}
	_, outs, err := ort.GetInputOutputInfoWithONNXData(sa)
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 1 || len(outs[0].Dimensions) != 0 {
		t.Errorf("SumAll output as ORT sees it: %+v, want rank 0", outs)
	}
	s = session(t, sa, []string{"x"}, []string{"total"})
	x, _ := ort.NewTensor(ort.NewShape(2, 2), []float32{1, 2, 3, 4.5})
	defer destroy(t, x)
	// onnxruntime_go cannot auto-allocate a rank-0 output ("shape has no
	// dimensions"), so the caller passes a Scalar.
	tot, err := ort.NewScalar(float32(0))
	if err != nil {
		t.Fatal(err)
	}
	defer destroy(t, tot)
	if err := s.Run([]ort.Value{x}, []ort.Value{tot}); err != nil {
		t.Fatal(err)
	}
	if got := tot.GetData(); got != 10.5 {
		t.Errorf("SumAll gave %v, want 10.5", got)
	}

	// No inputs at all: ORT loads it (weir is the one that must refuse).
	c, err := ConstantOnly("const", []float32{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(c)
	if err != nil {
		t.Fatalf("ORT refused ConstantOnly: %v", err)
	}
	if len(ins) != 0 || len(outs) != 1 || outs[0].Name != "c" {
		t.Errorf("ConstantOnly as ORT sees it: %+v -> %+v", ins, outs)
	}
}

// TestORTRefusesCorruptModel shows the ORT tests can fail: the same LR model
// with the graph's field number changed is not loadable.
func TestORTRefusesCorruptModel(t *testing.T) {
	ortInit(t)
	model, err := LogisticRegression("lr", []string{"a"}, []float32{1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var bad []byte
	err = eachField(model, func(f field) error {
		num := f.num
		if num == modelGraph {
			num = 99 // an unknown field: the model loses its graph
		}
		bad = protowire.AppendTag(bad, num, f.typ)
		switch f.typ {
		case protowire.BytesType:
			bad = protowire.AppendBytes(bad, f.bytes)
		default:
			bad = protowire.AppendVarint(bad, f.u64)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if s, err := ort.NewDynamicAdvancedSessionWithONNXData(bad, []string{"features"}, []string{"score"}, nil); err == nil {
		destroy(t, s)
		t.Fatal("ORT loaded a model without a graph")
	}
}

func BenchmarkORTMLP(b *testing.B) {
	ortInit(b)
	model, err := MLP("bench", []int{32, 64, 1}, 1)
	if err != nil {
		b.Fatal(err)
	}
	s := session(b, model, []string{"features"}, []string{"score"})
	in, _ := ort.NewTensor(ort.NewShape(1, 32), make([]float32, 32))
	out, _ := ort.NewEmptyTensor[float32](ort.NewShape(1, 1))
	defer destroy(b, in, out)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Run([]ort.Value{in}, []ort.Value{out}); err != nil {
			b.Fatal(err)
		}
	}
}
