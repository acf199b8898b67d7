package gateway_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/internal/natsx"
	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/internal/testpoll"
)

// imageBody is a binary-extension OIP request of one FP32 image x of shape
// [1, c, h, w] with pixel(ch, i) values.
func imageBody(t testing.TB, c, h, w int, pixel func(ch, i int) float32) ([]byte, string, []byte) {
	t.Helper()
	raw := make([]byte, 0, 4*c*h*w)
	for ch := 0; ch < c; ch++ {
		for i := 0; i < h*w; i++ {
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(pixel(ch, i)))
		}
	}
	header := map[string]any{"inputs": []any{map[string]any{
		"name": "x", "shape": []int{1, c, h, w}, "datatype": "FP32",
		"parameters": map[string]any{"binary_data_size": len(raw)}}},
		"outputs": []any{map[string]any{"name": "y", "parameters": map[string]any{"binary_data": true}}}}
	body, hlen := binaryBody(t, header, raw)
	return body, strconv.Itoa(hlen), raw
}

func pushImageModel(t testing.TB, g *testgw.Gateway, name string, h, w int) {
	t.Helper()
	m, err := onnx.Identity(name, onnx.Float, onnx.Fixed(1), onnx.Fixed(3), onnx.Fixed(int64(h)), onnx.Fixed(int64(w)))
	if err != nil {
		t.Fatal(err)
	}
	pushModel(t, g, name, "1", m)
}

func eventsOf(t testing.TB, g *testgw.Gateway, route string, n int) [][]byte {
	t.Helper()
	nc, err := natsx.Connect(g.NATSURL(), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	var evs [][]byte
	testpoll.For(t, 20*time.Second, "the events in WEIR_EVENTS", func() error {
		var err error
		if evs, err = streamEvents(js, "weir.events."+route); err != nil {
			return err
		}
		if len(evs) < n {
			return fmt.Errorf("%d of %d events in the stream", len(evs), n)
		}
		return nil
	})
	return evs
}

// TestWideTensorEventCarriesSummary: an image's event holds, for its input
// and its output, a summary (shape, datatype, size, hash, statistics per
// channel) instead of its 3072 values.
func TestWideTensorEventCarriesSummary(t *testing.T) {
	g := testgw.Start(t)
	pushImageModel(t, g, "img", 32, 32)
	// Channel 0 is all 0.25, channel 1 all 0.5, channel 2 alternates 0, 1.
	body, hlen, raw := imageBody(t, 3, 32, 32, func(ch, i int) float32 {
		switch ch {
		case 0:
			return 0.25
		case 1:
			return 0.5
		}
		return float32(i % 2)
	})
	if a := postBinary(t, g.URL+"/v2/models/img/infer", body, hlen); a.status != 200 {
		t.Fatalf("infer: %d %v", a.status, a.header)
	}
	evs := eventsOf(t, g, "img", 1)
	if len(evs[0]) > 4096 {
		t.Errorf("the event of one 32x32 image is %d bytes: %.300s", len(evs[0]), evs[0])
	}
	var ev struct {
		Features, Outputs map[string]struct{ Summary *eventSummary }
	}
	if err := json.Unmarshal(evs[0], &ev); err != nil {
		t.Fatal(err)
	}
	wantHash := fmt.Sprintf("xxh64:%016x", xxhash.Sum64(raw))
	for what, m := range map[string]map[string]struct{ Summary *eventSummary }{"features.x": ev.Features, "outputs.y": ev.Outputs} {
		name := what[strings.IndexByte(what, '.')+1:]
		s := m[name].Summary
		if s == nil {
			t.Fatalf("%s has no summary: %s", what, evs[0])
		}
		if fmt.Sprint(s.Shape) != "[1 3 32 32]" || s.Datatype != "FP32" || s.Bytes != 4*3072 || s.Hash != wantHash {
			t.Errorf("%s: shape %v datatype %s bytes %d hash %s; want [1 3 32 32] FP32 12288 %s", what, s.Shape, s.Datatype, s.Bytes, s.Hash, wantHash)
		}
		if !near(s.Mean, (0.25+0.5+0.5)/3) || s.Min != 0 || s.Max != 1 {
			t.Errorf("%s: mean %v min %v max %v", what, s.Mean, s.Min, s.Max)
		}
		if len(s.Channels) != 3 {
			t.Fatalf("%s: %d channels, want 3: %s", what, len(s.Channels), evs[0])
		}
		for i, want := range [][2]float64{{0.25, 0}, {0.5, 0}, {0.5, 0.5}} {
			if c := s.Channels[i]; !near(c.Mean, want[0]) || !near(c.Std, want[1]) {
				t.Errorf("%s channel %d: mean %v std %v, want %v %v", what, i, c.Mean, c.Std, want[0], want[1])
			}
		}
	}
}

// eventSummary is what an event says of a wide tensor.
type eventSummary struct {
	Shape               []int64
	Datatype, Hash      string
	Bytes               int
	Mean, Std, Min, Max float64
	Channels            []struct{ Mean, Std, Min, Max float64 }
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

// TestImageDriftIsDriftOfItsSummary: images whose brightness shifts raise a
// drift alert on the summary series of the input ("x.mean", "x.c0.mean",
// ...), not on pixels.
func TestImageDriftIsDriftOfItsSummary(t *testing.T) {
	g := testgw.Start(t)
	pushImageModel(t, g, "cam", 32, 32)
	_, alerts := subscribeAlerts(t, g.NATSURL(), "cam")
	rng := rand.New(rand.NewPCG(3, 4))
	send := func(n int, shift float64) {
		for i := 0; i < n; i++ {
			bright := 0.4 + 0.05*rng.NormFloat64() + shift
			body, hlen, _ := imageBody(t, 3, 32, 32, func(ch, i int) float32 {
				return float32(bright + 0.1*rng.NormFloat64())
			})
			if a := postBinary(t, g.URL+"/v2/models/cam/infer", body, hlen); a.status != 200 {
				t.Fatalf("infer: %d %v", a.status, a.header)
			}
		}
	}
	send(1000, 0) // the inferred reference
	send(300, 0.3)
	deadline := time.After(testpoll.MinWait)
	for {
		select {
		case m := <-alerts:
			var a struct{ Feature, Kind, State string }
			json.Unmarshal(m.Data, &a)
			if a.State == "drifted" && strings.HasPrefix(a.Feature, "x.") {
				t.Logf("alert %s", m.Data)
				return
			}
			t.Logf("other alert %s", m.Data)
		case <-deadline:
			t.Fatalf("no drift alert on x's summary within %v of a brightness shift", testpoll.MinWait)
		}
	}
}

// TestWideBurstMemoryReturns: after a burst of image-sized requests from
// several clients, once their events are out, the live heap is back near
// where it started: no request-sized state outlives its request.
func TestWideBurstMemoryReturns(t *testing.T) {
	g := testgw.Start(t)
	pushImageModel(t, g, "big", 224, 224)
	body, hlen, _ := imageBody(t, 3, 224, 224, func(ch, i int) float32 { return float32(i%255) / 255 })
	post := func() {
		if a := postBinary(t, g.URL+"/v2/models/big/infer", body, hlen); a.status != 200 {
			t.Errorf("infer: %d %v", a.status, a.header)
		}
	}
	post() // warm: the session, the pools, the connections
	eventsOf(t, g, "big", 1)
	base := liveHeap()
	const clients, each = 4, 24
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				post()
			}
		}()
	}
	wg.Wait()
	after := liveHeap()
	eventsOf(t, g, "big", 1+clients*each)
	settled := liveHeap()
	t.Logf("live heap: %d MB before, %d MB after the burst, %d MB once its events are out", base>>20, after>>20, settled>>20)
	const slack = 64 << 20
	if after > base+slack {
		t.Errorf("live heap right after a burst of %d requests of 600 KB is %d MB, %d MB over the %d MB before it",
			clients*each, after>>20, (after-base)>>20, base>>20)
	}
	if settled > base+slack {
		t.Errorf("live heap once the burst's events are out is %d MB, %d MB over the %d MB before it",
			settled>>20, (settled-base)>>20, base>>20)
	}
}

// liveHeap is the heap still reachable after a full collection (pools
// emptied, memory handed back).
func liveHeap() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestTabularBatchEventsKeepTheirRows: width is per row. A predict batch of
// 1500 rows has 1500 scores, each one value: its event keeps them as
// before, not a summary.
func TestTabularBatchEventsKeepTheirRows(t *testing.T) {
	g := testgw.Start(t)
	lr, err := onnx.LogisticRegression("lr", []string{"a", "b"}, []float32{0.5, -0.2}, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	pushModel(t, g, "lr", "1", lr)
	const rows = 1500
	var body strings.Builder
	body.WriteByte('[')
	for i := range rows {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `{"a":%d,"b":1}`, i%7)
	}
	body.WriteByte(']')
	if a := call(t, "POST", g.URL+"/v1/routes/lr/predict", "", []byte(body.String())); a.status != 200 {
		t.Fatalf("predict: %d %s", a.status, a.raw)
	}
	evs := eventsOf(t, g, "lr", 1)
	var ev struct{ Outputs map[string]any }
	if err := json.Unmarshal(evs[0], &ev); err != nil {
		t.Fatal(err)
	}
	if scores, ok := ev.Outputs["score"].([]any); !ok || len(scores) != rows {
		t.Errorf("the event of a %d-row batch has score %.200v, want its %d values", rows, ev.Outputs["score"], rows)
	}
}
