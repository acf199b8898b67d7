package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testgw"
)

// converterStyleModel is what skl2onnx, onnxmltools and torch.onnx.export
// produce for a linear model: input "float_input" FP32 [batch, 3] (the
// converters' default name, a dynamic batch), output "probabilities" FP32
// [batch, 1], and no weir metadata: the feature order comes from the upload.
// score = sigmoid(2a - b + 0.5c).
func converterStyleModel(t *testing.T) []byte {
	t.Helper()
	m := onnx.NewModel("converted", onnx.DefaultOpset)
	g := m.Graph()
	g.Input("float_input", onnx.Float, onnx.Sym("N"), onnx.Fixed(3))
	g.Initializer("W", onnx.Float, []int64{3, 1}, []float32{2, -1, 0.5})
	g.Initializer("B", onnx.Float, []int64{1}, []float32{0})
	g.Node("Gemm", []string{"float_input", "W", "B"}, []string{"logit"})
	g.Node("Sigmoid", []string{"logit"}, []string{"probabilities"})
	g.Output("probabilities", onnx.Float, onnx.Sym("N"), onnx.Fixed(1))
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestModelInputContract checks docs/models.md's contract with a model
// shaped like the converters' output: the feature list given at upload sets
// the column order whatever the input's name, a reference CSV whose header
// is in another order is accepted by name, JSON rows are packed by name, and
// a missing feature is a 400 naming it.
func TestModelInputContract(t *testing.T) {
	g := testgw.Start(t)
	ctx := context.Background()
	if err := g.Client.PushModel(ctx, "conv", "1", bytes.NewReader(converterStyleModel(t)), []string{"a", "b", "c"}); err != nil {
		t.Fatalf("push: %v", err)
	}
	ref := "c,a,b\n0.5,1,2\n0.25,0.5,1\n1,2,0\n"
	if err := g.Client.PushReference(ctx, "conv", "1", strings.NewReader(ref), "text/csv"); err != nil {
		t.Fatalf("reference with its header in another order: %v", err)
	}
	post := func(body string) (int, string) {
		resp, err := http.Post(g.URL+"/v1/routes/conv/predict", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// sigmoid(2·1 - 3 + 0.5·2) = sigmoid(0) = 0.5: a, b and c went into
	// their own columns (any other order gives another score).
	status, body := post(`{"c":2,"b":3,"a":1}`)
	var ans struct {
		Outputs map[string]json.RawMessage `json:"outputs"`
	}
	if status != 200 || json.Unmarshal([]byte(body), &ans) != nil {
		t.Fatalf("predict: %d %s", status, body)
	}
	var v any
	raw := ans.Outputs["probabilities"]
	json.Unmarshal(raw, &v)
	var score []float64
	var flatten func(any)
	flatten = func(x any) {
		switch x := x.(type) {
		case []any:
			for _, e := range x {
				flatten(e)
			}
		case float64:
			score = append(score, x)
		}
	}
	flatten(v)
	if len(score) != 1 || score[0] < 0.4999 || score[0] > 0.5001 {
		t.Errorf("score of a=1,b=3,c=2 is %s, want 0.5 (features packed by name in the upload's order)", raw)
	}
	status, body = post(`{"a":1,"b":3}`)
	if status != 400 || !strings.Contains(body, `\"c\"`) {
		t.Errorf("missing feature c: %d %s, want 400 naming c", status, body)
	}
	// The OIP path takes the converter's input name as is.
	status2, body2 := callJSON(t, g.URL+"/v2/models/conv/infer", `{"inputs":[{"name":"float_input","shape":[1,3],"datatype":"FP32","data":[1,3,2]}]}`)
	if status2 != 200 || !strings.Contains(body2, `"probabilities"`) {
		t.Errorf("OIP infer with the converter's input name: %d %s", status2, body2)
	}
}

func callJSON(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
