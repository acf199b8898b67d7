package monitor

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weirhq/weir/internal/natsx/natstest"
	"github.com/weirhq/weir/internal/weirerr"
)

// In strict durability an event whose PublishDurable returned is on disk:
// a publisher that crashes right after (abandoned, never closed, NATS away
// so nothing left the spool) leaves every answered event in its spool.
func TestStrictEventSurvivesAPublisherCrash(t *testing.T) {
	srv := startRestartable(t)
	nc, _ := srv.connect(t)
	dir := filepath.Join(t.TempDir(), "spool")
	p := newTestPublisher(t, PublisherOptions{Conn: nc, SpoolDir: dir, Durability: DurabilityStrict})
	srv.stop()
	waitDisconnected(t, nc)
	const n = 500
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n { // concurrent requests share group commits
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := p.PublishDurable(ctx, testEvent("audit", i)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("PublishDurable: %v", err)
	}
	// The crash: p is abandoned as it is. What would the next start find?
	sp, err := openSpool(dir, 1<<30, 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.close()
	recs, _, err := sp.read(1<<20, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if got := eventsIn(recs); got != n {
		t.Fatalf("the spool holds %d of %d answered events after a crash; %s", got, n, publisherState(p))
	}
}

// Strict events reach the stream through the spool, each once.
func TestStrictEventsAreStored(t *testing.T) {
	s := natstest.Start(t)
	nc, js := s.Connect(t)
	p := newTestPublisher(t, PublisherOptions{Conn: nc, Durability: DurabilityStrict})
	const n = 300
	for i := range n {
		if err := p.PublishDurable(t.Context(), testEvent("audit", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitStored(t, js, p, 20*time.Second, n, true)
	waitPublished(t, p, 20*time.Second, n, "every strict event counted published")
}

// An event the spool cannot keep fails its request (503 naming the spool),
// and is counted as dropped.
func TestStrictEventNotDurableFails(t *testing.T) {
	s := natstest.Start(t)
	nc, _ := s.Connect(t)
	s.Shutdown() // keep everything in the spool
	waitDisconnected(t, nc)
	p := newTestPublisher(t, PublisherOptions{Conn: nc, Durability: DurabilityStrict, SpoolMaxBytes: 1})
	err := p.PublishDurable(t.Context(), testEvent("audit", 1))
	if !errors.Is(err, ErrNotDurable) || weirerr.KindOf(err) != weirerr.Unavailable {
		t.Fatalf("err = %v, want ErrNotDurable, unavailable", err)
	}
	if d := testutil.ToFloat64(p.dropped); d != 1 {
		t.Errorf("dropped = %v, want 1", d)
	}
	if _, err := NewPublisher(t.Context(), PublisherOptions{Conn: nc, SpoolDir: t.TempDir(), Durability: "paranoid"}); err == nil {
		t.Errorf("durability %q accepted", "paranoid")
	}
}

// BenchmarkPublishDurability measures the latency a request pays for its
// event in each durability (one embedded node, 8 concurrent callers, so
// strict's group commits are shared as under load): best-effort is an
// enqueue; strict waits for an fsync of the spool.
func BenchmarkPublishDurability(b *testing.B) {
	for _, mode := range []string{DurabilityBestEffort, DurabilityStrict} {
		b.Run(mode, func(b *testing.B) {
			s := natstest.Start(b)
			nc, _ := s.Connect(b)
			p := newTestPublisher(b, PublisherOptions{Conn: nc, QueueSize: 1 << 16, Durability: mode})
			var waited atomic.Int64 // nanoseconds callers spent in PublishDurable
			b.ReportAllocs()
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					ev := testEvent("bench", i)
					start := time.Now()
					err := p.PublishDurable(context.Background(), ev)
					waited.Add(int64(time.Since(start)))
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(waited.Load())/float64(b.N)/1e3, "µs/call")
		})
	}
}
