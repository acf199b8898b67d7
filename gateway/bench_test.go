package gateway_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/models"
)

// The serving benchmarks use a small MLP (32 features -> 64 -> 1) at batch
// 1, and report p50 latencies, so that the gateway's own cost is
// BenchmarkInferHTTP's p50 minus BenchmarkInferRaw's.

func mlpRequest(b *testing.B) []byte {
	x := make([]float32, 32)
	for i := range x {
		x[i] = float32(i) / 32
	}
	req, _ := json.Marshal(map[string]any{"inputs": []map[string]any{
		{"name": "features", "shape": []int{1, 32}, "datatype": "FP32", "data": x},
	}})
	return req
}

func mlpModel(b *testing.B) []byte {
	m, err := onnx.MLP("mlp", []int{32, 64, 1}, 1)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// reportPercentiles adds p50 and p99 in microseconds to the benchmark.
func reportPercentiles(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	b.ReportMetric(float64(d[len(d)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(d[len(d)*99/100].Nanoseconds())/1e3, "p99-µs")
}

// BenchmarkInferRaw is ONNX Runtime's Run in process: build the input
// tensor, run, copy the output out.
func BenchmarkInferRaw(b *testing.B) {
	lib, err := models.FindLibrary("")
	if err != nil {
		b.Fatal(err)
	}
	if err := models.InitRuntime(lib); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "mlp.onnx")
	if err := os.WriteFile(path, mlpModel(b), 0o644); err != nil {
		b.Fatal(err)
	}
	s, err := models.LoadSession(path, models.SessionOptions{IntraOpThreads: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var req models.InferRequest
	json.Unmarshal(mlpRequest(b), &req)
	in, err := s.Prepare(req.Inputs)
	if err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := s.Run(in); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

func startBenchGateway(b *testing.B) (*testgw.Gateway, []byte) {
	g := testgw.Start(b)
	if err := g.Client.PushModel(b.Context(), "mlp", "1", bytes.NewReader(mlpModel(b)), nil); err != nil {
		b.Fatal(err)
	}
	return g, mlpRequest(b)
}

func post(b *testing.B, c *http.Client, url string, body []byte) {
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("status %d", resp.StatusCode)
	}
}

// BenchmarkInferHTTP is the full OIP round trip on loopback, one request
// at a time: client encode, HTTP, JSON parse, validation, Run, response.
func BenchmarkInferHTTP(b *testing.B) {
	g, body := startBenchGateway(b)
	url := g.URL + "/v2/models/mlp/infer"
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	post(b, c, url, body)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		post(b, c, url, body)
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

// BenchmarkInferHandler is the gateway's own cost without the network:
// the fasthttp request through fiber, JSON parse, validation, Run, the
// response and the event, called in process.
func BenchmarkInferHandler(b *testing.B) {
	g, body := startBenchGateway(b)
	h := g.Handler()
	var ctx fasthttp.RequestCtx
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.ResetUserValues() // as fasthttp's server does between requests: fiber keeps the request's context there
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.SetRequestURI("/v2/models/mlp/infer")
		ctx.Request.SetBody(body)
		t0 := time.Now()
		h(&ctx)
		lat = append(lat, time.Since(t0))
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

// BenchmarkInferHTTPConcurrent16 is throughput with 16 clients in flight.
func BenchmarkInferHTTPConcurrent16(b *testing.B) {
	g, body := startBenchGateway(b)
	url := g.URL + "/v2/models/mlp/infer"
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	post(b, c, url, body)
	b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0))) // 16 goroutines in all
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			post(b, c, url, body)
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}
