package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/internal/testpoll"
	"github.com/weirhq/weir/sdk/client"
)

// testModel returns an ONNX backend-test model shipped by Debian's
// libonnx-testdata (`make test` installs it).
func testModel(t testing.TB, name string) []byte {
	t.Helper()
	p := "/usr/share/libonnx-testdata/data/node/" + name + "/model.onnx"
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v: install Debian's libonnx-testdata (make debs)", err)
	}
	return b
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func call(t testing.TB, method, url, token string, body []byte) answer {
	t.Helper()
	return callWith(t, method, url, token, body, nil)
}

// callWith is call with more request headers.
func callWith(t testing.TB, method, url, token string, body []byte, header http.Header) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

func addRequest(n int) []byte {
	x := make([]float32, 60)
	for i := range x {
		x[i] = float32(i * n)
	}
	req := map[string]any{"id": "r1", "inputs": []map[string]any{
		{"name": "x", "shape": []int{3, 4, 5}, "datatype": "FP32", "data": x},
		{"name": "y", "shape": []int{3, 4, 5}, "datatype": "FP32", "data": x},
	}}
	b, _ := json.Marshal(req)
	return b
}

func pushModel(t testing.TB, g *testgw.Gateway, name, version string, onnx []byte) {
	t.Helper()
	if err := g.Client.PushModel(context.Background(), name, version, bytes.NewReader(onnx), nil); err != nil {
		t.Fatalf("push %s@%s: %v", name, version, err)
	}
}

func TestInferAndMetadata(t *testing.T) {
	g := testgw.Start(t)
	pushModel(t, g, "add", "1", testModel(t, "test_add"))

	a := call(t, "POST", g.URL+"/v2/models/add/infer", "", addRequest(1))
	if a.status != 200 {
		t.Fatalf("infer: %d %s", a.status, a.raw)
	}
	if got := a.header.Get("X-Weir-Model") + "@" + a.header.Get("X-Weir-Model-Version"); got != "add@1" {
		t.Errorf("headers name %s, want add@1", got)
	}
	outs := a.body["outputs"].([]any)
	out := outs[0].(map[string]any)
	data := out["data"].([]any)
	if out["name"] != "sum" || len(data) != 60 || data[59].(float64) != 118 {
		t.Errorf("unexpected output %v", out)
	}
	if a.body["id"] != "r1" || a.body["model_version"] != "1" {
		t.Errorf("response id/version: %v", a.body)
	}

	md := call(t, "GET", g.URL+"/v2/models/add", "", nil)
	if md.status != 200 || md.body["platform"] != "onnxruntime_onnx" {
		t.Fatalf("metadata: %d %s", md.status, md.raw)
	}
	in0 := md.body["inputs"].([]any)[0].(map[string]any)
	if in0["name"] != "x" || in0["datatype"] != "FP32" {
		t.Errorf("metadata input: %v", in0)
	}
	for p, want := range map[string]string{
		"/v2/models/add/ready":            `{"name":"add","ready":true}`,
		"/v2/models/add/versions/1/ready": `{"name":"add","ready":true}`,
		"/v2/health/live":                 `{"live":true}`,
		"/v2/health/ready":                "",
	} {
		a := call(t, "GET", g.URL+p, "", nil)
		if a.status != 200 {
			t.Errorf("GET %s: %d %s", p, a.status, a.raw)
		}
		if want != "" && a.raw != want {
			t.Errorf("GET %s answered %s, want %s", p, a.raw, want)
		}
	}
	if a := call(t, "GET", g.URL+"/v2/models/add/versions/9/ready", "", nil); a.status != 404 {
		t.Errorf("ready of unknown version: %d", a.status)
	}
	if a := call(t, "GET", g.URL+"/v2", "", nil); a.body["name"] != "weir" {
		t.Errorf("server metadata: %s", a.raw)
	}
	m := call(t, "GET", g.URL+"/metrics", "", nil)
	if !strings.Contains(m.raw, `weir_requests_total{code="200",model="add",route="add",variant="default",version="1"} 1`) {
		t.Errorf("metrics lack the request count:\n%s", grep(m.raw, "weir_requests_total"))
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestBadRequests(t *testing.T) {
	g := testgw.Start(t)
	pushModel(t, g, "add", "1", testModel(t, "test_add"))
	x := `{"name":"x","shape":[3,4,5],"datatype":"FP32","data":[` + strings.Repeat("1,", 59) + `1]}`
	y := strings.Replace(x, `"x"`, `"y"`, 1)
	cases := []struct {
		name, url, body string
		status          int
		want            string // substring of the error
	}{
		{"bad json", "/v2/models/add/infer", `{"inputs":`, 400, "not a valid inference request"},
		{"unknown model", "/v2/models/nope/infer", `{"inputs":[]}`, 404, `model or route "nope" not found`},
		{"unknown version", "/v2/models/add/versions/7/infer", `{"inputs":[` + x + `,` + y + `]}`, 404, `no version "7"`},
		{"bad name", "/v2/models/..%2Fetc/infer", `{}`, 400, "not valid"},
		{"unknown input", "/v2/models/add/infer", `{"inputs":[` + x + `,` + strings.Replace(y, `"y"`, `"z"`, 1) + `]}`, 400, `unknown input "z"`},
		{"missing input", "/v2/models/add/infer", `{"inputs":[` + x + `]}`, 400, `missing input "y"`},
		{"wrong datatype", "/v2/models/add/infer", `{"inputs":[` + x + `,` + strings.Replace(y, "FP32", "INT64", 1) + `]}`, 400, `input "y" has datatype INT64, expected FP32`},
		{"unknown datatype", "/v2/models/add/infer", `{"inputs":[` + x + `,` + strings.Replace(y, "FP32", "FLOAT", 1) + `]}`, 400, `unknown datatype "FLOAT"`},
		{"wrong shape", "/v2/models/add/infer", `{"inputs":[` + x + `,` + strings.Replace(y, "[3,4,5]", "[3,5,4]", 1) + `]}`, 400, `input "y" has shape [3 5 4], expected [3 4 5]`},
		{"wrong rank", "/v2/models/add/infer", `{"inputs":[` + x + `,` + strings.Replace(y, "[3,4,5]", "[60]", 1) + `]}`, 400, `expected rank 3`},
		{"wrong count", "/v2/models/add/infer", `{"inputs":[` + x + `,` + strings.Replace(y, "[1,", "[", 1) + `]}`, 400, `input "y" has shape [3 4 5], which needs 60 elements, but its data has 59 elements`},
		{"not a number", "/v2/models/add/infer", `{"inputs":[` + x + `,` + strings.Replace(y, "[1,", `["a",`, 1) + `]}`, 400, `input "y" (FP32): element 0: "a" is not a number`},
		{"out of range", "/v2/models/add/infer", `{"inputs":[` + x + `,` + strings.Replace(y, "[1,", `[1e39,`, 1) + `]}`, 400, `input "y" (FP32): element 0: 1e39 is out of range for FP32`},
		{"unknown output", "/v2/models/add/infer", `{"inputs":[` + x + `,` + y + `],"outputs":[{"name":"nope"}]}`, 400, `unknown output "nope"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := call(t, "POST", g.URL+c.url, "", []byte(c.body))
			if a.status != c.status {
				t.Fatalf("status %d, want %d: %s", a.status, c.status, a.raw)
			}
			msg, _ := a.body["error"].(string)
			if !strings.Contains(msg, c.want) {
				t.Fatalf("error %q does not contain %q", msg, c.want)
			}
		})
	}
}

func TestAdminAuth(t *testing.T) {
	g := testgw.Start(t)
	onnx := testModel(t, "test_add")
	for _, tok := range []string{"", "wrong-token"} {
		a := call(t, "PUT", g.URL+"/v1/models/add/versions/1", tok, onnx)
		if a.status != 401 {
			t.Errorf("token %q: status %d, want 401 (%s)", tok, a.status, a.raw)
		}
	}
	if a := call(t, "GET", g.URL+"/v2/models/add", "", nil); a.status != 404 {
		t.Errorf("an unauthorised upload stored the model: %d", a.status)
	}
	if a := call(t, "PUT", g.URL+"/v1/models/add/versions/1", g.Token, onnx); a.status != 201 {
		t.Errorf("authorised upload: %d %s", a.status, a.raw)
	}
}

func TestBadUploadKeepsServing(t *testing.T) {
	g := testgw.Start(t)
	onnx := testModel(t, "test_add")
	pushModel(t, g, "add", "1", onnx)
	random := make([]byte, 4096)
	for i := range random {
		random[i] = byte(i*7919 + i/13)
	}
	for name, body := range map[string][]byte{
		"truncated": onnx[:len(onnx)/2],
		"random":    random,
	} {
		for _, version := range []string{"1", "2"} {
			err := g.Client.PushModel(context.Background(), "add", version, bytes.NewReader(body), nil)
			var ce *client.Error
			if !errors.As(err, &ce) || ce.Status != 400 || !strings.Contains(ce.Message, "ONNX Runtime cannot load the model") {
				t.Errorf("%s upload as version %s: %v, want 400 naming the runtime's reason", name, version, err)
			}
		}
	}
	if a := call(t, "POST", g.URL+"/v2/models/add/infer", "", addRequest(1)); a.status != 200 {
		t.Fatalf("version 1 stopped answering after bad uploads: %d %s", a.status, a.raw)
	}
	list, err := g.Client.ListModels(context.Background())
	if err != nil || len(list) != 1 || len(list[0].Versions) != 1 {
		t.Fatalf("bad uploads left something in the store: %+v %v", list, err)
	}
	// Feature lists that do not fit the model's input are refused too.
	err = g.Client.PushModel(context.Background(), "add", "3", bytes.NewReader(onnx), []string{"a", "b"})
	if err == nil || !strings.Contains(err.Error(), "shape [batch, n]") {
		t.Errorf("feature list on a rank-3 model: %v", err)
	}
}

func TestTwoGatewaysShareModels(t *testing.T) {
	a := testgw.Start(t)
	b := testgw.Start(t, testgw.WithNATS(a.NATSURL()))
	pushModel(t, a, "add", "1", testModel(t, "test_add"))
	start := time.Now()
	testpoll.For(t, 5*time.Second, "model pushed to A ready on B", func() error {
		if a := call(t, "GET", b.URL+"/v2/models/add/ready", "", nil); a.status != 200 {
			return fmt.Errorf("add ready on B answered %d %s, want 200", a.status, a.raw)
		}
		return nil
	})
	t.Logf("ready on the second gateway after %v", time.Since(start))
	if r := call(t, "POST", b.URL+"/v2/models/add/infer", "", addRequest(2)); r.status != 200 {
		t.Fatalf("infer on B: %d %s", r.status, r.raw)
	}
	// A delete on B unloads on A.
	if err := b.Client.DeleteModel(context.Background(), "add", "1"); err != nil {
		t.Fatal(err)
	}
	testpoll.For(t, 5*time.Second, "model deleted on B gone from A", func() error {
		if r := call(t, "GET", a.URL+"/v2/models/add/ready", "", nil); r.status != 404 {
			return fmt.Errorf("add ready on A answered %d %s, want 404", r.status, r.raw)
		}
		return nil
	})
}

func TestRestartKeepsModels(t *testing.T) {
	dir := t.TempDir()
	g := testgw.Start(t, testgw.WithDataDir(dir))
	pushModel(t, g, "add", "1", testModel(t, "test_add"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	g2 := testgw.Start(t, testgw.WithDataDir(dir))
	testpoll.For(t, 10*time.Second, "model ready after restart", func() error {
		if a := call(t, "GET", g2.URL+"/v2/models/add/ready", "", nil); a.status != 200 {
			return fmt.Errorf("add ready answered %d %s, want 200", a.status, a.raw)
		}
		return nil
	})
	if r := call(t, "POST", g2.URL+"/v2/models/add/infer", "", addRequest(1)); r.status != 200 {
		t.Fatalf("infer after restart: %d %s", r.status, r.raw)
	}
}

func TestAPIKeysGuardInference(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keys, []byte("# one key per line\nk-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) { o.APIKeysFile = keys }))
	pushModel(t, g, "add", "1", testModel(t, "test_add"))
	for tok, want := range map[string]int{"": 401, "k-999": 401, "k-123": 200, g.Token: 200} {
		if a := call(t, "POST", g.URL+"/v2/models/add/infer", tok, addRequest(1)); a.status != want {
			t.Errorf("inference with key %q: %d, want %d (%s)", tok, a.status, want, a.raw)
		}
	}
	// Health stays open for probes.
	if a := call(t, "GET", g.URL+"/v2/health/ready", "", nil); a.status != 200 {
		t.Errorf("readiness behind API keys: %d", a.status)
	}
}
