package plugins

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"
)

// A ~200-byte transaction, the size of a typical enrichment input.
var benchEvent = []byte(`{"account_id":"acct-42","amount":120.5,"merchant":"m1","ts":"2024-05-01T13:45:00Z",` +
	`"currency":"EUR","country":"DE","channel":"web","device_id":"d-7f3a9c","ip":"203.0.113.7","card_bin":"411111"}`)

// benchLimits has a deadline long enough that a scheduling stall on a busy
// machine does not fail a benchmark; it does not change the call's cost.
var benchLimits = Limits{Timeout: time.Second}

// BenchmarkEchoCall is the host's per-call overhead: borrow an instance,
// copy the input in, run the trivial WAT echo, copy the output out. The
// output is appended to a reused buffer, so allocations reported are the
// host's and wazero's own.
func BenchmarkEchoCall(b *testing.B) {
	h := newHost(b, Options{PoolSize: 2, Limits: benchLimits})
	load(b, h, "wat-echo", Limits{})
	ctx := context.Background()
	dst := make([]byte, 0, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchEvent)))
	for b.Loop() {
		var err error
		if dst, err = h.AppendCall(ctx, dst[:0], "wat-echo", "1", nil, benchEvent, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEchoCallNewBuffer is Call as the gateway uses it: the output is
// a fresh slice the caller keeps (one allocation, the request's own).
func BenchmarkEchoCallNewBuffer(b *testing.B) {
	h := newHost(b, Options{PoolSize: 2, Limits: benchLimits})
	load(b, h, "wat-echo", Limits{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Call(ctx, "wat-echo", "1", nil, benchEvent); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEchoCallParallel is the echo call from GOMAXPROCS goroutines.
func BenchmarkEchoCallParallel(b *testing.B) {
	h := newHost(b, Options{Limits: benchLimits})
	load(b, h, "wat-echo", Limits{})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		dst := make([]byte, 0, 1024)
		for pb.Next() {
			var err error
			if dst, err = h.AppendCall(ctx, dst[:0], "wat-echo", "1", nil, benchEvent, Limits{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// nativeEcho is the native equivalent of the echo plugin: copy the input
// into the output buffer.
//
//go:noinline
func nativeEcho(dst, in []byte) []byte { return append(dst, in...) }

func BenchmarkNativeEcho(b *testing.B) {
	dst := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		dst = nativeEcho(dst[:0], benchEvent)
	}
}

// BenchmarkNativeJSONRoundTrip is the least a native enrichment function
// does: decode the event into a map and encode it again (encoding/json).
func BenchmarkNativeJSONRoundTrip(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		var m map[string]any
		if err := json.Unmarshal(benchEvent, &m); err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFraudFeaturesCall is the Go example plugin per call, features
// import included (a map lookup here).
func BenchmarkFraudFeaturesCall(b *testing.B) {
	feats := &mapFeatures{m: map[string]string{"acct-42": `{"amount_mean_24h":100,"amount_std_24h":10}`}}
	h := newHost(b, Options{PoolSize: 2, Features: feats, Limits: benchLimits})
	load(b, h, "fraud-features", Limits{})
	cfg := []byte(`{"merchant_risk":{"m1":0.9},"default_risk":0.1}`)
	ctx := context.Background()
	dst := make([]byte, 0, 1024)
	for range 2000 { // warm the guest's heap
		if _, err := h.AppendCall(ctx, dst[:0], "fraud-features", "1", cfg, benchEvent, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, err = h.AppendCall(ctx, dst[:0], "fraud-features", "1", cfg, benchEvent, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGoSDKRoundTripCall is the floor of a Go plugin: the SDK decodes
// the event into a map and encodes it back (testdata/goplugin). It reports
// the calls' p50 and p99 too: Go's garbage collection shows in the tail
// when it runs inside calls rather than in weir_idle between them.
func BenchmarkGoSDKRoundTripCall(b *testing.B) {
	h := newHost(b, Options{PoolSize: 2, Limits: benchLimits})
	load(b, h, "goplugin", Limits{})
	ctx := context.Background()
	dst := make([]byte, 0, 1024)
	// Let the guest's heap reach its steady size before measuring.
	for range 2000 {
		if _, err := h.AppendCall(ctx, dst[:0], "goplugin", "1", nil, benchEvent, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		t0 := time.Now()
		var err error
		if dst, err = h.AppendCall(ctx, dst[:0], "goplugin", "1", nil, benchEvent, Limits{}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
}
