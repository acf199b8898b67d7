package gateway_test

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/models"
)

// The batching benchmark's model and setting: a wide MLP (512 inputs,
// hidden layers of 4096 and 2048, 16 outputs: 10.5 M weights, 42 MB). One
// row's Run reads every weight from memory for 21 MFLOP of work; a batch
// reads them once for all its rows, so its rows cost their arithmetic
// alone. WEIR_BENCH_BATCHING_MLP ("256,2048,2048,16") and
// WEIR_BENCH_BATCHING ("?max_batch_size=64&max_queue_delay=1ms") try
// others.
var (
	batchBenchSizes = benchSizes(os.Getenv("WEIR_BENCH_BATCHING_MLP"), []int{512, 4096, 2048, 16})
	batchBenchQuery = cmp.Or(os.Getenv("WEIR_BENCH_BATCHING"), "?max_batch_size=32&max_queue_delay=500us")
)

const batchBenchClients = 64

// benchSizes reads layer sizes ("512,4096,2048,16"), or gives def.
func benchSizes(s string, def []int) []int {
	if s == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(f)
		if err != nil {
			panic("WEIR_BENCH_BATCHING_MLP: " + err.Error())
		}
		out = append(out, n)
	}
	return out
}

// BenchmarkReportBatching is the dynamic batching part of BenchmarkReport
// alone: go test -run '^$' -bench '^BenchmarkReportBatching$' -benchtime 1x ./gateway/
func BenchmarkReportBatching(b *testing.B) {
	if b.N > 1 {
		b.Skip("the report runs once: use -benchtime 1x")
	}
	rounds := 3
	if testing.Short() {
		rounds = 1
	}
	var rep report
	start := time.Now()
	load0 := loadAvg()
	batchingReport(b, testgw.Start(b), &rep, rounds)
	rep.note = fmt.Sprintf("load average %s before and %s after, %d rounds, %s in all", load0, loadAvg(), rounds, time.Since(start).Round(time.Second))
	fmt.Println(rep.markdown())
}

// batchingReport measures 64 closed-loop clients on the wide MLP without
// and with dynamic batching, in alternating rounds on one gateway (two
// versions of the same bytes): throughput and p99 of each.
func batchingReport(b *testing.B, g *testgw.Gateway, rep *report, rounds int) {
	mlp, err := onnx.MLP("wide", batchBenchSizes, 5)
	if err != nil {
		b.Fatal(err)
	}
	single := singleRowRun(b, mlp)
	pushModel(b, g, "wide", "1", mlp)
	if a := call(b, "PUT", g.URL+"/v1/models/wide/versions/2"+batchBenchQuery, g.Token, mlp); a.status != 201 {
		b.Fatalf("push the batched version: %d %s", a.status, a.raw)
	}
	x := make([]float32, batchBenchSizes[0])
	for i := range x {
		x[i] = float32(i%17) / 17
	}
	body, _ := json.Marshal(map[string]any{"inputs": []map[string]any{{"name": "features", "shape": []int{1, len(x)}, "datatype": "FP32", "data": x}}})
	plain, batched := g.URL+"/v2/models/wide/versions/1/infer", g.URL+"/v2/models/wide/versions/2/infer"
	closedLoop(b, plain, body, batchBenchClients, 200*time.Millisecond) // warm both
	closedLoop(b, batched, body, batchBenchClients, 200*time.Millisecond)
	var pn, bn int64
	var pt, bt time.Duration
	var plat, blat []time.Duration
	for range rounds {
		n, d, lat := closedLoop(b, plain, body, batchBenchClients, 2*time.Second)
		pn, pt, plat = pn+n, pt+d, append(plat, lat...)
		n, d, lat = closedLoop(b, batched, body, batchBenchClients, 2*time.Second)
		bn, bt, blat = bn+n, bt+d, append(blat, lat...)
	}
	sum, count := batchMetric(b, g, "wide", "2")
	pr, br := float64(pn)/pt.Seconds(), float64(bn)/bt.Seconds()
	p99p, p99b := percentile(plat, 0.99), percentile(blat, 0.99)
	ratio, p99ratio := br/pr, float64(p99b)/float64(p99p)
	rep.add(fmt.Sprintf("dynamic batching at %d clients, MLP %s (single-row Run %s), OIP JSON: batched (%s) vs not, throughput and p99",
		batchBenchClients, mlpName(batchBenchSizes), us(single), strings.TrimPrefix(batchBenchQuery, "?")),
		fmt.Sprintf("%.0f vs %.0f req/s (%.1fx); p99 %s vs %s (%.2fx); %.1f requests a batch", br, pr, ratio, us(p99b), us(p99p), p99ratio, sum/max(count, 1)),
		ratio, ">= 3x throughput at p99 <= 2x unbatched", ratio >= 3 && p99ratio <= 2, "ratio")
}

// mlpName writes layer sizes as 256-128x96-16: runs of a size counted.
func mlpName(sizes []int) string {
	var parts []string
	for i := 0; i < len(sizes); {
		j := i
		for j < len(sizes) && sizes[j] == sizes[i] {
			j++
		}
		if j-i > 1 {
			parts = append(parts, fmt.Sprintf("%dx%d", sizes[i], j-i))
		} else {
			parts = append(parts, strconv.Itoa(sizes[i]))
		}
		i = j
	}
	return strings.Join(parts, "-")
}

// singleRowRun is the median cost of one single-row Run of model on ONNX
// Runtime directly (the gateway's settings: one intra-op thread).
func singleRowRun(b *testing.B, model []byte) time.Duration {
	path := filepath.Join(b.TempDir(), "m.onnx")
	if err := os.WriteFile(path, model, 0o600); err != nil {
		b.Fatal(err)
	}
	s, err := models.LoadSession(path, models.SessionOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	in := []models.Tensor{{Name: "features", Datatype: models.FP32, Shape: []int64{1, int64(batchBenchSizes[0])},
		Data: models.TensorData{Values: make([]float32, batchBenchSizes[0])}}}
	lat := make([]time.Duration, 0, 200)
	for range 200 {
		t0 := time.Now()
		if _, err := s.Run(in); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	return median(lat)
}

// closedLoop runs clients, each sending the next request when the last is
// answered, for d: requests done, the time taken and every latency.
func closedLoop(b *testing.B, url string, body []byte, clients int, d time.Duration) (int64, time.Duration, []time.Duration) {
	c := hostClient(url)
	c.MaxConns = clients
	var done atomic.Int64
	var failed atomic.Value
	var mu sync.Mutex
	var all []time.Duration
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var req fasthttp.Request
			var resp fasthttp.Response
			lat := make([]time.Duration, 0, 1024)
			defer func() {
				mu.Lock()
				all = append(all, lat...)
				mu.Unlock()
			}()
			for {
				select {
				case <-stop:
					return
				default:
				}
				t0 := time.Now()
				if err := doPost(c, url, body, &req, &resp); err != nil {
					failed.Store(err)
					return
				}
				lat = append(lat, time.Since(t0))
				done.Add(1)
			}
		}()
	}
	time.Sleep(d)
	close(stop)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	return done.Load(), time.Since(start), all
}
