package gateway_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/models"
)

// binaryCase is one datatype's sample data, typed as models.TensorData holds it.
type binaryCase struct {
	dt     onnx.DataType
	oip    string
	values any // 6 elements
}

var binaryCases = []binaryCase{
	{onnx.Bool, "BOOL", []bool{true, false, true, true, false, false}},
	{onnx.Uint8, "UINT8", []uint8{0, 1, 127, 128, 254, 255}},
	{onnx.Uint16, "UINT16", []uint16{0, 1, 300, 65535, 7, 8}},
	{onnx.Uint32, "UINT32", []uint32{0, 1, 1 << 31, math.MaxUint32, 7, 8}},
	{onnx.Uint64, "UINT64", []uint64{0, 1, 1 << 63, math.MaxUint64, 7, 8}},
	{onnx.Int8, "INT8", []int8{-128, -1, 0, 1, 127, 5}},
	{onnx.Int16, "INT16", []int16{-32768, -1, 0, 1, 32767, 5}},
	{onnx.Int32, "INT32", []int32{math.MinInt32, -1, 0, 1, math.MaxInt32, 5}},
	{onnx.Int64, "INT64", []int64{math.MinInt64, -1, 0, 1, math.MaxInt64, 9007199254740993}},
	{onnx.Float16, "FP16", []float32{0, -1.5, 65504, 0.000061035156, float32(math.Inf(1)), 3.140625}},
	{onnx.Float, "FP32", []float32{0, -1.5, math.MaxFloat32, math.SmallestNonzeroFloat32, float32(math.Inf(-1)), 3.14159}},
	{onnx.Double, "FP64", []float64{0, -1.5, math.MaxFloat64, math.SmallestNonzeroFloat64, math.Inf(1), math.Pi}},
	{onnx.String, "BYTES", []string{"", "a\x00b", "héllo", "\x01\xfe\xff", strings.Repeat("z", 300), "\x00\xff\x01"}},
}

// binaryBody builds a binary-extension request: the JSON header, then the
// raw data of every input given in binaryInputs.
func binaryBody(t testing.TB, header map[string]any, raws ...[]byte) ([]byte, int) {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	body := append([]byte(nil), h...)
	for _, r := range raws {
		body = append(body, r...)
	}
	return body, len(h)
}

type binaryAnswer struct {
	status  int
	header  map[string]any
	rest    []byte
	headers http.Header
}

func postBinary(t testing.TB, url string, body []byte, hlen string) binaryAnswer {
	t.Helper()
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if hlen != "" {
		req.Header.Set("Inference-Header-Content-Length", hlen)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := binaryAnswer{status: resp.StatusCode, headers: resp.Header}
	n := len(raw)
	if h := resp.Header.Get("Inference-Header-Content-Length"); h != "" {
		if n, err = strconv.Atoi(h); err != nil || n > len(raw) {
			t.Fatalf("response Inference-Header-Content-Length %q for %d bytes", h, len(raw))
		}
	}
	if err := json.Unmarshal(raw[:n], &a.header); err != nil {
		t.Fatalf("response header %q: %v", raw[:n], err)
	}
	a.rest = raw[n:]
	return a
}

// TestBinaryRoundTripEveryDatatype sends each datatype's data to an
// Identity model in binary and asks for it back in binary, then in JSON,
// and compares both with what was sent.
func TestBinaryRoundTripEveryDatatype(t *testing.T) {
	g := testgw.Start(t)
	for _, c := range binaryCases {
		name := "id-" + strings.ToLower(c.oip)
		m, err := onnx.Identity(name, c.dt, onnx.Fixed(2), onnx.Fixed(3))
		if err != nil {
			t.Fatal(err)
		}
		pushModel(t, g, name, "1", m)
		dt := models.Datatype(c.oip)
		raw, err := models.AppendRaw(nil, dt, c.values)
		if err != nil {
			t.Fatal(err)
		}
		body, hlen := binaryBody(t, map[string]any{
			"inputs": []map[string]any{{"name": "x", "shape": []int{2, 3}, "datatype": c.oip,
				"parameters": map[string]any{"binary_data_size": len(raw)}}},
			"outputs": []map[string]any{{"name": "y", "parameters": map[string]any{"binary_data": true}}},
		}, raw)
		a := postBinary(t, g.URL+"/v2/models/"+name+"/infer", body, strconv.Itoa(hlen))
		if a.status != 200 {
			t.Fatalf("%s: status %d: %v", c.oip, a.status, a.header)
		}
		outs := a.header["outputs"].([]any)
		out := outs[0].(map[string]any)
		size := out["parameters"].(map[string]any)["binary_data_size"].(float64)
		if int(size) != len(a.rest) || !bytes.Equal(a.rest, raw) {
			t.Errorf("%s: binary output %d bytes %x, want %x", c.oip, int(size), a.rest, raw)
		}
		if _, ok := out["data"]; ok {
			t.Errorf("%s: a binary output also has data", c.oip)
		}
		got, err := models.DecodeRaw(dt, a.rest, 6)
		if err != nil {
			t.Fatalf("%s: %v", c.oip, err)
		}
		if !reflect.DeepEqual(got, c.values) {
			t.Errorf("%s: decoded %v, want %v", c.oip, got, c.values)
		}

		// The same binary input, answered in JSON.
		body, hlen = binaryBody(t, map[string]any{
			"inputs": []map[string]any{{"name": "x", "shape": []int{2, 3}, "datatype": c.oip,
				"parameters": map[string]any{"binary_data_size": len(raw)}}},
		}, raw)
		a = postBinary(t, g.URL+"/v2/models/"+name+"/infer", body, strconv.Itoa(hlen))
		if a.status != 200 || a.headers.Get("Inference-Header-Content-Length") != "" {
			t.Fatalf("%s: status %d, header length %q: %v", c.oip, a.status, a.headers.Get("Inference-Header-Content-Length"), a.header)
		}
		want, _ := models.TensorData{Values: c.values}.AppendJSON(nil)
		gotJSON, _ := json.Marshal(a.header["outputs"].([]any)[0].(map[string]any)["data"])
		var w, gj any
		_ = json.Unmarshal(want, &w)
		_ = json.Unmarshal(gotJSON, &gj)
		if !reflect.DeepEqual(w, gj) {
			t.Errorf("%s: JSON data %s, want %s", c.oip, gotJSON, want)
		}

		// The same data in JSON, answered in JSON (JSON strings cannot hold
		// the byte 0xff: "\ufffd" goes in and must come back).
		in := `{"inputs":[{"name":"x","shape":[2,3],"datatype":"` + c.oip + `","data":` + string(want) + `}]}`
		j := call(t, "POST", g.URL+"/v2/models/"+name+"/infer", "", []byte(in))
		if j.status != 200 {
			t.Fatalf("%s JSON: status %d: %s", c.oip, j.status, j.raw)
		}
		gotJSON, _ = json.Marshal(j.body["outputs"].([]any)[0].(map[string]any)["data"])
		if _ = json.Unmarshal(gotJSON, &gj); !reflect.DeepEqual(w, gj) {
			t.Errorf("%s JSON: data %s, want %s", c.oip, gotJSON, want)
		}
	}
}

// TestBinaryMixedInputs gives one input as JSON data and the other as
// binary, and asks for the output with binary_data_output.
func TestBinaryMixedInputs(t *testing.T) {
	g := testgw.Start(t)
	m, err := onnx.Add("add", onnx.Float, onnx.Sym("n"), onnx.Fixed(2))
	if err != nil {
		t.Fatal(err)
	}
	pushModel(t, g, "add", "1", m)
	b := []float32{10, 20, 30, 40}
	raw, _ := models.AppendRaw(nil, models.FP32, b)
	body, hlen := binaryBody(t, map[string]any{
		"id":         "mixed",
		"parameters": map[string]any{"binary_data_output": true},
		"inputs": []map[string]any{
			{"name": "a", "shape": []int{2, 2}, "datatype": "FP32", "data": []float32{1, 2, 3, 4}},
			{"name": "b", "shape": []int{2, 2}, "datatype": "FP32", "parameters": map[string]any{"binary_data_size": len(raw)}},
		},
	}, raw)
	a := postBinary(t, g.URL+"/v2/models/add/infer", body, strconv.Itoa(hlen))
	if a.status != 200 {
		t.Fatalf("status %d: %v", a.status, a.header)
	}
	if a.header["id"] != "mixed" || a.headers.Get("X-Weir-Model") != "add" {
		t.Errorf("header %v, X-Weir-Model %q", a.header, a.headers.Get("X-Weir-Model"))
	}
	got, err := models.DecodeRaw(models.FP32, a.rest, 4)
	if err != nil {
		t.Fatal(err)
	}
	if want := []float32{11, 22, 33, 44}; !reflect.DeepEqual(got, want) {
		t.Errorf("sum %v, want %v", got, want)
	}
}

// TestBinaryMalformed sends lengths that lie, in every place a length
// can be: each is a 400 naming what is wrong, and the gateway keeps
// serving.
func TestBinaryMalformed(t *testing.T) {
	g := testgw.Start(t)
	for _, c := range binaryCases {
		if c.oip != "FP32" && c.oip != "BYTES" {
			continue
		}
		m, _ := onnx.Identity("id-"+strings.ToLower(c.oip), c.dt, onnx.Sym("n"), onnx.Sym("m"))
		pushModel(t, g, "id-"+strings.ToLower(c.oip), "1", m)
	}
	raw, _ := models.AppendRaw(nil, models.FP32, []float32{1, 2, 3, 4, 5, 6})
	in := func(size any, extra map[string]any) map[string]any {
		m := map[string]any{"inputs": []map[string]any{{"name": "x", "shape": []int{2, 3}, "datatype": "FP32",
			"parameters": map[string]any{"binary_data_size": size}}}}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	type req struct {
		body []byte
		hlen string
	}
	mk := func(header map[string]any, raws ...[]byte) req {
		b, n := binaryBody(t, header, raws...)
		return req{b, strconv.Itoa(n)}
	}
	withLen := func(r req, hlen string) req { return req{r.body, hlen} }
	ok := mk(in(len(raw), nil), raw)
	okLen, _ := strconv.Atoi(ok.hlen)
	// A BYTES element whose length prefix claims more than is there.
	lying := binary.LittleEndian.AppendUint32(nil, 1<<30)
	lying = append(lying, "abc"...)
	bytesIn := func(raw []byte, n int) map[string]any {
		return map[string]any{"inputs": []map[string]any{{"name": "x", "shape": []int{1, n}, "datatype": "BYTES",
			"parameters": map[string]any{"binary_data_size": len(raw)}}}}
	}
	shortBytes, _ := models.AppendRaw(nil, models.Bytes, []string{"a", "b"})

	cases := []struct {
		what, model string
		req         req
		want        string
	}{
		{"header length past the body", "id-fp32", withLen(ok, strconv.Itoa(len(ok.body)+1)), "but the body has only"},
		{"header length huge", "id-fp32", withLen(ok, "18446744073709551615"), "is not a byte count"},
		{"header length negative", "id-fp32", withLen(ok, "-5"), "is not a byte count"},
		{"header length not a number", "id-fp32", withLen(ok, "12abc"), "is not a byte count"},
		{"header length cuts the JSON", "id-fp32", withLen(ok, strconv.Itoa(okLen-3)), "is not a valid inference request"},
		{"header length zero: a raw request, which needs one dynamic dimension at most", "id-fp32", withLen(ok, "0"), "more than one dynamic dimension"},
		{"binary size past the end", "id-fp32", req{ok.body[:len(ok.body)-4], ok.hlen}, "runs past the end of the body"},
		{"binary size too small for the shape", "id-fp32", mk(in(len(raw)-4, nil), raw[:len(raw)-4]), "need 24"},
		{"binary size negative", "id-fp32", mk(in(-24, nil), raw), "is not a byte count"},
		{"binary size fractional", "id-fp32", mk(in(2.5, nil), raw), "is not a byte count"},
		{"binary size a string", "id-fp32", mk(in("24", nil), raw), "is not a byte count"},
		{"bytes left over", "id-fp32", mk(in(len(raw), nil), raw, []byte{0, 0, 0, 0}), "account for 24"},
		{"BYTES length prefix past the end", "id-bytes", mk(bytesIn(lying, 1), lying), "runs past the end of the raw data"},
		{"BYTES too few elements", "id-bytes", mk(bytesIn(shortBytes, 3), shortBytes), "cannot hold 3 BYTES elements"},
		{"data and binary both", "id-fp32", mk(map[string]any{"inputs": []map[string]any{{"name": "x", "shape": []int{2, 3}, "datatype": "FP32",
			"data": []float32{1, 2, 3, 4, 5, 6}, "parameters": map[string]any{"binary_data_size": len(raw)}}}}, raw), "has both"},
		{"shape too large", "id-fp32", mk(map[string]any{"inputs": []map[string]any{{"name": "x", "shape": []int64{1 << 40, 1 << 40}, "datatype": "FP32",
			"parameters": map[string]any{"binary_data_size": len(raw)}}}}, raw), "past the limit"},
		{"binary_data_size without the header", "id-fp32", withLen(mk(in(len(raw), nil)), ""), "no Inference-Header-Content-Length header"},
		{"binary_data not a bool", "id-fp32", mk(in(len(raw), map[string]any{"outputs": []map[string]any{{"name": "y", "parameters": map[string]any{"binary_data": "yes"}}}}), raw), "expected true or false"},
	}
	for _, c := range cases {
		a := call400(t, g.URL+"/v2/models/"+c.model+"/infer", c.req.body, c.req.hlen)
		if a.status != 400 || !strings.Contains(a.msg, c.want) {
			t.Errorf("%s: status %d %q, want 400 containing %q", c.what, a.status, a.msg, c.want)
		}
	}
	if a := postBinary(t, g.URL+"/v2/models/id-fp32/infer", ok.body, ok.hlen); a.status != 200 {
		t.Fatalf("a good request after the bad ones: %d %v", a.status, a.header)
	}
}

type errAnswer struct {
	status int
	msg    string
}

func call400(t testing.TB, url string, body []byte, hlen string) errAnswer {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	if hlen != "" {
		req.Header.Set("Inference-Header-Content-Length", hlen)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		return errAnswer{resp.StatusCode, fmt.Sprintf("not JSON: %q", raw)}
	}
	return errAnswer{resp.StatusCode, e.Error}
}

// TestRawBinaryRequest: with Inference-Header-Content-Length: 0 the body is
// the one input's raw data, its shape the model's with the dynamic
// dimension deduced from the length (BYTES: one element), and every output
// comes back binary, as Triton does.
func TestRawBinaryRequest(t *testing.T) {
	g := testgw.Start(t)
	push := func(name string, m []byte, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		pushModel(t, g, name, "1", m)
	}
	m, err := onnx.Identity("id-fp32", onnx.Float, onnx.Sym("n"), onnx.Fixed(3))
	push("id-fp32", m, err)
	m, err = onnx.Identity("id-bytes", onnx.String, onnx.Fixed(1))
	push("id-bytes", m, err)
	m, err = onnx.Add("add", onnx.Float, onnx.Sym("n"), onnx.Fixed(2))
	push("add", m, err)

	x := []float32{1, -2, 3.5, 4, 5, 6}
	raw, _ := models.AppendRaw(nil, models.FP32, x)
	a := postBinary(t, g.URL+"/v2/models/id-fp32/infer", raw, "0")
	if a.status != 200 {
		t.Fatalf("FP32: status %d: %v", a.status, a.header)
	}
	out := a.header["outputs"].([]any)[0].(map[string]any)
	if fmt.Sprint(out["shape"]) != "[2 3]" || !bytes.Equal(a.rest, raw) {
		t.Errorf("FP32: output %v with %x, want shape [2 3] and %x", out, a.rest, raw)
	}

	a = postBinary(t, g.URL+"/v2/models/id-bytes/infer", []byte("a\x00b"), "0")
	want, _ := models.AppendRaw(nil, models.Bytes, []string{"a\x00b"})
	if a.status != 200 || !bytes.Equal(a.rest, want) {
		t.Errorf("BYTES: status %d, output %x, want %x (%v)", a.status, a.rest, want, a.header)
	}

	for _, c := range []struct {
		name, model string
		body        []byte
		want        string
	}{
		{"two inputs", "add", raw, "needs a model with one input; this model has 2"},
		{"partial row", "id-fp32", raw[:10], "10 bytes are not a whole number of 12-byte rows"},
		{"unknown model", "nope", raw, `nope\" not found`},
	} {
		req, _ := http.NewRequest("POST", g.URL+"/v2/models/"+c.model+"/infer", bytes.NewReader(c.body))
		req.Header.Set("Inference-Header-Content-Length", "0")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 4 || !strings.Contains(string(body), c.want) {
			t.Errorf("%s: %d %s, want a 4xx naming %q", c.name, resp.StatusCode, body, c.want)
		}
	}
}

// An output requested twice is refused, naming it (issue 25, defect 6):
// each copy carried the whole tensor, and the binary path matched outputs
// quadratically (20,000 copies took seconds).
func TestDuplicateOutputsAreRefused(t *testing.T) {
	g := testgw.Start(t)
	m, _ := onnx.Identity("id", onnx.Float, onnx.Sym("n"), onnx.Sym("m"))
	pushModel(t, g, "id", "1", m)
	raw, _ := models.AppendRaw(nil, models.FP32, []float32{1, 2})
	url := g.URL + "/v2/models/id/infer"
	for _, copies := range []int{2, 20000} {
		outs := make([]map[string]any, copies)
		for i := range outs {
			outs[i] = map[string]any{"name": "y", "parameters": map[string]any{"binary_data": true}}
		}
		body, n := binaryBody(t, map[string]any{"outputs": outs, "inputs": []map[string]any{{"name": "x", "shape": []int{1, 2}, "datatype": "FP32",
			"parameters": map[string]any{"binary_data_size": len(raw)}}}}, raw)
		start := time.Now()
		a := call400(t, url, body, strconv.Itoa(n))
		if a.status != 400 || !strings.Contains(a.msg, `output "y" is requested twice`) {
			t.Errorf("binary, %d copies of output y: %d %q, want 400 naming y as requested twice", copies, a.status, a.msg)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("binary, %d copies of output y: answered in %v", copies, took)
		}
		j, _ := json.Marshal(map[string]any{"outputs": outs[:2], "inputs": []map[string]any{{"name": "x", "shape": []int{1, 2}, "datatype": "FP32", "data": []float32{1, 2}}}})
		if a := call400(t, url, j, ""); a.status != 400 || !strings.Contains(a.msg, `output "y" is requested twice`) {
			t.Errorf("JSON, 2 copies of output y: %d %q, want 400 naming y as requested twice", a.status, a.msg)
		}
	}
}
