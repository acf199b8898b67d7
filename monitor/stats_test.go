package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weirhq/weir/internal/natsx/natstest"
	"github.com/weirhq/weir/internal/testpoll"
	"github.com/weirhq/weir/monitor/event"
)

// publishRaw puts an event straight on the stream, as any gateway would.
func publishRaw(t *testing.T, js jetstream.JetStream, ev *Event) {
	t.Helper()
	data, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(context.Background(), eventSubject(ev.Route), data, jetstream.WithMsgID(ev.ID)); err != nil {
		t.Fatal(err)
	}
}

func createEventsStream(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	_, err := js.CreateOrUpdateStream(context.Background(), jetstream.StreamConfig{
		Name: StreamEvents, Subjects: []string{SubjectEventsPrefix + ">"}, Storage: jetstream.FileStorage,
	})
	if err != nil {
		t.Fatal(err)
	}
}

func near(got, want, rel float64) bool { return math.Abs(got-want) <= rel*want }

func TestStatsCountsAndPercentiles(t *testing.T) {
	s := natstest.Start(t)
	_, js := s.Connect(t)
	// Stats starts before the stream exists: it must wait for it.
	st, err := NewStats(StatsOptions{JetStream: js})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())
	createEventsStream(t, js)

	now := time.Now().UTC()
	bucketStart := now.Truncate(10 * time.Second).Add(-30 * time.Second)
	total := 0
	send := func(ev *Event) {
		ev.ID = NewID()
		if ev.Route == "" {
			ev.Route = "fraud"
		}
		publishRaw(t, js, ev)
		total++
	}
	// stable: latencies 1..100 ms, every tenth a 500; score k/100.
	for i := 1; i <= 100; i++ {
		status := 200
		if i%10 == 0 {
			status = 500
		}
		send(&Event{TS: bucketStart.Add(time.Duration(i) * 50 * time.Millisecond), Variant: "stable",
			Model: "fraud", Version: "1", LatencyUS: int64(i) * 1000, Status: status,
			Outputs: map[string]any{"score": float64(i) / 100, "label": i%2 == 0}})
	}
	// canary: 20 requests of 20µs (exact bins), 2 errors of the gateway's
	// side (a 503, a 429 of a full pool), one bucket later.
	for i := range 20 {
		status := 200
		switch i {
		case 0:
			status = 503
		case 1:
			status = 429
		}
		send(&Event{TS: bucketStart.Add(10 * time.Second), Variant: "canary", Model: "fraud", Version: "2",
			LatencyUS: 20, Status: status, Outputs: map[string]any{"score": []any{0.5, 0.7}}})
	}
	// ... and 30 slow refusals of the callers' own mistakes: counted apart,
	// in neither the error rate nor the latency.
	for i := range 30 {
		send(&Event{TS: bucketStart.Add(10 * time.Second), Variant: "canary", Model: "fraud", Version: "2",
			LatencyUS: 5_000_000, Status: []int{400, 404, 413}[i%3]})
	}
	// shadow traffic and an event from before the window.
	send(&Event{TS: bucketStart, Variant: "stable", Model: "fraud", Version: "3", Shadow: true, LatencyUS: 7, Status: 200})
	send(&Event{TS: now.Add(-2 * time.Hour), Variant: "stable", Model: "fraud", Version: "1", LatencyUS: 1, Status: 200})
	send(&Event{TS: bucketStart, Route: "other", Variant: "stable", LatencyUS: 1, Status: 200})

	testpoll.For(t, 10*time.Second, "stats to take every event", func() error {
		if got := st.Events(); got != int64(total) {
			return fmt.Errorf("stats took %d of %d events", got, total)
		}
		return nil
	})

	sum := st.Summary("fraud", now.Add(-time.Minute), now)
	if len(sum) != 3 {
		t.Fatalf("summary has variants %v, want stable, canary, shadow:fraud@3", sum)
	}
	stable := sum["stable"]
	if stable.Requests != 100 || stable.Errors != 10 || stable.ErrorRate != 0.1 {
		t.Errorf("stable: %d requests, %d errors, rate %v; want 100, 10, 0.1", stable.Requests, stable.Errors, stable.ErrorRate)
	}
	// Nearest rank over 1..100 ms: p50 = 50, p95 = 95, p99 = 99 (sketch within 3.2%).
	for _, c := range []struct{ got, want float64 }{{stable.P50Ms, 50}, {stable.P95Ms, 95}, {stable.P99Ms, 99}} {
		if !near(c.got, c.want, 0.032) {
			t.Errorf("stable percentile %v ms, want %v ms ±3.2%%", c.got, c.want)
		}
	}
	score := stable.Outputs["score"]
	if score.Count != 100 || !near(score.Mean, 0.505, 1e-9) || score.Min != 0.01 || score.Max != 1 {
		t.Errorf("stable score: %+v, want count 100 mean 0.505 min 0.01 max 1", score)
	}
	var hsum int64
	for _, c := range score.Histogram.Counts {
		hsum += c
	}
	if len(score.Histogram.Counts) != histogramBins || hsum != 100 || len(score.Histogram.Edges) != histogramBins+1 {
		t.Errorf("stable score histogram %+v: want %d bins holding 100", score.Histogram, histogramBins)
	}
	if label := stable.Outputs["label"]; label.Count != 100 || label.Mean != 0.5 {
		t.Errorf("bool output label: %+v, want count 100 mean 0.5", label)
	}

	canary := sum["canary"]
	if canary.Requests != 50 || canary.Errors != 2 || canary.ClientErrors != 30 || canary.ErrorRate != 0.1 ||
		canary.P50Ms != 0.02 || canary.P99Ms != 0.02 {
		t.Errorf("canary: %+v; want 50 requests, 2 errors, 30 client errors, error rate 0.1 (of 20 served), p50 = p99 = 0.02 ms", canary)
	}
	if sc := canary.Outputs["score"]; sc.Count != 40 || !near(sc.Mean, 0.6, 1e-9) {
		t.Errorf("canary vector output: %+v, want 40 values, mean 0.6", sc)
	}
	if sh := sum["shadow:fraud@3"]; sh.Requests != 1 || !sh.Shadow {
		t.Errorf("shadow: %+v, want one shadow request", sh)
	}

	// A range that only covers the canary's bucket.
	only := st.Summary("fraud", bucketStart.Add(10*time.Second), bucketStart.Add(15*time.Second))
	if only["stable"].Requests != 0 || only["canary"].Requests != 50 {
		t.Errorf("summary of the canary bucket: %v", only)
	}

	ts := st.Timeseries("fraud", time.Minute)
	if len(ts) != 3 || ts[0].Variant != "canary" || ts[1].Variant != "shadow:fraud@3" || ts[2].Variant != "stable" {
		t.Fatalf("timeseries variants: %+v", ts)
	}
	var found bool
	for _, p := range ts[2].Points {
		if p.T.Equal(bucketStart) {
			found = true
			if p.Requests != 100 || p.Errors != 10 || p.RPS != 10 || p.ErrorRate != 0.1 || !near(p.P95Ms, 95, 0.032) {
				t.Errorf("stable point %+v, want 100 requests, 10 errors, 10 rps, p95 ≈ 95", p)
			}
		} else if p.Requests != 0 {
			t.Errorf("unexpected requests in point %+v", p)
		}
	}
	for _, p := range ts[0].Points {
		if p.Requests != 0 && (p.Requests != 50 || p.Errors != 2 || p.ClientErrors != 30 || p.ErrorRate != 0.1 || p.P99Ms != 0.02) {
			t.Errorf("canary point %+v, want 50 requests, 2 errors, 30 client errors, error rate 0.1, p99 0.02 ms", p)
		}
	}
	if !found || len(ts[2].Points) < 6 {
		t.Errorf("timeseries points %+v lack bucket %s", ts[2].Points, bucketStart)
	}
	if got := st.Timeseries("nope", time.Minute); len(got) != 0 {
		t.Errorf("unknown route timeseries: %+v", got)
	}
}

func TestLatencySketchExactBelow32us(t *testing.T) {
	for us := int64(0); us < 32; us++ {
		if got := latValue(latBin(us)); got != float64(us) {
			t.Fatalf("latency %dµs comes back as %v", us, got)
		}
	}
	for _, us := range []int64{33, 1000, 12345, 999999, 1 << 35} {
		if got := latValue(latBin(us)); !near(got, float64(us), 1.0/32) {
			t.Errorf("latency %dµs comes back as %v", us, got)
		}
	}
	for _, x := range []float64{-3.5, 0.001, 0.5, 1, 42, 1e9} {
		if got := valueOfBin(valueBin(x)); !near(math.Abs(got), math.Abs(x), 1.0/32) || (got < 0) != (x < 0) {
			t.Errorf("value %v comes back as %v", x, got)
		}
	}
}

func BenchmarkStatsAdd(b *testing.B) {
	st := &Stats{opts: StatsOptions{Window: time.Hour, Bucket: 10 * time.Second, Now: time.Now},
		nb: 360, bsec: 10, routes: make(map[string]map[string]*series)}
	ev := &statsEvent{TS: time.Now(), Route: "r", Variant: "v", LatencyUS: 1234, Status: 200,
		Outputs: map[string]any{"score": 0.4}}
	b.ReportAllocs()
	for b.Loop() {
		st.add(ev)
	}
}

// Two gateway processes publish; each one's Stats sees the traffic of both.
func TestStatsSeesEveryPublisher(t *testing.T) {
	s := natstest.Start(t)
	nc1, js := s.Connect(t)
	nc2, _ := s.Connect(t)
	p1 := newTestPublisher(t, PublisherOptions{Conn: nc1})
	p2 := newTestPublisher(t, PublisherOptions{Conn: nc2})
	st1, err := NewStats(StatsOptions{JetStream: js})
	if err != nil {
		t.Fatal(err)
	}
	defer st1.Close(context.Background())
	_, js2 := s.Connect(t)
	st2, err := NewStats(StatsOptions{JetStream: js2})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close(context.Background())
	for i := range 30 {
		p1.Publish(testEvent("split", i))
		ev := testEvent("split", i)
		ev.Variant, ev.Status = "canary", 500
		p2.Publish(ev)
	}
	for _, st := range []*Stats{st1, st2} {
		testpoll.For(t, 10*time.Second, "30 stable and 30 failed canary requests in the summary", func() error {
			sum := st.Summary("split", time.Now().Add(-time.Minute), time.Now())
			if sum["stable"].Requests != 30 || sum["canary"].Requests != 30 || sum["canary"].ErrorRate != 1 {
				return fmt.Errorf("summary %v", sum)
			}
			return nil
		})
	}
}

// A wide output's summary feeds live statistics as its statistics' series;
// output series past the cap are left out and counted.
func TestStatsSummarySeriesUnderTheCap(t *testing.T) {
	untracked := prometheus.NewCounter(prometheus.CounterOpts{Name: "u"})
	st := &Stats{opts: StatsOptions{Window: time.Hour, Bucket: 10 * time.Second, Now: time.Now},
		nb: 360, bsec: 10, routes: make(map[string]map[string]*series), untracked: untracked}
	sum := map[string]any{"mean": 0.5, "std": 0.1, "min": 0.0, "max": 1.0, "shape": []any{1.0, 3.0, 32.0, 32.0},
		"channels": []any{map[string]any{"mean": 0.25, "std": 0.0, "min": 0.25, "max": 0.25}}}
	now := time.Now()
	st.add(&statsEvent{TS: now, Route: "r", Variant: "v", Status: 200,
		Outputs: map[string]any{"y": map[string]any{event.SummaryKey: sum}}})
	outs := st.Summary("r", now.Add(-time.Minute), now)["v"].Outputs
	if len(outs) != 8 || outs["y.mean"].Mean != 0.5 || outs["y.c0.mean"].Mean != 0.25 || outs["y.max"].Max != 1 {
		t.Errorf("outputs %v, want y.{mean,std,min,max} and y.c0.*", outs)
	}
	many := map[string]any{}
	for i := range maxOutputSeries {
		many[fmt.Sprintf("o%d", i)] = float64(i)
	}
	st.add(&statsEvent{TS: now, Route: "r", Variant: "v", Status: 200, Outputs: many})
	if n := len(st.Summary("r", now.Add(-time.Minute), now)["v"].Outputs); n != maxOutputSeries {
		t.Errorf("%d output series, want the cap of %d", n, maxOutputSeries)
	}
	if got := testutil.ToFloat64(untracked); got != 8 {
		t.Errorf("weir_stats_untracked_total = %v, want the 8 values past the cap", got)
	}
}

// AnswerShifts compares two variants' answers over the same range: the
// same distribution gives a PSI near 0 whatever the counts, a shifted one
// a large PSI, and a two-valued output is compared on its two values.
func TestStatsAnswerShifts(t *testing.T) {
	now := time.Now()
	st := &Stats{opts: StatsOptions{Window: time.Hour, Bucket: 10 * time.Second, Now: func() time.Time { return now }},
		nb: 360, bsec: 10, routes: make(map[string]map[string]*series)}
	add := func(variant string, n int, score func(i int) float64) {
		for i := range n {
			st.add(&statsEvent{TS: now.Add(-time.Duration(i%50) * time.Second), Route: "r", Variant: variant, Status: 200,
				Outputs: map[string]any{"score": score(i), "flag": i%4 == 0}})
		}
	}
	uniform := func(n int) func(int) float64 { return func(i int) float64 { return float64(i%n) / float64(n) } }
	add("stable", 2000, uniform(2000))
	add("same", 200, uniform(200))
	add("shifted", 200, func(i int) float64 { return 0.9 + float64(i%200)/2000 })
	add("other", 50, uniform(50))
	from := now.Add(-time.Minute)
	same := st.AnswerShifts("r", "same", "stable", from, now)
	if s := same["score"]; s.Count != 200 || s.BaseCount != 2000 || s.PSI > 0.05 {
		t.Errorf("same distribution: %+v, want 200 against 2000 values and a PSI under 0.05", s)
	}
	if f := same["flag"]; f.PSI > 0.05 {
		t.Errorf("same two-valued output: %+v, want a PSI under 0.05", f)
	}
	if s := st.AnswerShifts("r", "shifted", "stable", from, now)["score"]; s.PSI < 1 {
		t.Errorf("answers all in the stable's top tenth: %+v, want a PSI over 1", s)
	}
	// A range that holds none of one variant: nothing to compare.
	if got := st.AnswerShifts("r", "same", "stable", now.Add(-2*time.Hour), now.Add(-90*time.Minute)); len(got) != 0 {
		t.Errorf("range without answers: %v", got)
	}
	if got := st.AnswerShifts("r", "nope", "stable", from, now); got != nil {
		t.Errorf("unknown variant: %v", got)
	}
}
