package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/internal/natsx/natstest"
	"github.com/weirhq/weir/internal/testpoll"
)

// On a 3-node cluster, killing the node that holds a consumer must not
// stop it for good: live stats and the archive count the events sent after
// within seconds. (Stats once stopped at 1,002 of 4,000.)
func TestConsumersResumeAfterTheirNodeDies(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-node NATS cluster and two node outages take ~30s; run without -short")
	}
	c := natstest.StartCluster(t, 3)
	_, js := natstest.ConnectURL(t, c.URL())
	ctx := t.Context()
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: StreamEvents, Subjects: []string{SubjectEventsPrefix + ">"}, Storage: jetstream.FileStorage, Replicas: 3,
	}); err != nil {
		t.Fatal(err)
	}
	st, err := NewStats(StatsOptions{JetStream: js})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())
	dir := t.TempDir()
	a := newTestArchiver(t, ArchiverOptions{JetStream: js, Dir: dir, MaxRows: 100, MaxAge: 100 * time.Millisecond})
	sent := 0
	send := func(n int) {
		for range n {
			ev := testEvent("r", sent)
			data, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			testpoll.For(t, 30*time.Second, "an event stored", func() error {
				pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				_, err := js.Publish(pctx, eventSubject(ev.Route), data, jetstream.WithMsgID(ev.ID))
				return err
			})
			sent++
		}
	}
	counted := func(what string) {
		testpoll.For(t, 30*time.Second, what, func() error {
			if got := st.Events(); got != int64(sent) {
				return fmt.Errorf("stats counted %d of %d events", got, sent)
			}
			if rows := readArchive(t, dir); distinctIDs(rows) != sent {
				return fmt.Errorf("archive holds %d of %d events in %d files", distinctIDs(rows), sent, a.Files())
			}
			return nil
		})
	}
	send(100)
	counted("events before any outage")
	for _, kill := range []struct {
		what  string
		match func(jetstream.ConsumerConfig) bool
	}{
		{"the stats' ordered consumer", func(cfg jetstream.ConsumerConfig) bool { return cfg.Durable == "" }},
		{"the archive's durable consumer", func(cfg jetstream.ConsumerConfig) bool { return cfg.Durable == "weir-archive" }},
	} {
		var node int
		testpoll.For(t, 20*time.Second, "the node holding "+kill.what, func() (err error) {
			node, err = c.ConsumerNode(js, StreamEvents, kill.match)
			return err
		})
		c.Stop(node)
		send(100)
		counted("events after the node holding " + kill.what + " died")
		c.Restart(t, node)
		c.WaitHealthy(t, 30*time.Second)
	}
}
