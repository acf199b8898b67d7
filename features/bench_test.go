package features

import (
	"context"
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/natsx/natstest"
	"github.com/weirhq/weir/internal/testpoll"
)

// BenchmarkReadFeaturesHit is the plugin hot path: a cached entity.
// Target: well under 1µs and 0 allocs/op.
func BenchmarkReadFeaturesHit(b *testing.B) {
	srv := natstest.Start(b)
	s, _ := openStore(b, srv, false)
	ctx := context.Background()
	if _, err := s.Merge(ctx, "acct-1", map[string]any{"tx_count_1h": 3, "amount_mean_24h": 41.5, "country": "DE"}); err != nil {
		b.Fatal(err)
	}
	testpoll.For(b, 2*time.Second, "entity cached", func() error {
		_, ok, err := s.ReadFeatures(ctx, "acct-1")
		s.cache.Wait()
		e, hit := s.cache.Get("acct-1")
		if !ok || !hit || e.data == nil {
			return fmt.Errorf("read found it: %v (err %v), cached: %v, cached data: %v", ok, err, hit, hit && e.data != nil)
		}
		return nil
	})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		data, ok, err := s.ReadFeatures(ctx, "acct-1")
		if !ok || err != nil || len(data) == 0 {
			b.Fatal("miss")
		}
	}
}

// BenchmarkAggregateApply is the in-memory part of ingestion: decoding and
// validating one event and folding it into three aggregations.
func BenchmarkAggregateApply(b *testing.B) {
	fs, err := ParseSet("bench", []byte(benchSet))
	if err != nil {
		b.Fatal(err)
	}
	raws := benchEvents(1000, 100)
	st := make([]entityState, 100)
	for i := range st {
		st[i].Aggs = make([]aggState, 3)
	}
	now := time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ev, e := decodeEvent(raws[i%len(raws)])
		if e != nil {
			b.Fatal(e)
		}
		p, e := prepare(fs, ev, now)
		if e != nil {
			b.Fatal(e)
		}
		es := &st[i%len(st)]
		for j := range fs.Aggregations {
			a := &fs.Aggregations[j]
			es.Aggs[j].add(a.Op, a.width, a.n, es.Latest, p.obs[j])
		}
		es.Latest = max(es.Latest, p.ts)
		i++
	}
}

const benchSet = `{"key":"account_id","timestamp_field":"ts","aggregations":[
 {"name":"tx_count_1h","op":"count","window":"1h"},
 {"name":"amount_mean_24h","field":"amount","op":"mean","window":"24h"},
 {"name":"merchants_1d","field":"merchant","op":"distinct","window":"24h"}]}`

func benchEvents(n, entities int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, `{"id":"%d","account_id":"acct-%d","ts":%d,"amount":%d.5,"merchant":"m%d"}`,
			i, i%entities, t0.Add(time.Duration(i)*time.Second).UnixMilli(), i%500, i%37)
	}
	return out
}

// BenchmarkIngestThroughput measures end to end ingestion on one node:
// publish to WEIR_INGEST (with de-duplication ids), consume, aggregate three
// aggregations over 1000 entities, flush to KV. Target: >= 50,000 events/s.
func BenchmarkIngestThroughput(b *testing.B) {
	srv := natstest.Start(b)
	s, _ := openStore(b, srv, true, func(o *Options) { o.FlushInterval = 250 * time.Millisecond })
	ctx := context.Background()
	if _, err := s.DefineSet(ctx, "bench", []byte(benchSet)); err != nil {
		b.Fatal(err)
	}
	const batch = 5000
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	sent := 0
	for sent < b.N {
		n := min(batch, b.N-sent)
		raws := benchEvents(n, 1000)
		for i := range raws { // unique ids across batches
			raws[i] = append([]byte(`{"seq":`+strconv.Itoa(sent+i)+`,`), raws[i][1:]...)
		}
		if _, _, err := s.ingestRaw(ctx, "bench", raws, "b"+strconv.Itoa(sent)); err != nil {
			b.Fatal(err)
		}
		sent += n
	}
	published := time.Since(start)
	testpoll.For(b, time.Minute, "all events applied", func() error {
		if st := s.Stats("bench"); st.Applied < int64(b.N) {
			return fmt.Errorf("%d of %d applied; %s", st.Applied, b.N, statsLine(st))
		}
		return nil
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(b.N)/published.Seconds(), "published/s")
	// The machine is shared: CPU time per event (this process, embedded
	// NATS server included) says what an idle machine would do.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/event")
}

// cpuTime is the user+system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
