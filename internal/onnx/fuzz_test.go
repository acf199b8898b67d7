package onnx

import (
	"testing"
)

// The decoders read bytes uploaded by users: they must return errors, never
// panic or allocate beyond what the input describes.

func FuzzDecodeTensor(f *testing.F) {
	for _, tt := range []*Tensor{
		{Name: "f", DataType: Float, Dims: []int64{2}, Values: []float32{1, 2}},
		{Name: "s", DataType: String, Dims: []int64{1}, Values: []string{"x"}},
		{Name: "h", DataType: Float16, Dims: []int64{}, Values: []float32{1}},
	} {
		b, err := EncodeTensor(tt)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tt, err := DecodeTensor(b)
		if err != nil {
			return
		}
		// Whatever decodes must encode and decode to the same thing (except
		// BFLOAT16, which EncodeTensor does not write).
		if tt.DataType == BFloat16 {
			return
		}
		if _, err := EncodeTensor(tt); err != nil {
			t.Fatalf("decoded %s but cannot encode it: %v", tt, err)
		}
	})
}

func FuzzReadModel(f *testing.F) {
	lr, err := LogisticRegression("lr", []string{"a", "b"}, []float32{1, 2}, 0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(lr)
	sum, err := SumAll("s", Sym("n"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sum)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = ReadModelIO(b)
	})
}
