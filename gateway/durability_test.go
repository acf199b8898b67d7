package gateway_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/natsx"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/internal/testpoll"
	"github.com/weirhq/weir/monitor"
)

// With --events-durability strict every answered request's event goes
// through the fsynced spool and reaches the stream.
func TestStrictDurabilityAnswersAndStoresEvents(t *testing.T) {
	g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) { o.EventsDurability = monitor.DurabilityStrict }))
	pushModel(t, g, "scorer", "1", scorer(t, txFeatures, []float32{0.5, 0.8, 3}, -4))
	const n = 20
	for range n {
		if r := call(t, "POST", g.URL+"/v1/routes/scorer/predict", "", rowsBody(1)); r.status != 200 {
			t.Fatalf("predict: %d %s", r.status, r.raw)
		}
	}
	nc, err := natsx.Connect(g.NATSURL(), "events")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	testpoll.For(t, 20*time.Second, "every answered request's event in the stream", func() error {
		evs, err := streamEvents(js, monitor.SubjectEventsPrefix+"scorer")
		if err != nil {
			return err
		}
		if len(evs) != n {
			return fmt.Errorf("%d of %d events", len(evs), n)
		}
		return nil
	})
}
