package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weirhq/weir/internal/natsx/natstest"
)

// lastEvent reads the newest event of WEIR_EVENTS (the last of its frame).
func lastEvent(t testing.TB, js jetstream.JetStream) []byte {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := st.GetLastMsgForSubject(ctx, SubjectEventsPrefix+">")
	if err != nil {
		t.Fatal(err)
	}
	var last []byte
	if err := EachEvent(msg.Header, msg.Data, func(_ int, ev []byte) error { last = ev; return nil }); err != nil {
		t.Fatal(err)
	}
	return last
}

// TestEventSizeCap pins issue 11 defect 4: an event larger than the cap
// (a 500k-row predict) is truncated with a marker and counted, never sent
// whole (over NATS's max payload it would be refused for ever).
func TestEventSizeCap(t *testing.T) {
	s := natstest.Start(t)
	nc, js := s.Connect(t)
	p := newTestPublisher(t, PublisherOptions{Conn: nc, MaxEventBytes: 8 << 10})
	rows := make([]any, 100000)
	for i := range rows {
		rows[i] = 0.123456789
	}
	ev := testEvent("big", 0)
	ev.Outputs = map[string]any{"score": rows}
	p.Publish(ev)
	waitPublished(t, p, 20*time.Second, 1, "the truncated event published")
	data := lastEvent(t, js)
	if len(data) > 8<<10 {
		t.Errorf("event of %d bytes sent, cap 8 KiB", len(data))
	}
	var got Event
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if !got.Truncated || got.ID != ev.ID || got.Route != "big" {
		t.Errorf("truncated event lacks its marker or identity: %.300s", data)
	}
	if n := len(got.Outputs["score"].([]any)); n == 0 || n >= len(rows) {
		t.Errorf("truncated event keeps %d of %d rows", n, len(rows))
	}
	if v := testutil.ToFloat64(p.truncated); v != 1 {
		t.Errorf("weir_events_truncated_total = %v, want 1", v)
	}
}

// TestDeadLetter pins the other half of defect 4: a message NATS refuses
// for good (here one over its max payload, left in the spool by an older
// gateway) goes to the dead-letter file and is counted; the events behind
// it keep flowing.
func TestDeadLetter(t *testing.T) {
	s := natstest.Start(t)
	nc, js := s.Connect(t)
	dir := filepath.Join(t.TempDir(), "spool")
	sp, err := openSpool(dir, 1<<30, 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	huge := bytes.Repeat([]byte("x"), int(nc.MaxPayload())+10)
	sp.mu.Lock()
	_, err = sp.appendLocked([]spoolRecord{{subject: "weir.events.r", id: "too-big-1", data: huge}})
	sp.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.close(); err != nil {
		t.Fatal(err)
	}
	p := newTestPublisher(t, PublisherOptions{Conn: nc, SpoolDir: dir})
	for i := range 10 {
		p.Publish(testEvent("r", i))
	}
	waitPublished(t, p, 30*time.Second, 10, "the 10 events behind the refused one published")
	if v := testutil.ToFloat64(p.deadLettered); v != 1 {
		t.Errorf("weir_events_dead_letter_total = %v, want 1", v)
	}
	dl, err := os.ReadFile(filepath.Join(dir, DeadLetterFile))
	if err != nil || !bytes.Contains(dl, []byte("too-big-1")) {
		t.Errorf("dead-letter file: %v, holds the refused id: %v", err, bytes.Contains(dl, []byte("too-big-1")))
	}
	if _, total := streamIDs(t, js); total != 10 {
		t.Errorf("stream holds %d events, want 10", total)
	}
	// Spool and dead letters hold request features: owner only (defect 10).
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range append(files, dir) {
		if fi, err := os.Stat(f); err == nil && fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v: others may read it", f, fi.Mode().Perm())
		}
	}
}
