package drift

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/internal/natsx/natstest"
	"github.com/weirhq/weir/internal/testpoll"
	"github.com/weirhq/weir/monitor"
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

// On a 3-node cluster, killing the node that leads the drift consumer must
// not stop it: the events sent after are applied within seconds.
func TestConsumerResumesAfterItsNodeDies(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-node NATS cluster and a node outage take ~15s; run without -short")
	}
	c := natstest.StartCluster(t, 3)
	_, js := natstest.ConnectURL(t, c.URL())
	ctx := t.Context()
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: monitor.StreamEvents, Subjects: []string{monitor.SubjectEventsPrefix + ">"}, Storage: jetstream.FileStorage, Replicas: 3,
	}); err != nil {
		t.Fatal(err)
	}
	e := &env{js: js}
	m := e.start(t, Options{Durable: "drift", DeliverAll: true})
	g := newGen("risk", "1", 1)
	send := func(evs []monitor.Event) {
		for i := range evs {
			data, err := json.Marshal(&evs[i])
			if err != nil {
				t.Fatal(err)
			}
			testpoll.For(t, 30*time.Second, "an event stored", func() error {
				pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				_, err := js.Publish(pctx, monitor.SubjectEventsPrefix+"risk", data, jetstream.WithMsgID(evs[i].ID))
				return err
			})
		}
	}
	send(g.events(100, drawNormal(0, false)))
	waitApplied(t, m, 30*time.Second, 100, "events before the outage")
	var node int
	testpoll.For(t, 20*time.Second, "the node leading the drift consumer", func() (err error) {
		node, err = c.ConsumerNode(js, monitor.StreamEvents, func(cfg jetstream.ConsumerConfig) bool { return cfg.Durable == "drift" })
		return err
	})
	c.Stop(node)
	send(g.events(100, drawNormal(0, false)))
	waitApplied(t, m, 30*time.Second, 200, "events after the node leading the consumer died")
}
