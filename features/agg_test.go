package features

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"
)

// aggHarness folds events into one aggregation the way the worker does.
type aggHarness struct {
	op       Op
	width, n int64
	st       aggState
	latest   int64
}

func newHarness(op Op, window time.Duration) *aggHarness {
	w, n := bucketGeometry(window.Milliseconds())
	return &aggHarness{op: op, width: w, n: n}
}

func (h *aggHarness) add(ts time.Time, v any) bool {
	o := observation{ts: ts.UnixMilli()}
	switch x := v.(type) {
	case float64:
		o.num = x
		o.raw, _ = json.Marshal(x)
	case string:
		o.hash = hashValue('s', x)
		o.raw, _ = json.Marshal(x)
	}
	ok := h.st.add(h.op, h.width, h.n, h.latest, o)
	h.latest = max(h.latest, o.ts)
	return ok
}

func (h *aggHarness) value() any { return h.st.value(h.op, h.width, h.n, h.latest) }

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func TestCountSlidingWindow(t *testing.T) {
	h := newHarness(OpCount, time.Hour)
	steps := []struct {
		at   time.Duration
		want int64
	}{
		{0, 1},                 // t0
		{30 * time.Minute, 2},  // t0, t0+30m
		{70 * time.Minute, 2},  // t0 slid out: t0+30m, t0+70m
		{95 * time.Minute, 2},  // t0+30m slid out: t0+70m, t0+95m
		{200 * time.Minute, 1}, // only itself
	}
	for _, s := range steps {
		h.add(t0.Add(s.at), nil)
		if got := h.value(); got != s.want {
			t.Errorf("count_1h after event at t0+%s = %v, want %d", s.at, got, s.want)
		}
	}
	if len(h.st.Buckets) > int(h.n) {
		t.Errorf("%d buckets kept, want at most %d", len(h.st.Buckets), h.n)
	}
}

func TestLateEventsAndOutOfOrder(t *testing.T) {
	h := newHarness(OpCount, time.Hour)
	h.add(t0.Add(2*time.Hour), nil)
	if h.add(t0, nil) {
		t.Error("event two hours older than the newest was not reported late")
	}
	if !h.add(t0.Add(90*time.Minute), nil) {
		t.Error("out-of-order event inside the window was dropped")
	}
	if got := h.value(); got != int64(2) {
		t.Errorf("count = %v, want 2", got)
	}
}

func TestOps(t *testing.T) {
	amounts := []float64{10, 20, 30, 40, 1000}
	// The first event falls out of the 1h window by the last one.
	times := []time.Duration{0, 50 * time.Minute, 55 * time.Minute, 60 * time.Minute, 65 * time.Minute}
	in := amounts[1:] // what the window holds at the end: 20, 30, 40, 1000
	mean := (20 + 30 + 40 + 1000) / 4.0
	var ss float64
	for _, v := range in {
		ss += (v - mean) * (v - mean)
	}
	want := map[Op]any{
		OpCount: int64(4),
		OpSum:   1090.0,
		OpMean:  mean,
		OpStd:   math.Sqrt(ss / 4),
		OpMin:   20.0,
		OpMax:   1000.0,
	}
	for op, w := range want {
		h := newHarness(op, time.Hour)
		for i, a := range amounts {
			h.add(t0.Add(times[i]), a)
		}
		got := h.value()
		if g, ok := got.(float64); ok {
			if math.Abs(g-w.(float64)) > 1e-9 {
				t.Errorf("%s = %v, want %v", op, g, w)
			}
		} else if got != w {
			t.Errorf("%s = %v (%T), want %v", op, got, got, w)
		}
	}
	last := newHarness(OpLast, time.Hour)
	last.add(t0.Add(10*time.Minute), "b")
	last.add(t0, "a") // older: not the last
	if got := string(last.value().(json.RawMessage)); got != `"b"` {
		t.Errorf("last = %s, want \"b\"", got)
	}
	empty := newHarness(OpMean, time.Hour)
	if got := empty.value(); got != nil {
		t.Errorf("mean of nothing = %v, want nil", got)
	}
	if got := newHarness(OpSum, time.Hour).value(); got != 0.0 {
		t.Errorf("sum of nothing = %v, want 0", got)
	}
}

func TestDistinct(t *testing.T) {
	h := newHarness(OpDistinct, 24*time.Hour)
	for i := 0; i < 30; i++ {
		h.add(t0.Add(time.Duration(i)*time.Minute), fmt.Sprintf("m%d", i%10))
	}
	if got := h.value(); got != int64(10) {
		t.Errorf("distinct of 10 merchants = %v, want 10 (exact below %d)", got, kmvK)
	}
	big := newHarness(OpDistinct, 24*time.Hour)
	const n = 5000
	for i := 0; i < n; i++ {
		big.add(t0.Add(time.Duration(i)*time.Second), fmt.Sprintf("m%d", i))
	}
	got := float64(big.value().(int64))
	if math.Abs(got-n)/n > 0.35 {
		t.Errorf("distinct estimate of %d = %v, off by more than 35%%", n, got)
	}
	for _, b := range big.st.Buckets {
		if len(b.Hashes) > kmvK {
			t.Fatalf("bucket keeps %d hashes, want at most %d", len(b.Hashes), kmvK)
		}
	}
}

func TestStdNumericallyStable(t *testing.T) {
	h := newHarness(OpStd, time.Hour)
	for i, v := range []float64{1e9 + 4, 1e9 + 7, 1e9 + 13, 1e9 + 16} {
		h.add(t0.Add(time.Duration(i)*20*time.Minute/3), v)
	}
	// values 4,7,13,16 around 1e9: mean 10, population variance 22.5
	if got := h.value().(float64); math.Abs(got-math.Sqrt(22.5)) > 1e-6 {
		t.Errorf("std = %v, want %v", got, math.Sqrt(22.5))
	}
}
