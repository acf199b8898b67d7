package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/models"
	"github.com/weirhq/weir/sdk/client"
)

const backendTests = "/usr/share/libonnx-testdata/data/node"

// TestONNXBackendConformance runs ONNX's own backend node tests (Debian's
// libonnx-testdata) through weir's HTTP API: upload each model, send its
// reference inputs as OIP JSON, and compare the outputs with the reference
// outputs (rtol 1e-3, atol 1e-5, NaN equals NaN). Tests whose tensors have no
// OIP datatype, or that ONNX Runtime itself cannot load, are skipped and
// counted by reason, not hidden.
func TestONNXBackendConformance(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join(backendTests, "*", "model.onnx"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no ONNX backend tests under %s: install Debian's libonnx-testdata (make debs)", backendTests)
	}
	if testing.Short() {
		dirs = dirs[:len(dirs)/10]
	}
	g := testgw.Start(t)
	ctx := context.Background()
	var passed, failed int
	skipped := map[string][]string{}
	for _, p := range dirs {
		dir := filepath.Dir(p)
		name := filepath.Base(dir)
		reason, err := runBackendTest(ctx, g, dir, name)
		switch {
		case err != nil:
			failed++
			t.Errorf("%s: %v", name, err)
		case reason != "":
			skipped[reason] = append(skipped[reason], name)
		default:
			passed++
		}
	}
	nskip := 0
	reasons := make([]string, 0, len(skipped))
	for r, names := range skipped {
		nskip += len(names)
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool { return len(skipped[reasons[i]]) > len(skipped[reasons[j]]) })
	var report strings.Builder
	fmt.Fprintf(&report, "ONNX backend node tests through the HTTP API: %d passed, %d failed, %d skipped of %d\n", passed, failed, nskip, len(dirs))
	for _, r := range reasons {
		names := skipped[r]
		show := names
		if len(show) > 6 {
			show = append(show[:6:6], fmt.Sprintf("... %d more", len(names)-6))
		}
		fmt.Fprintf(&report, "  skipped %4d: %s (%s)\n", len(names), r, strings.Join(show, ", "))
	}
	t.Log(report.String())
	fmt.Print(report.String())
	if passed < len(dirs)/2 {
		t.Errorf("only %d of %d backend tests passed", passed, len(dirs))
	}
}

// knownDeviations are backend tests whose reference ONNX Runtime itself does
// not reproduce: random operators, and results that ONNX Runtime's own
// backend test filters exclude.
var knownDeviations = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{"test_bernoulli", "test_bernoulli_double", "test_bernoulli_double_expanded",
		"test_bernoulli_expanded", "test_bernoulli_seed", "test_bernoulli_seed_expanded",
		"test_training_dropout", "test_training_dropout_default", "test_training_dropout_default_mask",
		"test_training_dropout_mask"} {
		m[n] = "random output, no fixed reference"
	}
	for _, n := range []string{"test_cast_FLOAT_to_STRING", "test_castlike_FLOAT_to_STRING",
		"test_castlike_FLOAT_to_STRING_expanded", "test_dft", "test_dft_axis", "test_dft_inverse",
		"test_maxunpool_export_with_output_shape", "test_resize_downsample_scales_cubic_align_corners",
		"test_resize_downsample_scales_linear_align_corners", "test_stft", "test_stft_with_window"} {
		m[n] = "ONNX Runtime's result differs from the reference (excluded by its own backend test filters)"
	}
	return m
}()

// runBackendTest returns a skip reason, or an error when weir got it wrong.
func runBackendTest(ctx context.Context, g *testgw.Gateway, dir, name string) (skip string, err error) {
	modelBytes, err := os.ReadFile(filepath.Join(dir, "model.onnx"))
	if err != nil {
		return "", err
	}
	if reason, ok := knownDeviations[name]; ok {
		return reason, nil
	}
	ins, err := readTensors(filepath.Join(dir, "test_data_set_0"), "input")
	if err != nil {
		return "reference data is a sequence or optional, not a tensor", nil
	}
	outs, err := readTensors(filepath.Join(dir, "test_data_set_0"), "output")
	if err != nil {
		return "reference data is a sequence or optional, not a tensor", nil
	}
	for _, tt := range append(append([]*onnx.Tensor{}, ins...), outs...) {
		if _, ok := tt.DataType.OIP(); !ok {
			return "tensor of type " + tt.DataType.String() + " has no OIP datatype", nil
		}
	}
	if len(outs) == 0 {
		return "no reference outputs", nil
	}
	modelName := strings.ReplaceAll(strings.TrimPrefix(name, "test_"), "+", "_")
	if len(modelName) > 64 {
		modelName = modelName[:64]
	}
	if err := g.Client.PushModel(ctx, modelName, "1", bytes.NewReader(modelBytes), nil); err != nil {
		if ce, ok := err.(*client.Error); ok && ce.Status == 400 {
			return classify(ce.Message), nil
		}
		return "", fmt.Errorf("upload: %w", err)
	}
	defer g.Client.DeleteModel(ctx, modelName, "1")

	var md struct {
		Inputs []struct {
			Name string `json:"name"`
		} `json:"inputs"`
	}
	if err := g.Client.Get(ctx, "/v2/models/"+modelName, &md); err != nil {
		return "", err
	}
	if len(md.Inputs) != len(ins) {
		return "optional or omitted inputs", nil
	}
	type input struct {
		Name     string          `json:"name"`
		Shape    []int64         `json:"shape"`
		Datatype string          `json:"datatype"`
		Data     json.RawMessage `json:"data"`
	}
	req := struct {
		Inputs []input `json:"inputs"`
	}{}
	for i, in := range ins {
		dt, _ := in.DataType.OIP()
		data, err := models.TensorData{Values: in.Values}.AppendJSON(nil)
		if err != nil {
			return "", err
		}
		name := in.Name
		if name == "" {
			name = md.Inputs[i].Name
		}
		shape := in.Dims
		if shape == nil {
			shape = []int64{}
		}
		req.Inputs = append(req.Inputs, input{Name: name, Shape: shape, Datatype: dt, Data: data})
	}
	body, _ := json.Marshal(req)
	raw, err := g.Client.Infer(ctx, modelName, "", body)
	if err != nil {
		if ce, ok := err.(*client.Error); ok && ce.Status == 400 && strings.Contains(ce.Message, "ONNX Runtime rejected") {
			return "ONNX Runtime fails to run it: " + firstWords(ce.Message), nil
		}
		return "", fmt.Errorf("infer: %w", err)
	}
	var resp struct {
		Outputs []struct {
			Name     string  `json:"name"`
			Shape    []int64 `json:"shape"`
			Datatype string  `json:"datatype"`
			Data     []any   `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		return "", err
	}
	if len(resp.Outputs) != len(outs) {
		return "", fmt.Errorf("%d outputs, want %d", len(resp.Outputs), len(outs))
	}
	for i, want := range outs {
		got := resp.Outputs[i]
		wdt, _ := want.DataType.OIP()
		if got.Datatype != wdt {
			return "", fmt.Errorf("output %d %q: datatype %s, want %s", i, got.Name, got.Datatype, wdt)
		}
		wdims := want.Dims
		if wdims == nil {
			wdims = []int64{}
		}
		if !reflect.DeepEqual(got.Shape, wdims) {
			return "", fmt.Errorf("output %d %q: shape %v, want %v", i, got.Name, got.Shape, wdims)
		}
		if err := compareValues(got.Data, want.Values); err != nil {
			return "", fmt.Errorf("output %d %q: %w", i, got.Name, err)
		}
	}
	return "", nil
}

func readTensors(dir, prefix string) ([]*onnx.Tensor, error) {
	var out []*onnx.Tensor
	for i := 0; ; i++ {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%s_%d.pb", prefix, i)))
		if os.IsNotExist(err) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		t, err := onnx.DecodeTensor(b)
		if err != nil {
			return nil, fmt.Errorf("%s_%d.pb: %w", prefix, i, err)
		}
		out = append(out, t)
	}
}

// classify groups upload refusals into a few readable reasons.
func classify(msg string) string {
	switch {
	case strings.Contains(msg, "has element type"):
		return "a tensor type without an OIP datatype"
	case strings.Contains(msg, "is a Sequence") || strings.Contains(msg, "is a Map") || strings.Contains(msg, "is a Optional") || strings.Contains(msg, "is a ") && strings.Contains(msg, "serves models whose inputs and outputs are tensors"):
		return "non-tensor inputs or outputs (sequence, map, optional)"
	case strings.Contains(msg, "ONNX Runtime cannot load"):
		return "ONNX Runtime cannot load it: " + firstWords(msg)
	}
	return "refused at upload: " + firstWords(msg)
}

func firstWords(msg string) string {
	for _, p := range []string{"ONNX Runtime cannot load the model: ", "ONNX Runtime rejected the request: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	if i := strings.IndexAny(msg, ":\n"); i > 0 && i < 60 {
		msg = msg[:i]
	}
	if len(msg) > 60 {
		msg = msg[:60]
	}
	return msg
}

func compareValues(got []any, want any) error {
	wv := reflect.ValueOf(want)
	if wv.Len() != len(got) {
		return fmt.Errorf("%d values, want %d", len(got), wv.Len())
	}
	for i := range got {
		w := wv.Index(i).Interface()
		switch w := w.(type) {
		case string:
			if got[i] != w {
				return fmt.Errorf("value %d: %v, want %q", i, got[i], w)
			}
		case bool:
			if got[i] != w {
				return fmt.Errorf("value %d: %v, want %v", i, got[i], w)
			}
		default:
			wf := reflect.ValueOf(w).Convert(reflect.TypeOf(float64(0))).Float()
			gf, ok := asFloat(got[i])
			if !ok {
				return fmt.Errorf("value %d: %v is not a number", i, got[i])
			}
			if !approxEqual(gf, wf) {
				return fmt.Errorf("value %d: %v, want %v", i, gf, wf)
			}
		}
	}
	return nil
}

func asFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case string:
		switch x {
		case "NaN":
			return math.NaN(), true
		case "Infinity":
			return math.Inf(1), true
		case "-Infinity":
			return math.Inf(-1), true
		}
	}
	return 0, false
}

func approxEqual(got, want float64) bool {
	if math.IsNaN(got) || math.IsNaN(want) {
		return math.IsNaN(got) && math.IsNaN(want)
	}
	if math.IsInf(want, 0) {
		return got == want
	}
	return math.Abs(got-want) <= 1e-5+1e-3*math.Abs(want)
}
