package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/weirhq/weir/examples/fraud"
	"github.com/weirhq/weir/internal/testgw"
)

func BenchmarkZZFR(b *testing.B) {
	g, _ := startBenchGateway(b)
	ctx := context.Background()
	h1 := fraud.History(1, 20000, fraud.FeaturesV1)
	m := fraud.Train(h1, 300)
	onnxBytes, _ := m.ONNX(fraud.ModelName)
	tr := &fraud.Trained{V1: m, RefV1: fraud.ReferenceCSV(h1, 5000), ONNXv1: onnxBytes}
	if err := fraud.Setup(ctx, g.Client, tr, testgw.PluginDir(b), false, io.Discard); err != nil {
		b.Fatal(err)
	}
	gen := fraud.NewGenerator(7, 500, time.Now().Add(-time.Hour))
	url := g.URL + "/v1/routes/" + fraud.RouteName + "/predict"
	c := hostClient(url)
	var req fasthttp.Request
	var resp fasthttp.Response
	for _, gap := range []time.Duration{0, 10 * time.Millisecond} {
		var lat []time.Duration
		for i := range 400 {
			body, _ := json.Marshal(gen.Next(time.Second).Event())
			t0 := time.Now()
			if err := doPost(c, url, body, &req, &resp); err != nil {
				b.Fatal(err)
			}
			if i >= 100 {
				lat = append(lat, time.Since(t0))
			}
			time.Sleep(gap)
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		fmt.Println("gap", gap, "p50", lat[len(lat)/2], "p90", lat[len(lat)*9/10])
	}
	// one traced
	body, _ := json.Marshal(gen.Next(time.Second).Event())
	req.Reset(); resp.Reset()
	req.SetRequestURI(url + "?trace=1")
	req.Header.SetMethod("POST")
	req.Header.Set("Authorization", "Bearer "+g.Token)
	req.SetBody(body)
	t0 := time.Now()
	if err := c.Do(&req, &resp); err != nil {
		b.Fatal(err)
	}
	fmt.Println(time.Since(t0), string(resp.Body()))
}
