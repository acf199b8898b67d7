package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/internal/testpoll"
	pb "github.com/weirhq/weir/oipgrpc/inferencepb"
)

// batchRow is one request's features: 16 values, distinct for each i.
func batchRow(i int) []float32 {
	x := make([]float32, 16)
	for j := range x {
		x[j] = float32(math.Sin(float64(100*i + j)))
	}
	return x
}

// inferHTTP posts one row to model@version and returns its scores.
func inferRowHTTP(url, model, version string, x []float32) ([]float32, error) {
	body, _ := json.Marshal(map[string]any{"inputs": []map[string]any{{"name": "features", "shape": []int{1, len(x)}, "datatype": "FP32", "data": x}}})
	resp, err := http.Post(url+"/v2/models/"+model+"/versions/"+version+"/infer", "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, raw)
	}
	var out struct {
		Outputs []struct {
			Shape []int64   `json:"shape"`
			Data  []float32 `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	if len(out.Outputs) != 1 || fmt.Sprint(out.Outputs[0].Shape) != "[1 4]" {
		return nil, fmt.Errorf("answer %s, want one [1 4] output", raw)
	}
	return out.Outputs[0].Data, nil
}

func inferRowGRPC(c pb.GRPCInferenceServiceClient, model, version string, x []float32) ([]float32, error) {
	resp, err := c.ModelInfer(context.Background(), &pb.ModelInferRequest{ModelName: model, ModelVersion: version,
		Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "features", Datatype: "FP32", Shape: []int64{1, int64(len(x))},
			Contents: &pb.InferTensorContents{Fp32Contents: x}}}})
	if err != nil {
		return nil, err
	}
	if len(resp.Outputs) != 1 || fmt.Sprint(resp.Outputs[0].Shape) != "[1 4]" || resp.Outputs[0].Contents == nil {
		return nil, fmt.Errorf("answer %v, want one [1 4] output in contents", resp)
	}
	return resp.Outputs[0].Contents.Fp32Contents, nil
}

func closeEnough(got, want []float32) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d values, want %d", len(got), len(want))
	}
	for i := range got {
		if math.Abs(float64(got[i]-want[i])) > 1e-5 {
			return fmt.Errorf("value %d is %g, unbatched %g", i, got[i], want[i])
		}
	}
	return nil
}

// batchMetric reads weir_model_batch_requests' sum and count for model@version.
func batchMetric(t testing.TB, g *testgw.Gateway, model, version string) (sum, count float64) {
	t.Helper()
	a := call(t, "GET", g.URL+"/metrics", "", nil)
	labels := fmt.Sprintf(`{model=%q,version=%q}`, model, version)
	for _, line := range strings.Split(a.raw, "\n") {
		if v, ok := strings.CutPrefix(line, "weir_model_batch_requests_sum"+labels+" "); ok {
			fmt.Sscan(v, &sum)
		}
		if v, ok := strings.CutPrefix(line, "weir_model_batch_requests_count"+labels+" "); ok {
			fmt.Sscan(v, &count)
		}
	}
	return sum, count
}

// Dynamic batching end to end: set at upload by query parameters, changed
// by PUT .../batching and seen by a second gateway on the same NATS; HTTP
// and gRPC requests are batched (each caller gets the rows an unbatched
// version gives it); models without a batch axis and settings past
// --max-rows are refused with a 400 that says why.
func TestDynamicBatchingEndToEnd(t *testing.T) {
	g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) { o.MaxRows = 100 }))
	mlp, err := onnx.MLP("wide", []int{16, 64, 4}, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Version 1 unbatched, version 2 the same bytes, batched: 8 rows, a
	// long delay so that the batch is full before it runs.
	pushModel(t, g, "wide", "1", mlp)
	if a := call(t, "PUT", g.URL+"/v1/models/wide/versions/2?max_batch_size=8&max_queue_delay=1s&preferred_batch_sizes=4,8", g.Token, mlp); a.status != 201 {
		t.Fatalf("upload with batching: %d %s", a.status, a.raw)
	} else if b, _ := a.body["batching"].(map[string]any); b == nil || b["max_batch_size"] != 8.0 || b["max_queue_delay"] != "1s" {
		t.Fatalf("upload answer shows batching %v", a.body["batching"])
	}

	cc, err := grpc.NewClient(g.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	gc := pb.NewGRPCInferenceServiceClient(cc)

	for _, transport := range []string{"HTTP", "gRPC"} {
		infer := func(version string, x []float32) ([]float32, error) {
			if transport == "HTTP" {
				return inferRowHTTP(g.URL, "wide", version, x)
			}
			return inferRowGRPC(gc, "wide", version, x)
		}
		sum0, count0 := batchMetric(t, g, "wide", "2")
		var wg sync.WaitGroup
		errs := make([]error, 16)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				x := batchRow(i)
				want, err := infer("1", x)
				if err != nil {
					errs[i] = fmt.Errorf("unbatched: %w", err)
					return
				}
				got, err := infer("2", x)
				if err == nil {
					err = closeEnough(got, want)
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("%s caller %d: %v", transport, i, err)
			}
		}
		sum, count := batchMetric(t, g, "wide", "2")
		if sum-sum0 != 16 || count-count0 >= 16 {
			t.Errorf("%s: %v requests in %v batched runs, want 16 in fewer runs", transport, sum-sum0, count-count0)
		}
	}

	// One event per request, batched or not: 2 rounds of 16 unbatched and
	// 16 batched requests.
	testpoll.For(t, time.Minute, "one event per request", func() error {
		a := call(t, "GET", g.URL+"/metrics", "", nil)
		var n float64
		for _, line := range strings.Split(a.raw, "\n") {
			if v, ok := strings.CutPrefix(line, "weir_events_published_total "); ok {
				fmt.Sscan(v, &n)
			}
		}
		if n != 64 {
			return fmt.Errorf("%v events published, want 64", n)
		}
		return nil
	})

	// Refusals.
	fixed, err := onnx.Identity("fixed", onnx.Float, onnx.Fixed(1), onnx.Fixed(3))
	if err != nil {
		t.Fatal(err)
	}
	a := call(t, "PUT", g.URL+"/v1/models/fixed/versions/1?max_batch_size=8", g.Token, fixed)
	if a.status != 400 || !strings.Contains(a.raw, `input \"x\" has shape [1 3]`) {
		t.Errorf("upload of a model without a batch axis, with batching: %d %s", a.status, a.raw)
	}
	pushModel(t, g, "fixed", "1", fixed)
	for _, tc := range []struct{ path, body, want string }{
		{"fixed/versions/1", `{"max_batch_size": 8}`, `input \"x\" has shape [1 3]`},
		{"wide/versions/2", `{"max_batch_size": 200}`, "--max-rows"},
		{"wide/versions/2", `{"max_batch_size": 8, "max_queue_delay": "soon"}`, "max_queue_delay"},
		{"wide/versions/2", `{"max_batch_size": 8, "delay": "1ms"}`, "unknown field"},
		{"wide/versions/9", `{"max_batch_size": 8}`, "no version"},
	} {
		want := 400
		if strings.Contains(tc.path, "/9") {
			want = 404
		}
		a := call(t, "PUT", g.URL+"/v1/models/"+tc.path+"/batching", g.Token, []byte(tc.body))
		if a.status != want || !strings.Contains(a.raw, tc.want) {
			t.Errorf("PUT %s batching %s: %d %s, want %d saying %q", tc.path, tc.body, a.status, a.raw, want, tc.want)
		}
	}
	if a := call(t, "PUT", g.URL+"/v1/models/wide/versions/2/batching", "", []byte(`{"max_batch_size": 0}`)); a.status != 401 {
		t.Errorf("PUT batching without the admin token: %d", a.status)
	}
	if a := call(t, "PUT", g.URL+"/v1/models/wide/versions/2?max_batch_size=200", g.Token, mlp); a.status != 400 || !strings.Contains(a.raw, "--max-rows") {
		t.Errorf("upload with max_batch_size past --max-rows: %d %s", a.status, a.raw)
	}

	// A change on one gateway reaches another.
	b := testgw.Start(t, testgw.WithNATS(g.NATSURL()))
	shows := func(gw *testgw.Gateway, want string) func() error {
		return func() error {
			a := call(t, "GET", gw.URL+"/v1/models/wide", gw.Token, nil)
			for _, v := range a.body["versions"].([]any) {
				v := v.(map[string]any)
				if v["version"] == "2" {
					got, _ := json.Marshal(v["batching"])
					if string(got) != want {
						return fmt.Errorf("batching %s, want %s", got, want)
					}
					return nil
				}
			}
			return fmt.Errorf("no version 2 in %s", a.raw)
		}
	}
	testpoll.For(t, time.Minute, "the upload's batching on the second gateway", shows(b, `{"max_batch_size":8,"max_queue_delay":"1s","preferred_batch_sizes":[4,8]}`))
	if a := call(t, "PUT", g.URL+"/v1/models/wide/versions/2/batching", g.Token, []byte(`{"max_batch_size": 4, "max_queue_delay": "500us"}`)); a.status != 200 {
		t.Fatalf("PUT batching: %d %s", a.status, a.raw)
	}
	testpoll.For(t, time.Minute, "the changed batching on the second gateway", shows(b, `{"max_batch_size":4,"max_queue_delay":"500us"}`))
	// The second gateway batches by it: a lone request is answered once
	// the 500 µs delay has passed.
	x := batchRow(1)
	want, err := inferRowHTTP(b.URL, "wide", "1", x)
	if err != nil {
		t.Fatal(err)
	}
	got, err := inferRowHTTP(b.URL, "wide", "2", x)
	if err == nil {
		err = closeEnough(got, want)
	}
	if err != nil {
		t.Fatal(err)
	}
	if sum, _ := batchMetric(t, b, "wide", "2"); sum != 1 {
		t.Errorf("the second gateway's batcher saw %v requests, want 1", sum)
	}
	if a := call(t, "PUT", b.URL+"/v1/models/wide/versions/2/batching", b.Token, []byte(`{"max_batch_size": 0}`)); a.status != 200 {
		t.Fatalf("PUT batching off: %d %s", a.status, a.raw)
	}
	testpoll.For(t, time.Minute, "batching off on the first gateway", shows(g, `null`))
}
