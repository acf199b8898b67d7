package onnx

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/weirhq/weir/internal/weirerr"
)

// Ready-made models for tests, benchmarks and the demo. Each returns
// ModelProto bytes that ONNX Runtime loads (proven in ort_test.go).

// LogisticRegression is score = sigmoid(features · weights + bias):
// input "features" FLOAT [batch, n] -> Gemm -> Sigmoid -> output "score"
// FLOAT [batch, 1], with n = len(weights). The feature names are stored in
// metadata_props under MetadataFeatures, comma-separated.
func LogisticRegression(name string, features []string, weights []float32, bias float32) ([]byte, error) {
	n := len(weights)
	if n == 0 {
		return nil, weirerr.Invalidf("logistic regression %s: no weights", name)
	}
	if len(features) != n {
		return nil, weirerr.Invalidf("logistic regression %s: %d feature names for %d weights", name, len(features), n)
	}
	for _, f := range features {
		if f == "" || strings.Contains(f, ",") {
			return nil, weirerr.Invalidf("logistic regression %s: feature name %q must be non-empty and contain no comma", name, f)
		}
	}
	m := NewModel(name, DefaultOpset)
	m.SetMetadata(MetadataFeatures, strings.Join(features, ","))
	g := m.Graph()
	g.Input("features", Float, Sym("batch"), Fixed(int64(n)))
	g.Initializer("W", Float, []int64{int64(n), 1}, weights)
	g.Initializer("B", Float, []int64{1}, []float32{bias})
	g.Node("Gemm", []string{"features", "W", "B"}, []string{"logit"})
	g.Node("Sigmoid", []string{"logit"}, []string{"score"})
	g.Output("score", Float, Sym("batch"), Fixed(1))
	return m.Marshal()
}

// MLP is a multilayer perceptron with sizes[0] inputs and sizes[len-1]
// outputs: input "features" FLOAT [batch, sizes[0]], Gemm+Relu for each
// hidden layer, Gemm+Sigmoid last, output "score" FLOAT [batch, sizes[-1]].
// Weights are pseudo-random from seed (same seed, same bytes), scaled by
// 1/sqrt(fan-in) so the output does not saturate.
func MLP(name string, sizes []int, seed int64) ([]byte, error) {
	if len(sizes) < 2 {
		return nil, weirerr.Invalidf("mlp %s: sizes %v need at least an input and an output size", name, sizes)
	}
	for _, s := range sizes {
		if s <= 0 {
			return nil, weirerr.Invalidf("mlp %s: sizes %v must all be positive", name, sizes)
		}
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5745495221)) // "WEIR!"
	m := NewModel(name, DefaultOpset)
	g := m.Graph()
	g.Input("features", Float, Sym("batch"), Fixed(int64(sizes[0])))
	h := "features"
	for l := 0; l+1 < len(sizes); l++ {
		in, out := sizes[l], sizes[l+1]
		scale := float32(1 / math.Sqrt(float64(in)))
		w := make([]float32, in*out)
		for i := range w {
			w[i] = (rng.Float32()*2 - 1) * scale
		}
		b := make([]float32, out)
		for i := range b {
			b[i] = (rng.Float32()*2 - 1) * 0.1
		}
		wn, bn, z := fmt.Sprintf("W%d", l), fmt.Sprintf("B%d", l), fmt.Sprintf("z%d", l)
		g.Initializer(wn, Float, []int64{int64(in), int64(out)}, w)
		g.Initializer(bn, Float, []int64{int64(out)}, b)
		g.Node("Gemm", []string{h, wn, bn}, []string{z})
		act, next := "Relu", fmt.Sprintf("h%d", l)
		if l+2 == len(sizes) {
			act, next = "Sigmoid", "score"
		}
		g.Node(act, []string{z}, []string{next})
		h = next
	}
	g.Output("score", Float, Sym("batch"), Fixed(int64(sizes[len(sizes)-1])))
	return m.Marshal()
}

// Identity is y = x for one input "x" and one output "y" of type dt and
// shape dims: the model for testing every datatype end to end.
func Identity(name string, dt DataType, dims ...Dim) ([]byte, error) {
	m := NewModel(name, DefaultOpset)
	g := m.Graph()
	g.Input("x", dt, dims...)
	g.Node("Identity", []string{"x"}, []string{"y"})
	g.Output("y", dt, dims...)
	return m.Marshal()
}

// Add is sum = a + b for two inputs "a" and "b" of type dt and shape dims:
// a model with more than one input.
func Add(name string, dt DataType, dims ...Dim) ([]byte, error) {
	m := NewModel(name, DefaultOpset)
	g := m.Graph()
	g.Input("a", dt, dims...)
	g.Input("b", dt, dims...)
	g.Node("Add", []string{"a", "b"}, []string{"sum"})
	g.Output("sum", dt, dims...)
	return m.Marshal()
}

// SumAll is total = sum of every element of "x" (ReduceSum, keepdims=0): a
// model whose output is a rank-0 scalar. x is FLOAT of shape dims.
func SumAll(name string, dims ...Dim) ([]byte, error) {
	m := NewModel(name, DefaultOpset)
	g := m.Graph()
	g.Input("x", Float, dims...)
	g.Node("ReduceSum", []string{"x"}, []string{"total"}, AttrInt("keepdims", 0))
	g.Output("total", Float)
	return m.Marshal()
}

// ConstantOnly has no inputs: one Constant node yields output "c", the
// FLOAT values with shape [len(values)]. Weir must refuse it (nothing to
// feed), so it tests that path.
func ConstantOnly(name string, values []float32) ([]byte, error) {
	m := NewModel(name, DefaultOpset)
	g := m.Graph()
	n := int64(len(values))
	g.Node("Constant", nil, []string{"c"},
		AttrTensor("value", &Tensor{Name: "c_value", DataType: Float, Dims: []int64{n}, Values: values}))
	g.Output("c", Float, Fixed(n))
	return m.Marshal()
}
