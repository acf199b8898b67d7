package drift

import (
	"context"
	"testing"
	"time"
)

// A consumer lost with its NATS node (an R1 consumer, or every replica)
// is gone from the server: the monitor must create it again and go on
// counting, within seconds. (It stopped for good.)
func TestConsumerLostIsRecreated(t *testing.T) {
	e := newEnv(t)
	m := e.start(t, Options{Durable: "lost", DeliverAll: true})
	g := newGen("risk", "1", 1)
	e.publish(t, g.events(100, drawNormal(0, false))...)
	waitApplied(t, m, 20*time.Second, 100, "events before the loss")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.js.DeleteConsumer(ctx, "WEIR_EVENTS", "lost"); err != nil {
		t.Fatal(err)
	}
	e.publish(t, g.events(100, drawNormal(0, false))...)
	waitApplied(t, m, 30*time.Second, 200, "events after the consumer was lost")
}
