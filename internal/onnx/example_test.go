package onnx_test

import (
	"fmt"

	"github.com/weirhq/weir/internal/onnx"
)

func Example() {
	m := onnx.NewModel("fraud-lr", 17)
	m.SetMetadata(onnx.MetadataFeatures, "amount,age")
	g := m.Graph()
	g.Input("features", onnx.Float, onnx.Sym("batch"), onnx.Fixed(2))
	g.Initializer("W", onnx.Float, []int64{2, 1}, []float32{0.8, -0.1})
	g.Initializer("B", onnx.Float, []int64{1}, []float32{0.05})
	g.Node("Gemm", []string{"features", "W", "B"}, []string{"logit"}, onnx.AttrFloat("alpha", 1))
	g.Node("Sigmoid", []string{"logit"}, []string{"score"})
	g.Output("score", onnx.Float, onnx.Sym("batch"), onnx.Fixed(1))
	b, err := m.Marshal()
	if err != nil {
		panic(err)
	}

	info, err := onnx.ReadModel(b)
	if err != nil {
		panic(err)
	}
	for _, in := range info.Inputs {
		oip, _ := in.DataType.OIP()
		fmt.Println("input", in.Name, oip, in.Shape, in.Dims())
	}
	for _, out := range info.Outputs {
		fmt.Println("output", out.Name, out.DataType, out.Shape)
	}
	fmt.Println("features", info.Features())
	// Output:
	// input features FP32 [batch 2] [-1 2]
	// output score FLOAT [batch 1]
	// features [amount age]
}
