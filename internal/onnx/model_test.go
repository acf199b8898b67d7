package onnx

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/weirhq/weir/internal/weirerr"
)

func TestBuilderRoundTrip(t *testing.T) {
	m := NewModel("fraud-lr", 17)
	m.SetMetadata(MetadataFeatures, "amount,age")
	m.SetMetadata("owner", "risk")
	g := m.Graph()
	g.Input("features", Float, Sym("batch"), Fixed(2))
	g.Input("W", Float, Fixed(2), Fixed(1)) // also an initializer: not a real input
	g.Input("mask", Bool, Dim{Value: -1}, Fixed(3))
	g.Initializer("W", Float, []int64{2, 1}, []float32{0.5, -0.25})
	g.Node("MatMul", []string{"features", "W"}, []string{"score"})
	g.Output("score", Float, Sym("batch"), Fixed(1))
	g.Output("total", Double)
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}

	ins, outs, err := ReadModelIO(b)
	if err != nil {
		t.Fatal(err)
	}
	wantIns := []ValueInfo{
		{Name: "features", DataType: Float, Shape: []Dim{Sym("batch"), Fixed(2)}},
		{Name: "mask", DataType: Bool, Shape: []Dim{{Value: -1}, Fixed(3)}},
	}
	wantOuts := []ValueInfo{
		{Name: "score", DataType: Float, Shape: []Dim{Sym("batch"), Fixed(1)}},
		{Name: "total", DataType: Double, Shape: []Dim{}},
	}
	if !reflect.DeepEqual(ins, wantIns) {
		t.Errorf("inputs %+v, want %+v", ins, wantIns)
	}
	if !reflect.DeepEqual(outs, wantOuts) {
		t.Errorf("outputs %+v, want %+v", outs, wantOuts)
	}
	if d := ins[0].Dims(); !reflect.DeepEqual(d, []int64{-1, 2}) {
		t.Errorf("Dims() = %v, want [-1 2]", d)
	}
	if d := outs[1].Dims(); d == nil || len(d) != 0 {
		t.Errorf("scalar Dims() = %#v, want empty non-nil", d)
	}

	info, err := ReadModel(b)
	if err != nil {
		t.Fatal(err)
	}
	if info.IRVersion != DefaultIRVersion || info.ProducerName != "weir" || info.Opsets[""] != 17 {
		t.Errorf("header: ir %d producer %q opsets %v", info.IRVersion, info.ProducerName, info.Opsets)
	}
	if got := info.Features(); !reflect.DeepEqual(got, []string{"amount", "age"}) {
		t.Errorf("Features() = %v", got)
	}
	if info.Metadata["owner"] != "risk" {
		t.Errorf("metadata %v", info.Metadata)
	}
}

func TestZooModelsIO(t *testing.T) {
	lr, err := LogisticRegression("lr", []string{"a", "b", "c"}, []float32{1, 2, 3}, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	mlp, err := MLP("mlp", []int{32, 64, 1}, 7)
	if err != nil {
		t.Fatal(err)
	}
	id, err := Identity("id", String, Sym("n"))
	if err != nil {
		t.Fatal(err)
	}
	add, err := Add("add", Int64, Fixed(2))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := SumAll("sum", Sym("batch"), Fixed(3))
	if err != nil {
		t.Fatal(err)
	}
	konst, err := ConstantOnly("const", []float32{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	fp32 := func(name string, dims ...Dim) ValueInfo {
		return ValueInfo{Name: name, DataType: Float, Shape: append([]Dim{}, dims...)}
	}
	cases := []struct {
		name      string
		b         []byte
		ins, outs []ValueInfo
	}{
		{"lr", lr, []ValueInfo{fp32("features", Sym("batch"), Fixed(3))}, []ValueInfo{fp32("score", Sym("batch"), Fixed(1))}},
		{"mlp", mlp, []ValueInfo{fp32("features", Sym("batch"), Fixed(32))}, []ValueInfo{fp32("score", Sym("batch"), Fixed(1))}},
		{"id", id, []ValueInfo{{"x", String, []Dim{Sym("n")}}}, []ValueInfo{{"y", String, []Dim{Sym("n")}}}},
		{"add", add, []ValueInfo{{"a", Int64, []Dim{Fixed(2)}}, {"b", Int64, []Dim{Fixed(2)}}}, []ValueInfo{{"sum", Int64, []Dim{Fixed(2)}}}},
		{"sum", sum, []ValueInfo{fp32("x", Sym("batch"), Fixed(3))}, []ValueInfo{fp32("total")}},
		{"const", konst, nil, []ValueInfo{fp32("c", Fixed(2))}},
	}
	for _, c := range cases {
		ins, outs, err := ReadModelIO(c.b)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !reflect.DeepEqual(ins, c.ins) || !reflect.DeepEqual(outs, c.outs) {
			t.Errorf("%s: io %+v -> %+v, want %+v -> %+v", c.name, ins, outs, c.ins, c.outs)
		}
	}
	info, _ := ReadModel(lr)
	if got := info.Features(); !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
		t.Errorf("lr features %v", got)
	}

	// Same seed, same bytes; another seed, other weights.
	again, _ := MLP("mlp", []int{32, 64, 1}, 7)
	other, _ := MLP("mlp", []int{32, 64, 1}, 8)
	if string(again) != string(mlp) || string(other) == string(mlp) {
		t.Error("MLP is not deterministic in its seed")
	}
}

func TestBuilderErrors(t *testing.T) {
	m := NewModel("bad", 0)
	if m.Opset != DefaultOpset {
		t.Errorf("opset %d, want default %d", m.Opset, DefaultOpset)
	}
	m.Graph().Initializer("W", Float, []int64{2}, []int64{1, 2})
	if _, err := m.Marshal(); err == nil || weirerr.KindOf(err) != weirerr.Invalid || !strings.Contains(err.Error(), "initializer W") {
		t.Errorf("Marshal with a bad initializer: %v", err)
	}
	m = NewModel("bad-attr", 0)
	m.Graph().Node("Constant", nil, []string{"c"}, AttrTensor("value", nil))
	if _, err := m.Marshal(); err == nil {
		t.Error("Marshal with a nil tensor attribute succeeded")
	}
	for _, f := range []func() ([]byte, error){
		func() ([]byte, error) { return LogisticRegression("x", []string{"a"}, []float32{1, 2}, 0) },
		func() ([]byte, error) { return LogisticRegression("x", []string{"a,b"}, []float32{1}, 0) },
		func() ([]byte, error) { return LogisticRegression("x", nil, nil, 0) },
		func() ([]byte, error) { return MLP("x", []int{3}, 1) },
		func() ([]byte, error) { return MLP("x", []int{3, 0}, 1) },
	} {
		if _, err := f(); weirerr.KindOf(err) != weirerr.Invalid {
			t.Errorf("want an Invalid error, got %v", err)
		}
	}
}

func TestReadModelErrors(t *testing.T) {
	for name, b := range map[string][]byte{
		"garbage":  {0xff, 0xff, 0xff},
		"no graph": putInt64(nil, modelIRVersion, 8),
		"text":     []byte("this is not a model"),
	} {
		if _, _, err := ReadModelIO(b); weirerr.KindOf(err) != weirerr.Invalid {
			t.Errorf("%s: err %v, want Invalid", name, err)
		}
	}
}

// TestReadModelBackendData reads models written by ONNX's own Python tools.
func TestReadModelBackendData(t *testing.T) {
	dir := testDataDir(t)
	cases := map[string]string{
		"test_and2d":                       "x:BOOL[3 4] y:BOOL[3 4] -> and:BOOL[3 4]",
		"test_cast_FLOAT_to_FLOAT16":       "input:FLOAT[3 4] -> output:FLOAT16[3 4]",
		"test_argmax_default_axis_example": "data:FLOAT[2 2] -> result:INT64[1 2]",
	}
	for test, want := range cases {
		b, err := os.ReadFile(filepath.Join(dir, test, "model.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		ins, outs, err := ReadModelIO(b)
		if err != nil {
			t.Fatalf("%s: %v", test, err)
		}
		if got := ioString(ins, outs); got != want {
			t.Errorf("%s: %s, want %s", test, got, want)
		}
	}
	// Every node test model must parse.
	models, _ := filepath.Glob(filepath.Join(dir, "*", "model.onnx"))
	if len(models) < 100 {
		t.Fatalf("only %d models under %s", len(models), dir)
	}
	for _, p := range models {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ReadModel(b); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func ioString(ins, outs []ValueInfo) string {
	var parts []string
	for _, v := range ins {
		parts = append(parts, fmt.Sprintf("%s:%s%v", v.Name, v.DataType, v.Dims()))
	}
	parts = append(parts, "->")
	for _, v := range outs {
		parts = append(parts, fmt.Sprintf("%s:%s%v", v.Name, v.DataType, v.Dims()))
	}
	return strings.Join(parts, " ")
}

func BenchmarkMLPBuild(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := MLP("bench", []int{32, 64, 1}, 1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadModelIO(b *testing.B) {
	m, err := MLP("bench", []int{32, 64, 1}, 1)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(m)))
	for b.Loop() {
		if _, _, err := ReadModelIO(m); err != nil {
			b.Fatal(err)
		}
	}
}
