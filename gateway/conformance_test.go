package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/weirhq/weir/internal/golden"
	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/models"
	pb "github.com/weirhq/weir/oipgrpc/inferencepb"
	"github.com/weirhq/weir/sdk/client"
)

const backendTests = "/usr/share/libonnx-testdata/data/node"

// TestONNXBackendConformance runs ONNX's own backend node tests (Debian's
// libonnx-testdata) through weir's HTTP API and its gRPC service: upload
// each model, send its reference inputs as OIP JSON (encoded here, not by
// the code under test), as gRPC raw_input_contents and over HTTP with the
// binary tensor extension (binary outputs too), and compare the outputs of
// all three, matched by name, with the reference outputs (rtol 1e-3, atol
// 1e-5, NaN equals NaN). A test passes only when every path passes it, and
// a runtime refusal must be one on JSON and gRPC alike.
//
// Every test's outcome, pass or skip with its reason, is pinned in
// testdata/conformance.golden: a test that newly skips, newly passes or
// changes its reason fails this test, so a regression cannot hide as a skip.
// After a deliberate change, rewrite the file with
// `go test ./gateway -run Conformance -update`. Under -short every tenth
// test, across the whole alphabet, is run and checked against its line.
func TestONNXBackendConformance(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join(backendTests, "*", "model.onnx"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no ONNX backend tests under %s: install Debian's libonnx-testdata (make debs)", backendTests)
	}
	sort.Strings(dirs)
	step := 1
	if testing.Short() {
		step = 10
	}
	want := readOutcomes(t)
	g := testgw.Start(t)
	ctx := context.Background()
	cc, err := grpc.NewClient(g.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	gc := pb.NewGRPCInferenceServiceClient(cc)
	got := map[string]string{}
	var passed, failed, skipped int
	for i := 0; i < len(dirs); i += step {
		dir := filepath.Dir(dirs[i])
		name := filepath.Base(dir)
		reason, err := runBackendTest(ctx, g, gc, dir, name)
		switch {
		case err != nil:
			failed++
			t.Errorf("%s: %v", name, err)
			got[name] = "fail"
		case reason != "":
			skipped++
			got[name] = "skip: " + reason
		default:
			passed++
			got[name] = "pass"
		}
	}
	report := fmt.Sprintf("ONNX backend node tests through the HTTP API (JSON and binary) and gRPC: %d passed, %d failed, %d skipped of %d run (%d in the suite)",
		passed, failed, skipped, len(got), len(dirs))
	t.Log(report)
	fmt.Println(report)
	if golden.Updating() {
		if step != 1 {
			t.Fatal("-update needs the whole suite: run without -short")
		}
		writeOutcomes(t, got)
		return
	}
	var changed []string
	for name, outcome := range got {
		if w, ok := want[name]; !ok {
			changed = append(changed, fmt.Sprintf("%s: %s (not in the golden file)", name, outcome))
		} else if w != outcome {
			changed = append(changed, fmt.Sprintf("%s: %s, was %s", name, outcome, w))
		}
	}
	if step == 1 {
		for name, w := range want {
			if _, ok := got[name]; !ok {
				changed = append(changed, fmt.Sprintf("%s: gone from the suite, was %s", name, w))
			}
		}
	}
	sort.Strings(changed)
	if len(changed) > 0 {
		t.Errorf("%d backend tests changed outcome against testdata/%s (if deliberate, rerun with -update):\n  %s",
			len(changed), outcomesFile, strings.Join(changed, "\n  "))
	}
}

const outcomesFile = "conformance.golden"

// readOutcomes reads the golden outcome of every backend test: lines of
// "name<TAB>pass" or "name<TAB>skip: reason".
func readOutcomes(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", outcomesFile))
	if err != nil {
		if golden.Updating() {
			return nil
		}
		t.Fatalf("%v (run go test -run Conformance -update to create it)", err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		name, outcome, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("testdata/%s: line %q is not name<TAB>outcome", outcomesFile, line)
		}
		out[name] = outcome
	}
	return out
}

func writeOutcomes(t *testing.T, got map[string]string) {
	t.Helper()
	names := make([]string, 0, len(got))
	for n := range got {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s\t%s\n", n, got[n])
	}
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", outcomesFile), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
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
func runBackendTest(ctx context.Context, g *testgw.Gateway, gc pb.GRPCInferenceServiceClient, dir, name string) (skip string, err error) {
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
		data, err := jsonValues(in.Values)
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
	greq, err := rawRequest(modelName, req.Inputs, ins)
	if err != nil {
		return "", err
	}
	gresp, gerr := gc.ModelInfer(ctx, greq)
	raw, err := g.Client.Infer(ctx, modelName, "", body)
	if err != nil {
		if ce, ok := err.(*client.Error); ok && ce.Status == 400 && strings.Contains(ce.Message, "ONNX Runtime rejected") {
			if st, _ := status.FromError(gerr); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "ONNX Runtime rejected") {
				return "", fmt.Errorf("HTTP: %v; gRPC: %v", ce.Message, gerr)
			}
			return "ONNX Runtime fails to run it: " + firstWords(ce.Message), nil
		}
		return "", fmt.Errorf("infer: %w", err)
	}
	if gerr != nil {
		return "", fmt.Errorf("gRPC infer: %w", gerr)
	}
	if err := checkGRPCOutputs(gresp, outs); err != nil {
		return "", fmt.Errorf("gRPC: %w", err)
	}
	bresp, err := inferBinary(ctx, g.URL, greq)
	if err != nil {
		return "", fmt.Errorf("HTTP binary infer: %w", err)
	}
	if err := checkGRPCOutputs(bresp, outs); err != nil {
		return "", fmt.Errorf("HTTP binary: %w", err)
	}
	var resp struct {
		Outputs []oipOutput `json:"outputs"`
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		return "", err
	}
	if len(resp.Outputs) != len(outs) {
		return "", fmt.Errorf("%d outputs, want %d", len(resp.Outputs), len(outs))
	}
	for i, want := range outs {
		got := resp.Outputs[i]
		if want.Name != "" {
			j := slices.IndexFunc(resp.Outputs, func(o oipOutput) bool { return o.Name == want.Name })
			if j < 0 {
				return "", fmt.Errorf("no output named %q in the answer", want.Name)
			}
			got = resp.Outputs[j]
		}
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

type oipOutput struct {
	Name     string  `json:"name"`
	Shape    []int64 `json:"shape"`
	Datatype string  `json:"datatype"`
	Data     []any   `json:"data"`
}

// jsonValues writes a reference tensor's values as OIP JSON data, by its own
// rules rather than the models package's: floats in shortest form with
// "NaN", "Infinity" and "-Infinity" as strings, integers in decimal, bools,
// and strings (BYTES) as JSON strings.
func jsonValues(values any) (json.RawMessage, error) {
	v := reflect.ValueOf(values)
	if v.Kind() != reflect.Slice {
		return nil, fmt.Errorf("reference values of type %T are not a slice", values)
	}
	b := []byte{'['}
	for i := range v.Len() {
		if i > 0 {
			b = append(b, ',')
		}
		switch e := v.Index(i); e.Kind() {
		case reflect.Float32, reflect.Float64:
			f := e.Float()
			switch {
			case math.IsNaN(f):
				b = append(b, `"NaN"`...)
			case math.IsInf(f, 1):
				b = append(b, `"Infinity"`...)
			case math.IsInf(f, -1):
				b = append(b, `"-Infinity"`...)
			default:
				b = strconv.AppendFloat(b, f, 'g', -1, e.Type().Bits())
			}
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			b = strconv.AppendInt(b, e.Int(), 10)
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			b = strconv.AppendUint(b, e.Uint(), 10)
		case reflect.Bool:
			b = strconv.AppendBool(b, e.Bool())
		case reflect.String:
			s, err := json.Marshal(e.String())
			if err != nil {
				return nil, err
			}
			b = append(b, s...)
		default:
			return nil, fmt.Errorf("reference values of type %T have no JSON form here", values)
		}
	}
	return append(b, ']'), nil
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
	return strings.TrimSpace(msg)
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

// rawRequest is a backend test's inputs as a gRPC request, in
// raw_input_contents.
func rawRequest[In any](model string, inputs []In, ins []*onnx.Tensor) (*pb.ModelInferRequest, error) {
	req := &pb.ModelInferRequest{ModelName: model}
	for i, in := range ins {
		dt, _ := in.DataType.OIP()
		name := reflect.ValueOf(inputs[i]).FieldByName("Name").String()
		shape := in.Dims
		if shape == nil {
			shape = []int64{}
		}
		b, err := models.AppendRaw(nil, models.Datatype(dt), in.Values)
		if err != nil {
			return nil, err
		}
		req.Inputs = append(req.Inputs, &pb.ModelInferRequest_InferInputTensor{Name: name, Datatype: dt, Shape: shape})
		req.RawInputContents = append(req.RawInputContents, b)
	}
	return req, nil
}

// inferBinary sends a gRPC request's raw inputs over HTTP with the binary
// tensor extension (the same raw layout), asks for every output as binary
// data, and returns the answer as the gRPC response it stands for, so that
// checkGRPCOutputs checks it.
func inferBinary(ctx context.Context, url string, greq *pb.ModelInferRequest) (*pb.ModelInferResponse, error) {
	type tensor struct {
		Name       string         `json:"name"`
		Shape      []int64        `json:"shape"`
		Datatype   string         `json:"datatype"`
		Parameters map[string]int `json:"parameters"`
	}
	var header struct {
		Inputs     []tensor        `json:"inputs"`
		Parameters map[string]bool `json:"parameters"`
	}
	header.Parameters = map[string]bool{"binary_data_output": true}
	for i, in := range greq.Inputs {
		header.Inputs = append(header.Inputs, tensor{in.Name, in.Shape, in.Datatype, map[string]int{"binary_data_size": len(greq.RawInputContents[i])}})
	}
	body, err := json.Marshal(header)
	if err != nil {
		return nil, err
	}
	hlen := len(body)
	body = slices.Concat(append([][]byte{body}, greq.RawInputContents...)...)
	req, err := http.NewRequestWithContext(ctx, "POST", url+"/v2/models/"+greq.ModelName+"/infer", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Inference-Header-Content-Length", strconv.Itoa(hlen))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(resp.Header.Get("Inference-Header-Content-Length"))
	if resp.StatusCode != 200 || err != nil || n > len(raw) {
		return nil, fmt.Errorf("status %d, Inference-Header-Content-Length %q: %s", resp.StatusCode, resp.Header.Get("Inference-Header-Content-Length"), raw)
	}
	var answer struct {
		Outputs []tensor `json:"outputs"`
	}
	if err := json.Unmarshal(raw[:n], &answer); err != nil {
		return nil, err
	}
	out, rest := &pb.ModelInferResponse{}, raw[n:]
	for _, o := range answer.Outputs {
		size, ok := o.Parameters["binary_data_size"]
		if !ok || size > len(rest) {
			return nil, fmt.Errorf("output %q: binary_data_size %d, %d bytes left", o.Name, size, len(rest))
		}
		out.Outputs = append(out.Outputs, &pb.ModelInferResponse_InferOutputTensor{Name: o.Name, Datatype: o.Datatype, Shape: o.Shape})
		out.RawOutputContents = append(out.RawOutputContents, rest[:size])
		rest = rest[size:]
	}
	if len(rest) > 0 {
		return nil, fmt.Errorf("%d bytes after the last output", len(rest))
	}
	return out, nil
}

func checkGRPCOutputs(resp *pb.ModelInferResponse, outs []*onnx.Tensor) error {
	if len(resp.Outputs) != len(outs) || len(resp.RawOutputContents) != len(outs) {
		return fmt.Errorf("%d outputs (%d raw), want %d", len(resp.Outputs), len(resp.RawOutputContents), len(outs))
	}
	for i, want := range outs {
		got, j := resp.Outputs[i], i
		if want.Name != "" {
			j = slices.IndexFunc(resp.Outputs, func(o *pb.ModelInferResponse_InferOutputTensor) bool { return o.Name == want.Name })
			if j < 0 {
				return fmt.Errorf("no output named %q in the answer", want.Name)
			}
			got = resp.Outputs[j]
		}
		wdt, _ := want.DataType.OIP()
		if got.Datatype != wdt {
			return fmt.Errorf("output %d %q: datatype %s, want %s", i, got.Name, got.Datatype, wdt)
		}
		wdims := want.Dims
		if wdims == nil {
			wdims = []int64{}
		}
		if !reflect.DeepEqual(append([]int64{}, got.Shape...), wdims) {
			return fmt.Errorf("output %d %q: shape %v, want %v", i, got.Name, got.Shape, wdims)
		}
		n, _ := models.ElementCount(got.Shape)
		vals, err := models.DecodeRaw(models.Datatype(got.Datatype), resp.RawOutputContents[j], n)
		if err != nil {
			return fmt.Errorf("output %d %q: %w", i, got.Name, err)
		}
		if err := compareValues(anySlice(vals), want.Values); err != nil {
			return fmt.Errorf("output %d %q: %w", i, got.Name, err)
		}
	}
	return nil
}

// anySlice turns typed values into what JSON decoding gives: numbers as
// float64 (non-finite ones as the strings weir writes), strings, booleans.
func anySlice(vals any) []any {
	v := reflect.ValueOf(vals)
	out := make([]any, v.Len())
	for i := range out {
		switch x := v.Index(i).Interface().(type) {
		case string, bool:
			out[i] = x
		default:
			f := v.Index(i).Convert(reflect.TypeOf(float64(0))).Float()
			switch {
			case math.IsNaN(f):
				out[i] = "NaN"
			case math.IsInf(f, 1):
				out[i] = "Infinity"
			case math.IsInf(f, -1):
				out[i] = "-Infinity"
			default:
				out[i] = f
			}
		}
	}
	return out
}
