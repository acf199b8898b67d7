package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
	"weak"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weirhq/weir/internal/natsx/natstest"
	"github.com/weirhq/weir/internal/testpoll"
	"github.com/weirhq/weir/monitor/event"
)

// publisherState is p's counters and spool in one line, for a wait's last
// state.
func publisherState(p *Publisher) string {
	return fmt.Sprintf("published %v, spooled %v, spilled %v, dropped %v, dead-lettered %v, %d queued, %d spool bytes unread",
		testutil.ToFloat64(p.published), testutil.ToFloat64(p.spooled), testutil.ToFloat64(p.spilled), testutil.ToFloat64(p.dropped),
		testutil.ToFloat64(p.deadLettered), len(p.q), p.spool.unreadBytes())
}

// waitPublished waits for p to have published want events; a timeout
// reports its counters.
func waitPublished(t *testing.T, p *Publisher, timeout time.Duration, want float64, what string) {
	t.Helper()
	testpoll.For(t, timeout, what, func() error {
		if got := testutil.ToFloat64(p.published); got != want {
			return fmt.Errorf("%v of %v published; %s", got, want, publisherState(p))
		}
		return nil
	})
}

// waitStored waits for the stream to hold n events (exactly n when exact,
// at least n otherwise) and p's spool to be empty.
func waitStored(t *testing.T, js jetstream.JetStream, p *Publisher, timeout time.Duration, n int, exact bool) {
	t.Helper()
	testpoll.For(t, timeout, fmt.Sprintf("the stream to hold the %d events and the spool to drain", n), func() error {
		got := streamEvents(t, js)
		if got < n || exact && got != n || !p.spool.empty() {
			return fmt.Errorf("stream has %d of %d events; %s", got, n, publisherState(p))
		}
		return nil
	})
}

// waitDisconnected waits for nc to notice its server is gone.
func waitDisconnected(t *testing.T, nc *nats.Conn) {
	t.Helper()
	testpoll.For(t, 5*time.Second, "the client to notice NATS is gone", func() error {
		if nc.IsConnected() {
			return fmt.Errorf("connection still %v", nc.Status())
		}
		return nil
	})
}

func newTestPublisher(t testing.TB, o PublisherOptions) *Publisher {
	t.Helper()
	if o.SpoolDir == "" {
		o.SpoolDir = filepath.Join(t.TempDir(), "spool")
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	p, err := NewPublisher(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

func TestNewIDUnique(t *testing.T) {
	seen := make(map[string]bool)
	for range 100000 {
		id := NewID()
		if len(id) != 32 || seen[id] {
			t.Fatalf("id %q: duplicate or not 32 chars", id)
		}
		seen[id] = true
	}
}

func TestPublisherOptionsValidated(t *testing.T) {
	_, err := NewPublisher(context.Background(), PublisherOptions{SpoolDir: t.TempDir()})
	if err == nil {
		t.Fatal("NewPublisher without Conn succeeded")
	}
}

func TestPublisherPublishesEveryEventOnce(t *testing.T) {
	s := natstest.Start(t)
	nc, js := s.Connect(t)
	p := newTestPublisher(t, PublisherOptions{Conn: nc})
	const n = 3000
	for i := range n {
		p.Publish(testEvent("fraud-check", i))
	}
	waitPublished(t, p, 20*time.Second, n, "every event published")
	ids, total, msgs := streamContents(t, js)
	if total != n || len(ids) != n {
		t.Fatalf("stream holds %d events with %d distinct IDs, want %d", total, len(ids), n)
	}
	// Events travel in frames: published in a burst, far fewer messages.
	if msgs > n/10 {
		t.Errorf("%d events took %d messages, want frames of many events (at most %d messages)", n, msgs, n/10)
	}

	// The message shape is the external contract.
	ctx := context.Background()
	msg, err := js.Stream(ctx, StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := msg.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Subject != "weir.events.fraud-check" {
		t.Errorf("subject %q, want weir.events.fraud-check", raw.Subject)
	}
	if h := raw.Header.Get(event.HeaderFrame); h != "1" {
		t.Errorf("header %s = %q, want 1", event.HeaderFrame, h)
	}
	frameID := raw.Header.Get(jetstream.MsgIDHeader)
	if len(frameID) != 32 {
		t.Errorf("Nats-Msg-Id %q, want a 32-character frame ID", frameID)
	}
	err = event.Each(raw.Header.Get(event.HeaderFrame), raw.Data, func(_ int, ev []byte) error {
		var fields map[string]any
		if err := json.Unmarshal(ev, &fields); err != nil {
			return err
		}
		for _, k := range []string{"id", "ts", "route", "variant", "model", "version", "features", "outputs", "latency_us", "status"} {
			if _, ok := fields[k]; !ok {
				t.Errorf("event JSON lacks %q: %s", k, ev)
			}
		}
		if fields["id"] == frameID {
			t.Errorf("frame ID %q is an event's ID; want its own", frameID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(p.dropped); got != 0 {
		t.Errorf("dropped %v, want 0", got)
	}
}

func TestPublisherSurvivesNATSRestart(t *testing.T) {
	srv := startRestartable(t)
	nc, _ := srv.connect(t)
	p := newTestPublisher(t, PublisherOptions{Conn: nc, AckTimeout: time.Second})
	const n = 3000
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			p.Publish(testEvent("r1", i))
		}
	}
	publish(0, 1000)
	srv.stop()
	// With the server gone, a Publish that waited on NATS would never return.
	done := make(chan struct{})
	go func() { publish(1000, 2000); close(done) }()
	testpoll.For(t, 10*time.Second, "Publish to return while NATS is down", func() error {
		select {
		case <-done:
			return nil
		default:
			return fmt.Errorf("1000 Publish calls not done; %s", publisherState(p))
		}
	})
	srv.restart()
	publish(2000, n)
	_, js := srv.connect(t)
	waitStored(t, js, p, 30*time.Second, n, false)
	ids, total := streamIDs(t, js)
	if total != n || len(ids) != n {
		t.Fatalf("stream holds %d messages with %d distinct IDs, want %d of each", total, len(ids), n)
	}
	if got := testutil.ToFloat64(p.dropped); got != 0 {
		t.Errorf("dropped %v, want 0", got)
	}
	if got := testutil.ToFloat64(p.spooled); got == 0 {
		t.Error("nothing was spooled during the outage; the test did not exercise the spool")
	}
}

func TestPublisherSpoolBoundDropsAndResends(t *testing.T) {
	srv := startRestartable(t)
	nc, _ := srv.connect(t)
	// The spool keeps or drops whole frames: small ones here, so that a
	// 16 KiB spool keeps some.
	p := newTestPublisher(t, PublisherOptions{Conn: nc, SpoolMaxBytes: 16 << 10, SpoolSegmentBytes: 4 << 10, FrameMaxBytes: 1 << 10})
	srv.stop()
	waitDisconnected(t, nc)
	const n = 500
	for i := range n {
		p.Publish(testEvent("r1", i))
	}
	testpoll.For(t, 10*time.Second, fmt.Sprintf("all %d events spooled or dropped", n), func() error {
		if sp, dr := testutil.ToFloat64(p.spooled), testutil.ToFloat64(p.dropped); sp+dr != n {
			return fmt.Errorf("spooled %v + dropped %v of %d; %s", sp, dr, n, publisherState(p))
		}
		return nil
	})
	spooled := int(testutil.ToFloat64(p.spooled))
	if spooled == 0 || spooled == n {
		t.Fatalf("spooled %d of %d: a 16 KiB spool should keep some and drop the rest", spooled, n)
	}
	reg := p.opts.Registerer.(*prometheus.Registry)
	for _, name := range []string{"weir_events_dropped_total", "weir_events_spooled_total",
		"weir_events_published_total", "weir_events_queue_length", "weir_events_spool_bytes"} {
		if c, err := testutil.GatherAndCount(reg, name); err != nil || c != 1 {
			t.Errorf("metric %s: %d series, err %v", name, c, err)
		}
	}

	srv.restart()
	_, js := srv.connect(t)
	testpoll.For(t, 20*time.Second, "the spool to drain", func() error {
		if !p.spool.empty() {
			return errors.New(publisherState(p))
		}
		return nil
	})
	ids, total := streamIDs(t, js)
	if total != spooled || len(ids) != spooled {
		t.Fatalf("stream holds %d messages (%d distinct), want the %d spooled", total, len(ids), spooled)
	}
}

func TestPublisherResendsSpoolAfterRestart(t *testing.T) {
	srv := startRestartable(t)
	nc, _ := srv.connect(t)
	dir := filepath.Join(t.TempDir(), "spool")
	p := newTestPublisher(t, PublisherOptions{Conn: nc, SpoolDir: dir})
	srv.stop()
	waitDisconnected(t, nc)
	const n = 200
	for i := range n {
		p.Publish(testEvent("r2", i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) == 0 {
		t.Fatal("Close left no spool segments behind")
	}
	for _, s := range segs {
		if fi, _ := os.Stat(s); fi.Size() == 0 {
			t.Errorf("empty segment %s", s)
		}
	}

	srv.restart()
	nc2, js := srv.connect(t)
	p2 := newTestPublisher(t, PublisherOptions{Conn: nc2, SpoolDir: dir})
	waitStored(t, js, p2, 20*time.Second, n, true)
	ids, total := streamIDs(t, js)
	if total != n || len(ids) != n {
		t.Fatalf("stream holds %d (%d distinct), want %d", total, len(ids), n)
	}
}

// BenchmarkPublish measures the cost Publish adds to a request (target < 1µs,
// no blocking). The queue is sized so the call under test is the enqueue, as
// it is in a gateway whose sender keeps up.
func BenchmarkPublish(b *testing.B) {
	s := natstest.Start(b)
	nc, _ := s.Connect(b)
	p := newTestPublisher(b, PublisherOptions{Conn: nc, QueueSize: b.N + 1})
	ev := testEvent("bench", 1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.Publish(ev)
	}
	b.StopTimer()
	if d := testutil.ToFloat64(p.dropped); d > 0 {
		b.Fatalf("%v events dropped", d)
	}
}

// BenchmarkPublisherThroughput measures events/s from Publish into
// JetStream on one embedded node, acks included (target >= 500,000/s with
// frames). "one-per-message" sends every event as its own message (frames
// of one, no linger), the cost before frames, as a baseline in the same run.
func BenchmarkPublisherThroughput(b *testing.B) {
	for _, c := range []struct {
		name string
		o    PublisherOptions
	}{
		{"frames", PublisherOptions{}},
		{"one-per-message", PublisherOptions{FrameMaxEvents: 1, FrameLinger: -1}},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := natstest.Start(b)
			nc, _ := s.Connect(b)
			o := c.o
			o.Conn, o.QueueSize = nc, 1<<20
			p := newTestPublisher(b, o)
			evs := make([]*Event, 1000)
			for i := range evs {
				evs[i] = testEvent("bench", i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				ev := *evs[i%len(evs)]
				ev.ID = NewID()
				p.Publish(&ev)
			}
			for testutil.ToFloat64(p.published) < float64(b.N) {
				if testutil.ToFloat64(p.dropped) > 0 {
					b.Fatal("events dropped")
				}
				time.Sleep(time.Millisecond)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}

// Events handed to NATS but not acknowledged reach the spool within the
// at-least-once window, so a crash while NATS is slow cannot lose them; once
// NATS is back every event is stored exactly once.
func TestPublisherSpillsUnackedEventsWithinWindow(t *testing.T) {
	srv := startRestartable(t)
	nc, _ := srv.connect(t)
	// Acks time out after a minute: only the window can bring events to disk sooner.
	p := newTestPublisher(t, PublisherOptions{Conn: nc, SpillAfter: 100 * time.Millisecond, AckTimeout: time.Minute})
	const n = 2000
	for i := range n / 2 {
		p.Publish(testEvent("r1", i))
	}
	waitPublished(t, p, 20*time.Second, n/2, "the first half published")
	srv.stop()
	// The client has not noticed yet: these go out into its buffer and wait
	// for acks that cannot come.
	for i := n / 2; i < n; i++ {
		p.Publish(testEvent("r1", i))
	}
	atRisk := func() int { return len(p.q) + int(p.batching.Load()) + p.inflightLen() }
	testpoll.For(t, 10*time.Second, "no event only in memory", func() error {
		if n := atRisk(); n != 0 {
			return fmt.Errorf("%d events still only in memory (spilled %v)", n, testutil.ToFloat64(p.spilled))
		}
		return nil
	})
	if got := testutil.ToFloat64(p.spooled); got < n/2 {
		t.Fatalf("spooled %v events during the outage, want at least %d", got, n/2)
	}
	srv.restart()
	_, js := srv.connect(t)
	waitStored(t, js, p, 30*time.Second, n, false)
	ids, total := streamIDs(t, js)
	if total != n || len(ids) != n {
		t.Fatalf("stream holds %d messages with %d distinct IDs, want %d of each", total, len(ids), n)
	}
	if got := testutil.ToFloat64(p.dropped); got != 0 {
		t.Errorf("dropped %v, want 0", got)
	}
}

// startSmallNATS runs a JetStream server that can reserve only maxStore
// bytes, as on a nearly full disk.
func startSmallNATS(t *testing.T, maxStore int64) *nats.Conn {
	t.Helper()
	nc, _ := natstest.StartTuned(t, func(o *server.Options) { o.JetStreamMaxStore = maxStore })
	return nc
}

// With little storage the default stream size shrinks (with a warning); a
// size given explicitly that does not fit fails with ErrStreamNoRoom.
func TestPublisherFitsStreamToStorage(t *testing.T) {
	nc := startSmallNATS(t, 100<<20)
	p := newTestPublisher(t, PublisherOptions{Conn: nc})
	if got := p.StreamMaxBytes(); got != 64<<20 {
		t.Errorf("stream sized %d bytes with 100 MiB of storage, want 64 MiB", got)
	}
	p.Publish(testEvent("r", 1))
	waitPublished(t, p, 10*time.Second, 1, "the event published")

	nc2 := startSmallNATS(t, 100<<20)
	_, err := NewPublisher(context.Background(), PublisherOptions{Conn: nc2, SpoolDir: t.TempDir(), StreamMaxBytes: 1 << 30})
	if !errors.Is(err, ErrStreamNoRoom) {
		t.Fatalf("explicit 1 GiB stream on 100 MiB of storage: err %v, want ErrStreamNoRoom", err)
	}
}

// While the sender lingers for a frame to fill, events wait in the queue:
// taking each as it comes would wake the sender once per request, a
// goroutine switch on every inference. A queue filling up ends the linger
// early.
func TestLingeringSenderIsNotWokenPerEvent(t *testing.T) {
	s := natstest.Start(t)
	nc, _ := s.Connect(t)
	p := newTestPublisher(t, PublisherOptions{Conn: nc, QueueSize: 64, FrameLinger: time.Hour})
	for i := range 10 {
		p.Publish(testEvent("r1", i))
	}
	testpoll.For(t, 30*time.Second, "the sender to take the first event", func() error {
		if b := p.batching.Load(); b == 0 {
			return fmt.Errorf("the sender holds no event yet, %d queued", len(p.q))
		}
		return nil
	})
	if b, q := p.batching.Load(), len(p.q); b != 1 || q != 9 {
		t.Fatalf("while lingering, the sender holds %d events and %d are queued; want 1 and 9", b, q)
	}
	for i := 10; i < 40; i++ { // past half the queue
		p.Publish(testEvent("r1", i))
	}
	// Half a queue ends the linger: the held event and the 32 queued then
	// go out at once. Events queued after that wait for the next frame,
	// whose linger is an hour: how many depends on when the sender woke.
	testpoll.For(t, 30*time.Second, "half a queue published before the hour-long linger ends", func() error {
		got, queued, held := testutil.ToFloat64(p.published), len(p.q), p.batching.Load()
		if got < 33 || int(got)+queued+int(held) != 40 {
			return fmt.Errorf("published %v, %d queued, the sender holds %d; want at least 33 published and all 40 accounted for", got, queued, held)
		}
		return nil
	})
}

// TestPublisherKeepsNoSentEvent: once its events are published, the
// publisher holds none of them: an idle gateway must not keep the last
// burst's events (and whatever their features hold) alive.
func TestPublisherKeepsNoSentEvent(t *testing.T) {
	s := natstest.Start(t)
	nc, _ := s.Connect(t)
	p := newTestPublisher(t, PublisherOptions{Conn: nc})
	const n = 200
	ptrs := make([]weak.Pointer[Event], n)
	for i := range n {
		ev := testEvent("burst", i)
		ptrs[i] = weak.Make(ev)
		p.Publish(ev)
	}
	waitPublished(t, p, 20*time.Second, n, "every event published")
	testpoll.For(t, 10*time.Second, "the publisher to let go of sent events", func() error {
		runtime.GC()
		held := 0
		for _, w := range ptrs {
			if w.Value() != nil {
				held++
			}
		}
		if held > 0 {
			return fmt.Errorf("%d of %d published events still reachable", held, n)
		}
		return nil
	})
}
