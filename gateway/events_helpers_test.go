package gateway_test

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/monitor"
)

// streamEvents reads every event now on subject in WEIR_EVENTS, unpacking
// frames (many events a message) and legacy single-event messages alike.
func streamEvents(js jetstream.JetStream, subject string) ([][]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, monitor.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return nil, fmt.Errorf("consumer on %s: %w", subject, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("consumer info: %w", err)
	}
	var evs [][]byte
	for left := int(info.NumPending); left > 0; {
		batch, err := cons.Fetch(min(left, 1000), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("fetch: %w", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			err := monitor.EachEvent(m.Headers(), m.Data(), func(_ int, ev []byte) error {
				evs = append(evs, append([]byte(nil), ev...))
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("message on %s: %w", m.Subject(), err)
			}
		}
		if got == 0 {
			return nil, fmt.Errorf("stream read stalled with %d messages left", left)
		}
		left -= got
	}
	return evs, nil
}
