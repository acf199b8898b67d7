package gateway

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// observe keeps the series it used; a deleted version's series must still
// go, and come back fresh when the version serves again.
func TestForgetDropsKeptSeries(t *testing.T) {
	m := newMetrics(prometheus.NewRegistry())
	m.observe("r", "a", "fraud", "1", 200, time.Millisecond)
	m.observe("r", "a", "fraud", "1", 200, time.Millisecond)
	m.observe("r", "b", "fraud", "2", 200, time.Millisecond)
	if got := testutil.ToFloat64(m.requests.WithLabelValues("r", "a", "fraud", "1", "200")); got != 2 {
		t.Fatalf("fraud@1 counted %v requests, want 2", got)
	}
	m.forget("fraud", "1")
	if n := testutil.CollectAndCount(m.requests); n != 1 {
		t.Fatalf("%d request series after forgetting fraud@1, want fraud@2's alone", n)
	}
	m.observe("r", "a", "fraud", "1", 200, time.Millisecond)
	if n := testutil.CollectAndCount(m.requests); n != 2 {
		t.Fatalf("%d request series after fraud@1 served again, want 2", n)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("r", "a", "fraud", "1", "200")); got != 1 {
		t.Fatalf("fraud@1 counted %v requests after it came back, want 1", got)
	}
	if n := testutil.CollectAndCount(m.latency); n != 2 {
		t.Fatalf("%d latency series, want 2", n)
	}
}

func BenchmarkObserve(b *testing.B) {
	m := newMetrics(prometheus.NewRegistry())
	b.ReportAllocs()
	for b.Loop() {
		m.observe("fraud-check", "canary", "fraud", "2", 200, time.Millisecond)
	}
}
