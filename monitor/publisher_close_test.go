package monitor

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/weirhq/weir/internal/natsx/natstest"
	"github.com/weirhq/weir/internal/testpoll"
)

// Close honours its context while a loop is stuck: here the replay waits
// an hour for acks that never come (its stream gone, a subscriber that
// never answers on its subject).
func TestPublisherCloseHonoursItsContext(t *testing.T) {
	s := natstest.Start(t)
	nc, js := s.Connect(t)
	p := newTestPublisher(t, PublisherOptions{Conn: nc, SpillAfter: 10 * time.Millisecond, AckTimeout: time.Hour})
	if err := js.DeleteStream(context.Background(), StreamEvents); err != nil {
		t.Fatal(err)
	}
	seen := make(chan *nats.Msg, 16)
	sub, err := nc.Subscribe(SubjectEventsPrefix+">", func(m *nats.Msg) {
		select {
		case seen <- m:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	p.Publish(testEvent("r1", 0))
	var got []*nats.Msg
	// Sent, spilled, then replayed from the spool: the replay now waits.
	for i := range 2 {
		select {
		case m := <-seen:
			got = append(got, m)
		case <-time.After(testpoll.MinWait):
			t.Fatalf("the event reached its subject %d times, want 2 (sent, then replayed)", i)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Close(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close with the replay stuck: %v, want DeadlineExceeded", err)
		}
	case <-time.After(testpoll.MinWait):
		t.Fatal("Close ignored its context while the replay waited for acks")
	}
	// Answer the publishes, so that the replay ends before the test does.
	for _, m := range got {
		_ = m.Respond([]byte(`{"stream":"` + StreamEvents + `","seq":1}`))
	}
	select {
	case <-p.replayDone:
	case <-time.After(testpoll.MinWait):
		t.Fatal("the replay did not end once its publishes were acked")
	}
}
