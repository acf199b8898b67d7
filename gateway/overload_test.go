package gateway_test

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testgw"
	pb "github.com/weirhq/weir/oipgrpc/inferencepb"
)

// int64Request is an infer request for ident's INT64 input of n ones
// (2n bytes of data), charged 16× its bytes.
func int64Request(n int) []byte {
	return []byte(`{"inputs":[{"name":"i","shape":[1,` + strconv.Itoa(n) + `],"datatype":"INT64","data":[` +
		strings.TrimSuffix(strings.Repeat("1,", n), ",") + `]}]}`)
}

// budgetGateway serves "ident", an identity of one INT64 input "i" of
// shape [-1,-1], with a memory budget of 8 MiB.
func budgetGateway(t *testing.T) *testgw.Gateway {
	g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) { o.MemoryBudget = 8 << 20 }))
	m := onnx.NewModel("ident", 0)
	gr := m.Graph()
	gr.Input("i", onnx.Int64, onnx.Sym("a"), onnx.Sym("b"))
	gr.Output("o", onnx.Int64, onnx.Sym("a"), onnx.Sym("b"))
	gr.Node("Identity", []string{"i"}, []string{"o"})
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	pushModel(t, g, "ident", "1", b)
	return g
}

// check503 checks an answer refused for the budget: 503 with Retry-After,
// naming the budget and its flag.
func check503(t *testing.T, what string, a answer) {
	t.Helper()
	msg, _ := a.body["error"].(string)
	if a.status != 503 || a.header.Get("Retry-After") == "" || !strings.Contains(msg, "8 MiB (--memory-budget)") {
		t.Errorf("%s: %d Retry-After %q %.300s; want 503 with Retry-After naming the budget of 8 MiB (--memory-budget)",
			what, a.status, a.header.Get("Retry-After"), a.raw)
	}
}

// Requests past the budget wait briefly, then are refused with 503 and
// Retry-After; once the budget has room they are served, and the budget,
// what is charged of it and what was shed show in /metrics.
func TestMemoryBudgetSheds(t *testing.T) {
	g := budgetGateway(t)
	url := g.URL + "/v2/models/ident/infer"
	body := int64Request(128 << 10) // 256 KiB: charged 4 MiB

	release, err := gateway.ChargeBudget(g.Gateway, 6<<20) // other requests hold 6 of 8 MiB
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	answers := make([]answer, 8)
	for i := range answers {
		wg.Go(func() { answers[i] = call(t, "POST", url, "", body) })
	}
	wg.Wait()
	for i, a := range answers {
		check503(t, "infer "+strconv.Itoa(i)+" beside 6 MiB held", a)
	}
	if a := call(t, "POST", url, "", int64Request(1000)); a.status != 200 {
		t.Errorf("a small request beside 6 MiB held: %d %.300s", a.status, a.raw)
	}
	for _, want := range []string{"weir_overload_budget_bytes 8.388608e+06", "weir_overload_inflight_bytes 6.291456e+06", "weir_overload_shed_total 8"} {
		family, _, _ := strings.Cut(want, " ")
		if got := metricLines(t, g, family); len(got) != 1 || got[0] != want {
			t.Errorf("/metrics: %q, want %q", got, want)
		}
	}

	// gRPC is charged alike.
	cc, err := grpc.NewClient(g.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	greq := &pb.ModelInferRequest{ModelName: "ident", Inputs: []*pb.ModelInferRequest_InferInputTensor{{
		Name: "i", Datatype: "INT64", Shape: []int64{1, 32 << 10},
		Contents: &pb.InferTensorContents{Int64Contents: make([]int64, 32<<10)}, // 256 KiB decoded: charged 4 MiB
	}}}
	_, err = pb.NewGRPCInferenceServiceClient(cc).ModelInfer(context.Background(), greq)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "--memory-budget") {
		t.Errorf("gRPC ModelInfer beside 6 MiB held: %v, want Unavailable naming --memory-budget", err)
	}

	// With room, concurrent large requests are served or shed, never more
	// than the budget at once, and the gateway stays alive with its heap
	// bounded.
	release()
	if _, err := pb.NewGRPCInferenceServiceClient(cc).ModelInfer(context.Background(), greq); err != nil {
		t.Errorf("gRPC ModelInfer with room: %v", err)
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range answers {
		wg.Go(func() { answers[i] = call(t, "POST", url, "", body) })
	}
	wg.Wait()
	served := 0
	for i, a := range answers {
		if a.status == 200 {
			served++
			continue
		}
		check503(t, "concurrent infer "+strconv.Itoa(i), a)
	}
	if served == 0 {
		t.Error("no request was served once the budget had room")
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapInuse) - int64(before.HeapInuse); grown > 256<<20 {
		t.Errorf("heap in use grew by %d MiB over %d requests of %d KiB", grown>>20, len(answers), len(body)>>10)
	}
	if a := call(t, "GET", g.URL+"/v2/health/ready", "", nil); a.status != 200 {
		t.Fatalf("gateway not ready: %d", a.status)
	}
	if got := metricLines(t, g, "weir_overload_inflight_bytes"); len(got) != 1 || got[0] != "weir_overload_inflight_bytes 0" {
		t.Errorf("after every request ended, /metrics says %q, want nothing charged", got)
	}
}

// A predict body of 4 MiB of empty objects decoded into about 215 MiB of
// maps; charged 64× its bytes, it is refused before it decodes, naming
// the budget, and allocates little more than the body.
func TestMemoryBudgetBoundsPredict(t *testing.T) {
	g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) { o.MemoryBudget = 64 << 20 }))
	pushModel(t, g, "scorer", "1", scorer(t, txFeatures, []float32{0.5, 0.8, 3}, -4))
	body := []byte(`{"a":[` + strings.Repeat(`{},`, 4<<20/3) + `{}]}`)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	a := call(t, "POST", g.URL+"/v1/routes/scorer/predict", "", body)
	runtime.ReadMemStats(&after)
	msg, _ := a.body["error"].(string)
	if a.status != 413 || !strings.Contains(msg, "memory budget of 64 MiB (--memory-budget)") {
		t.Errorf("4 MiB of {} rows: %d %.300s, want 413 naming the budget of 64 MiB (--memory-budget)", a.status, a.raw)
	}
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 96<<20 {
		t.Errorf("4 MiB of {} rows allocated %d MiB", allocated>>20)
	}
	if a := call(t, "POST", g.URL+"/v1/routes/scorer/predict", "", []byte(`{"amount_log":1,"amount_zscore":0.5,"merchant_risk":0.1}`)); a.status != 200 {
		t.Errorf("a small predict: %d %.300s", a.status, a.raw)
	}
}
