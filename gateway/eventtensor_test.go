package gateway

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/weirhq/weir/models"
	"github.com/weirhq/weir/monitor/event"
)

// TestSummaryLayouts: channels follow NCHW, else NHWC; non-finite values
// are counted, not summarised; BYTES has a size and a hash but no stats;
// the summary's JSON is what monitoring reads back as series.
func TestSummaryLayouts(t *testing.T) {
	// NHWC 1x5x1x2 (dimension 1 is too wide for channels): channel 0 is
	// 1,3,5,7,9 and channel 1 only NaNs.
	nan := float32(math.NaN())
	nhwc := models.Tensor{Name: "x", Datatype: models.FP32, Shape: []int64{1, 5, 1, 2},
		Data: models.TensorData{Values: []float32{1, nan, 3, nan, 5, nan, 7, nan, 9, nan}}}
	s := summaryOf(nhwc)[event.SummaryKey].(*event.TensorSummary)
	if s.NonFinite != 5 || s.Stats == nil || s.Mean != 5 || s.Min != 1 || s.Max != 9 || s.Bytes != 40 {
		t.Errorf("NHWC summary %+v stats %+v", s, s.Stats)
	}
	if s.Channels != nil {
		t.Errorf("a channel of NaNs still has per-channel stats: %+v", s.Channels)
	}
	nhwc.Data.Values = []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	s = summaryOf(nhwc)[event.SummaryKey].(*event.TensorSummary)
	if len(s.Channels) != 2 || s.Channels[0].Mean != 5 || s.Channels[1].Mean != 6 || s.Channels[0].Std != math.Sqrt(8) {
		t.Errorf("NHWC channels %+v", s.Channels)
	}
	// NCHW wins when dimension 1 is small: 1x2x1x4.
	nchw := models.Tensor{Name: "x", Datatype: models.Int64, Shape: []int64{1, 2, 1, 4},
		Data: models.TensorData{Values: []int64{1, 1, 1, 1, 9, 9, 9, 9}}}
	s = summaryOf(nchw)[event.SummaryKey].(*event.TensorSummary)
	if len(s.Channels) != 2 || s.Channels[0].Mean != 1 || s.Channels[1].Mean != 9 || s.Bytes != 64 {
		t.Errorf("NCHW summary %+v channels %+v", s, s.Channels)
	}
	// Equal tensors hash equal, different ones differ.
	other := nchw
	other.Data.Values = []int64{1, 1, 1, 1, 9, 9, 9, 8}
	if h := summaryOf(other)[event.SummaryKey].(*event.TensorSummary).Hash; h == s.Hash || len(h) != len("xxh64:")+16 {
		t.Errorf("hashes %s and %s", h, s.Hash)
	}
	str := models.Tensor{Name: "s", Datatype: models.Bytes, Shape: []int64{2}, Data: models.TensorData{Values: []string{"ab", "c"}}}
	s = summaryOf(str)[event.SummaryKey].(*event.TensorSummary)
	if s.Stats != nil || s.Bytes != 4+2+4+1 {
		t.Errorf("BYTES summary %+v", s)
	}
	// Through JSON, as the monitors see it.
	b, err := json.Marshal(summaryOf(nchw))
	if err != nil {
		t.Fatal(err)
	}
	var decoded any
	json.Unmarshal(b, &decoded)
	got := map[string]float64{}
	if !event.SummarySeries("x", decoded, func(name string, v float64) { got[name] = v }) {
		t.Fatalf("%s is not read back as a summary", b)
	}
	if len(got) != 12 || got["x.mean"] != 5 || got["x.c1.min"] != 9 || got["x.c0.std"] != 0 {
		t.Errorf("series of %s: %v", b, got)
	}
}

// BenchmarkSummaryImage: the cost a 1x3x224x224 image adds to its request.
func BenchmarkSummaryImage(b *testing.B) {
	v := make([]float32, 3*224*224)
	for i := range v {
		v[i] = float32(i%255) / 255
	}
	t := models.Tensor{Name: "x", Datatype: models.FP32, Shape: []int64{1, 3, 224, 224}, Data: models.TensorData{Values: v}}
	b.ReportAllocs()
	for b.Loop() {
		summaryOf(t)
	}
}
