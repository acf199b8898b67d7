package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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
	testpoll.Eventually(t, 30*time.Second, func() bool { return consumerSettled(t, js, "weir-archive") && len(readArchive(t, dir)) >= n },
		"archive rows %d of %d", len(readArchive(t, dir)), n)
	rows := readArchive(t, dir)
	if len(rows) != n || distinctIDs(rows) != n {
		t.Fatalf("archive has %d rows (%d distinct), want %d", len(rows), distinctIDs(rows), n)
	}
	_ = a
	testpoll.Eventually(t, 30*time.Second, func() bool { return st.Events() == n }, "stats took %d of %d events", st.Events(), n)
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
	testpoll.Eventually(t, 15*time.Second, func() bool { return consumerSettled(t, js, "weir-archive") }, "consumer drained")
	rows := readArchive(t, dir)
	if len(rows) != 150 || distinctIDs(rows) != 150 {
		t.Fatalf("archive has %d rows (%d distinct), want 150", len(rows), distinctIDs(rows))
	}
}
