package drift

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/weirhq/weir/internal/testpoll"
	"github.com/weirhq/weir/monitor"
	"github.com/weirhq/weir/monitor/event"
)

// The drift consumer reads frames (many events a message) beside legacy
// single-event messages, applies each event once and acks each message; a
// damaged frame is terminated, never redelivered.
func TestFramesAppliedOnceBesideLegacyEvents(t *testing.T) {
	e := newEnv(t)
	m := e.start(t, Options{Durable: "drift-frames", InferCount: 10})
	g := newGen("fm", "1", 3)
	evs := g.events(250, drawNormal(0, false))
	for start := 0; start < 200; start += 100 {
		frame := event.NewFrame(nil)
		for i := start; i < start+100; i++ {
			data, err := json.Marshal(&evs[i])
			if err != nil {
				t.Fatal(err)
			}
			frame = event.AppendEvent(frame, data)
		}
		msg := &nats.Msg{Subject: monitor.SubjectEventsPrefix + evs[start].Route, Data: frame,
			Header: nats.Header{event.HeaderFrame: []string{event.FrameVersionValue}}}
		if _, err := e.js.PublishMsg(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	e.publish(t, evs[200:]...) // legacy: one event a message
	damaged := &nats.Msg{Subject: monitor.SubjectEventsPrefix + "fm", Data: []byte("WF\x01\x00\x00\x00\x05"),
		Header: nats.Header{event.HeaderFrame: []string{event.FrameVersionValue}}}
	if _, err := e.js.PublishMsg(context.Background(), damaged); err != nil {
		t.Fatal(err)
	}
	waitApplied(t, m, 20*time.Second, 250, "all 250 events applied")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	testpoll.For(t, 30*time.Second, "consumer fully acknowledged", func() error {
		c, err := e.js.Consumer(ctx, monitor.StreamEvents, "drift-frames")
		if err != nil {
			return err
		}
		info, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumAckPending != 0 || info.NumPending != 0 || info.NumRedelivered != 0 || info.AckFloor.Stream != 53 {
			return errors.New(ackState(info))
		}
		return nil
	})
	if a, _ := m.Stats(); a != 250 {
		t.Errorf("applied %d events, want 250 (none twice)", a)
	}
}
