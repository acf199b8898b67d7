package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/internal/natsx"
	"github.com/weirhq/weir/internal/natsx/natstest"
)

// restartable is an embedded NATS server that can be stopped and started
// again on the same port and store, so clients reconnect to it.
type restartable struct {
	t    testing.TB
	dir  string
	port int
	srv  *natsx.Embedded
}

func startRestartable(t testing.TB) *restartable {
	t.Helper()
	r := &restartable{t: t, dir: t.TempDir()}
	r.start("127.0.0.1:0")
	_, portStr, err := net.SplitHostPort(r.srv.Addr()) // URL() carries credentials
	if err != nil {
		t.Fatal(err)
	}
	r.port, _ = strconv.Atoi(portStr)
	t.Cleanup(func() {
		if r.srv != nil {
			r.srv.Shutdown()
		}
	})
	return r
}

func (r *restartable) start(listen string) {
	r.t.Helper()
	srv, err := natsx.Start(natsx.Options{Listen: listen, StoreDir: r.dir})
	if err != nil {
		r.t.Fatal(err)
	}
	r.srv = srv
}

func (r *restartable) stop() {
	r.srv.Shutdown()
	r.srv = nil
}

func (r *restartable) restart() { r.start(fmt.Sprintf("127.0.0.1:%d", r.port)) }

func (r *restartable) connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return natstest.ConnectURL(t, r.srv.URL())
}

// streamIDs reads every message in WEIR_EVENTS and counts each event ID
// (the events inside frames, and legacy single-event messages); total is
// the number of events, msgs the number of messages.
func streamIDs(t testing.TB, js jetstream.JetStream) (ids map[string]int, total int) {
	t.Helper()
	ids, total, _ = streamContents(t, js)
	return ids, total
}

func streamContents(t testing.TB, js jetstream.JetStream) (ids map[string]int, total, msgs int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := int(info.State.Msgs)
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ids = make(map[string]int)
	for msgs < want {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			msgs++
			err := EachEvent(m.Headers(), m.Data(), func(_ int, raw []byte) error {
				var ev struct {
					ID string `json:"id"`
				}
				if err := json.Unmarshal(raw, &ev); err != nil {
					return err
				}
				total++
				ids[ev.ID]++
				return nil
			})
			if err != nil {
				t.Fatalf("message %d of WEIR_EVENTS: %v", msgs, err)
			}
		}
		if n == 0 {
			t.Fatalf("stream says %d messages, read only %d", want, msgs)
		}
	}
	return ids, total, msgs
}

// streamEvents counts the events in WEIR_EVENTS (-1 when it cannot be read).
func streamEvents(t testing.TB, js jetstream.JetStream) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.Stream(ctx, StreamEvents); err != nil {
		return -1
	}
	_, total := streamIDs(t, js)
	return total
}

// testEvent is an event of route stamped now. The archive files events by
// route and hour: a test that counts files stamps its events with one time,
// or a run that straddles the hour splits them across two partitions.
func testEvent(route string, i int) *Event {
	return &Event{
		ID:        NewID(),
		TS:        time.Now().UTC(),
		Route:     route,
		Variant:   "stable",
		Model:     "fraud",
		Version:   "1",
		Features:  map[string]any{"amount": float64(i), "country": "DE"},
		Outputs:   map[string]any{"score": 0.25},
		LatencyUS: int64(1000 + i),
		Status:    200,
	}
}
