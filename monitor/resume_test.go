package monitor

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/natsx/natstest"
	"github.com/weirhq/weir/internal/testpoll"
)

// The archive's durable consumer lost with its node: the archiver consumes
// again and archives what comes after, without writing anything twice.
func TestArchiverResumesWhenItsConsumerIsLost(t *testing.T) {
	s := natstest.Start(t)
	_, js := s.Connect(t)
	createEventsStream(t, js)
	dir := t.TempDir()
	// An ack sent to the lost consumer is lost with it, and its event is
	// redelivered after AckWait (then acked as already written): keep it
	// short so the test does not wait 30s for them.
	a := newTestArchiver(t, ArchiverOptions{JetStream: js, Dir: dir, MaxRows: 50, MaxAge: 100 * time.Millisecond, AckWait: 2 * time.Second})
	send := func(from, n int) {
		for i := range n {
			publishRaw(t, js, testEvent("r", from+i))
		}
	}
	wait := func(want int, what string) {
		testpoll.For(t, 30*time.Second, what, func() error {
			if rows := readArchive(t, dir); len(rows) != want || distinctIDs(rows) != want {
				return fmt.Errorf("archive has %d rows (%d distinct) in %d files, want %d", len(rows), distinctIDs(rows), a.Files(), want)
			}
			return consumerDrained(js, "weir-archive")
		})
	}
	send(0, 100)
	wait(100, "events before the loss")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := js.DeleteConsumer(ctx, StreamEvents, "weir-archive"); err != nil {
		t.Fatal(err)
	}
	send(100, 100)
	wait(200, "events after the consumer was lost")
}
