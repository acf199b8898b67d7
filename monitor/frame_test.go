package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weirhq/weir/internal/natsx/natstest"
	"github.com/weirhq/weir/internal/testpoll"
	"github.com/weirhq/weir/monitor/event"
)

// buildFrame encodes evs as one frame body.
func buildFrame(t testing.TB, evs []*Event) []byte {
	t.Helper()
	frame := event.NewFrame(nil)
	for _, ev := range evs {
		data, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		frame = event.AppendEvent(frame, data)
	}
	return frame
}

// publishFrame puts evs on the stream as one frame message with frame id id,
// as a gateway's publisher does.
func publishFrame(t testing.TB, js jetstream.JetStream, id string, evs []*Event) *jetstream.PubAck {
	t.Helper()
	msg := &nats.Msg{Subject: eventSubject(evs[0].Route), Data: buildFrame(t, evs),
		Header: nats.Header{jetstream.MsgIDHeader: []string{id}, HeaderFrame: []string{event.FrameVersionValue}}}
	ack, err := js.PublishMsg(context.Background(), msg)
	if err != nil {
		t.Fatal(err)
	}
	return ack
}

func TestFrameRoundTripAndDamage(t *testing.T) {
	evs := []*Event{testEvent("r", 1), testEvent("r", 2), testEvent("r", 3)}
	frame := buildFrame(t, evs)
	if !event.IsFrame(frame) || event.FrameCount(frame) != 3 {
		t.Fatalf("IsFrame %v count %d, want a frame of 3", event.IsFrame(frame), event.FrameCount(frame))
	}
	var got []string
	err := event.Each(event.FrameVersionValue, frame, func(i int, raw []byte) error {
		var ev Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			return err
		}
		got = append(got, ev.ID)
		return nil
	})
	if err != nil || len(got) != 3 || got[0] != evs[0].ID || got[2] != evs[2].ID {
		t.Fatalf("read %v, err %v; want the 3 IDs in order", got, err)
	}
	// A legacy message: no header, a JSON body, one event.
	legacy, _ := json.Marshal(evs[0])
	n := 0
	if err := event.Each("", legacy, func(int, []byte) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("legacy message: %d events, err %v", n, err)
	}
	// Hostile or damaged frames fail with ErrBadFrame, naming the fault.
	cases := map[string]struct {
		header string
		body   []byte
	}{
		"unknown version header": {"2", frame},
		"cut short":              {"1", frame[:len(frame)-5]},
		"trailing bytes":         {"1", append(append([]byte{}, frame...), 'x')},
		"huge length":            {"1", append(event.NewFrame(nil)[:3], 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff)},
		"header but JSON":        {"1", legacy},
		"version byte":           {"", append([]byte{'W', 'F', 9}, frame[3:]...)},
	}
	for name, c := range cases {
		err := event.Each(c.header, c.body, func(int, []byte) error { return nil })
		if !errors.Is(err, event.ErrBadFrame) {
			t.Errorf("%s: err %v, want ErrBadFrame", name, err)
		}
	}
}

// Stats and the archive read frames and legacy single-event messages in the
// same stream, each event once: events of one frame split over two hours
// and over more than one file's worth of rows land in the right files.
func TestReadersTakeFramesAndLegacyEvents(t *testing.T) {
	s := natstest.Start(t)
	_, js := s.Connect(t)
	createEventsStream(t, js)
	dir := t.TempDir()
	a := newTestArchiver(t, ArchiverOptions{JetStream: js, Dir: dir, MaxRows: 50, MaxAge: 100 * time.Millisecond})
	st, err := NewStats(StatsOptions{JetStream: js})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())

	now := time.Now().UTC()
	const frames, per, legacy = 10, 120, 30
	for f := range frames {
		evs := make([]*Event, per)
		for i := range evs {
			evs[i] = testEvent("mix", f*per+i)
			evs[i].TS = now
			if i%3 == 0 {
				evs[i].TS = now.Add(-time.Hour) // another partition
			}
		}
		publishFrame(t, js, NewID(), evs)
		publishRaw(t, js, testEvent("mix", f)) // a legacy message between frames
	}
	for i := frames; i < legacy; i++ {
		publishRaw(t, js, testEvent("mix", i))
	}
	const n = frames*per + legacy
	testpoll.For(t, 30*time.Second, "every event archived", func() error {
		if rows := len(readArchive(t, dir)); rows < n {
			return fmt.Errorf("archive rows %d of %d", rows, n)
		}
		return consumerDrained(js, "weir-archive")
	})
	rows := readArchive(t, dir)
	if len(rows) != n || distinctIDs(rows) != n {
		t.Fatalf("archive has %d rows (%d distinct), want %d", len(rows), distinctIDs(rows), n)
	}
	_ = a
	testpoll.For(t, 30*time.Second, "stats to take every event", func() error {
		if got := st.Events(); got != n {
			return fmt.Errorf("stats took %d of %d events", got, n)
		}
		return nil
	})
	recent := frames*(per-per/3) + legacy
	if got := st.Summary("mix", now.Add(-time.Minute), time.Now())["stable"].Requests; got != int64(recent) {
		t.Errorf("stats counted %d recent requests, want %d", got, recent)
	}
}

// A frame whose first delivery was written in part (one partition's file
// renamed, then a crash before the ack) is not written twice: the events
// already in a file are skipped on redelivery, the rest written.
func TestArchiverFrameCrashMidFrame(t *testing.T) {
	s := natstest.Start(t)
	_, js := s.Connect(t)
	createEventsStream(t, js)
	dir := t.TempDir()
	crashing, err := NewArchiver(ArchiverOptions{JetStream: js, Dir: dir, MaxRows: 100, MaxAge: time.Hour, AckWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	crashing.noAck = true
	now := time.Now().UTC()
	var evs []*Event
	for i := range 150 {
		ev := testEvent("r", i)
		ev.TS = now
		if i >= 100 {
			ev.TS = now.Add(-time.Hour) // 50 in another partition: stays open
		}
		evs = append(evs, ev)
	}
	publishFrame(t, js, NewID(), evs)
	testpoll.For(t, 10*time.Second, "the full partition's file", func() error {
		if n := crashing.Files(); n != 1 {
			return fmt.Errorf("%d files written", n)
		}
		return nil
	})
	crashing.cancel() // die without writing the other partition or acking
	<-crashing.done
	if rows := readArchive(t, dir); len(rows) != 100 {
		t.Fatalf("%d rows on disk before restart, want 100", len(rows))
	}
	newTestArchiver(t, ArchiverOptions{JetStream: js, Dir: dir, MaxRows: 100, MaxAge: 100 * time.Millisecond, AckWait: time.Second})
	testpoll.For(t, 15*time.Second, "consumer drained", func() error { return consumerDrained(js, "weir-archive") })
	rows := readArchive(t, dir)
	if len(rows) != 150 || distinctIDs(rows) != 150 {
		t.Fatalf("archive has %d rows (%d distinct), want 150", len(rows), distinctIDs(rows))
	}
}

// A frame sent again with the same frame ID (an ack lost, the frame spooled
// and re-sent) is stored once: JetStream de-duplicates by Nats-Msg-Id.
func TestResentFrameStoredOnce(t *testing.T) {
	s := natstest.Start(t)
	nc, js := s.Connect(t)
	newTestPublisher(t, PublisherOptions{Conn: nc}) // creates WEIR_EVENTS with its duplicate window
	evs := []*Event{testEvent("r", 1), testEvent("r", 2), testEvent("r", 3)}
	id := NewID()
	if ack := publishFrame(t, js, id, evs); ack.Duplicate {
		t.Fatal("first send reported as a duplicate")
	}
	if ack := publishFrame(t, js, id, evs); !ack.Duplicate {
		t.Error("re-sent frame not reported as a duplicate")
	}
	ids, total, msgs := streamContents(t, js)
	if total != 3 || len(ids) != 3 || msgs != 1 {
		t.Fatalf("stream holds %d events (%d distinct) in %d messages, want 3 in 1", total, len(ids), msgs)
	}
}

// A spool written before frames (records holding one JSON event each) is
// still sent after an upgrade, each record as a legacy single-event message
// that every reader takes, and counted as one event.
func TestLegacySpoolRecordsStillSent(t *testing.T) {
	s := natstest.Start(t)
	nc, js := s.Connect(t)
	dir := filepath.Join(t.TempDir(), "spool")
	sp, err := openSpool(dir, 1<<30, 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	var recs []spoolRecord
	for i := range 5 {
		ev := testEvent("old", i)
		data, _ := json.Marshal(ev)
		recs = append(recs, spoolRecord{subject: eventSubject(ev.Route), id: ev.ID, data: data})
	}
	sp.mu.Lock()
	_, err = sp.appendLocked(recs)
	sp.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.close(); err != nil {
		t.Fatal(err)
	}
	p := newTestPublisher(t, PublisherOptions{Conn: nc, SpoolDir: dir})
	p.Publish(testEvent("old", 5))
	waitPublished(t, p, 20*time.Second, 6, "the 5 spooled events and the new one published")
	ids, total, msgs := streamContents(t, js)
	if total != 6 || len(ids) != 6 || msgs != 6 {
		t.Fatalf("stream holds %d events (%d distinct) in %d messages, want 6 in 6 (5 legacy, 1 frame)", total, len(ids), msgs)
	}
	for _, r := range recs {
		if ids[r.id] != 1 {
			t.Errorf("legacy event %s stored %d times", r.id, ids[r.id])
		}
	}
}

// End to end: events published in frames reach Stats and the archive, each
// exactly once, in far fewer messages than events.
func TestPublishedFramesCountedOnceBySinks(t *testing.T) {
	s := natstest.Start(t)
	nc, js := s.Connect(t)
	p := newTestPublisher(t, PublisherOptions{Conn: nc})
	dir := t.TempDir()
	dec := NewDecoded(2, 64) // shared by the archive and Stats, as in the gateway
	newTestArchiver(t, ArchiverOptions{JetStream: js, Dir: dir, MaxRows: 500, MaxAge: 100 * time.Millisecond, Decoded: dec})
	st, err := NewStats(StatsOptions{JetStream: js, Decoded: dec})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())
	const n = 5000
	for i := range n {
		route := "a"
		if i%3 == 0 {
			route = "b"
		}
		p.Publish(testEvent(route, i))
	}
	testpoll.For(t, 60*time.Second, "every event published", func() error {
		if got := testutil.ToFloat64(p.published); got != n {
			return fmt.Errorf("published %v of %d (spooled %v, dropped %v)", got, n,
				testutil.ToFloat64(p.spooled), testutil.ToFloat64(p.dropped))
		}
		return nil
	})
	_, total, msgs := streamContents(t, js)
	if total != n || msgs > n/10 {
		t.Fatalf("stream holds %d events in %d messages, want %d in at most %d", total, msgs, n, n/10)
	}
	testpoll.For(t, 60*time.Second, "stats to take every event", func() error {
		if got := st.Events(); got != n {
			return fmt.Errorf("stats took %d of %d", got, n)
		}
		return nil
	})
	testpoll.For(t, 60*time.Second, "the archive to hold every event", func() error {
		if rows := len(readArchive(t, dir)); rows != n {
			return fmt.Errorf("archive rows %d of %d", rows, n)
		}
		return consumerDrained(js, "weir-archive")
	})
	rows := readArchive(t, dir)
	if distinctIDs(rows) != n {
		t.Fatalf("archive has %d rows, %d distinct, want %d", len(rows), distinctIDs(rows), n)
	}
	// weir events export reads them back (route a: two of every three).
	var buf bytes.Buffer
	if rows, err := Export(dir, "a", time.Now().Add(-time.Hour), &buf); err != nil || rows != n-(n+2)/3 {
		t.Errorf("export of route a: %d rows, err %v; want %d", rows, err, n-(n+2)/3)
	}
	// Each frame was decoded about once for both sinks (a reader far
	// behind may decode one again), never once per sink.
	if d := dec.decodes.Load(); d > int64(msgs)*3/2 {
		t.Errorf("%d messages decoded %d times for two sinks, want about once each", msgs, d)
	}
	sum := st.Summary("a", time.Now().Add(-time.Minute), time.Now())["stable"].Requests +
		st.Summary("b", time.Now().Add(-time.Minute), time.Now())["stable"].Requests
	if sum != n {
		t.Errorf("stats counted %d requests, want %d", sum, n)
	}
}

// Decoded hands every reader the events of a message, decoding it once,
// and forgets it once all readers have taken it or it falls out of bound.
func TestDecodedSharesOneDecode(t *testing.T) {
	d := NewDecoded(3, 4)
	evs := []*Event{testEvent("r", 1), testEvent("r", 2)}
	frame := buildFrame(t, evs)
	h := nats.Header{HeaderFrame: []string{event.FrameVersionValue}}
	for reader := range 3 {
		var ids []string
		err := d.Each(7, h, frame, func(_ int, ev *Event, _ []byte, err error) {
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, ev.ID)
			ev.TS = time.Time{} // a reader's copy: the others must not see this
		})
		if err != nil || len(ids) != 2 || ids[0] != evs[0].ID || ids[1] != evs[1].ID {
			t.Fatalf("reader %d: %v, err %v", reader, ids, err)
		}
	}
	if n := d.decodes.Load(); n != 1 {
		t.Errorf("decoded %d times for 3 readers, want once", n)
	}
	if len(d.msgs) != 0 {
		t.Errorf("%d messages held after every reader took them", len(d.msgs))
	}
	for seq := range uint64(100) { // taken by one reader only: bounded
		_ = d.Each(seq+10, h, frame, func(int, *Event, []byte, error) {})
	}
	if len(d.msgs) > 4 || len(d.order) > 16 {
		t.Errorf("holds %d messages (order %d), bound 4", len(d.msgs), len(d.order))
	}
	// A legacy single event, and one that is not an event.
	legacy, _ := json.Marshal(evs[0])
	var got []error
	_ = d.Each(500, nil, legacy, func(_ int, _ *Event, _ []byte, err error) { got = append(got, err) })
	_ = d.Each(501, nil, []byte("not json"), func(_ int, _ *Event, _ []byte, err error) { got = append(got, err) })
	if len(got) != 2 || got[0] != nil || got[1] == nil {
		t.Errorf("legacy and garbage messages: %v", got)
	}
}

// A NATS server whose max payload is below FrameMaxBytes still takes every
// event: frames are cut to fit it rather than refused and dead-lettered.
func TestFramesFitServerMaxPayload(t *testing.T) {
	nc, _ := natstest.StartTuned(t, func(o *server.Options) { o.MaxPayload = 16 << 10 })
	p := newTestPublisher(t, PublisherOptions{Conn: nc})
	const n = 1000
	for i := range n {
		p.Publish(testEvent("r", i))
	}
	testpoll.For(t, 30*time.Second, "every event published or dead-lettered", func() error {
		if pub, dead := testutil.ToFloat64(p.published), testutil.ToFloat64(p.deadLettered); pub+dead < n {
			return fmt.Errorf("published %v dead-lettered %v of %d; %s", pub, dead, n, publisherState(p))
		}
		return nil
	})
	if d := testutil.ToFloat64(p.deadLettered); d != 0 {
		t.Errorf("%v events dead-lettered: frames larger than the server's max payload", d)
	}
}
