// The Monitor's consumer of WEIR_EVENTS: where it starts reading, resuming
// after NATS comes back, and handing each message's events to Apply.

package drift

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/monitor"
)

func (m *Monitor) consumerConfig(deliver jetstream.DeliverPolicy, from *time.Time) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       m.opts.Durable,
		Description:   "weir drift monitor",
		FilterSubject: m.opts.FilterSubject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: deliver,
		OptStartTime:  from,
		AckWait:       30 * time.Second,
		MaxAckPending: 4096,
	}
}

// consumeLocked consumes cons into handle; called with consMu held. A
// consumer that is gone (lost with its NATS node) or silent past two
// heartbeats (2s each) wakes resume.
func (m *Monitor) consumeLocked(cons jetstream.Consumer) error {
	cc, err := cons.Consume(m.handle,
		jetstream.PullMaxBytes(8<<20), // a message is a frame of up to ~64 KiB of events
		jetstream.PullExpiry(10*time.Second), jetstream.PullHeartbeat(2*time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			m.log.Debug("drift consumer", "err", err)
			if monitor.ConsumerLost(err) {
				select {
				case m.consLost <- struct{}{}:
				default:
				}
			}
		}))
	if err != nil {
		return fmt.Errorf("drift: consume %s: %w", m.opts.Durable, err)
	}
	m.cc = cc
	return nil
}

// resume consumes again when the consumer was lost: the durable if it
// still exists (its leader moved), or a new one from just after the last
// event applied (it went with its node), retrying every second until
// Close.
func (m *Monitor) resume() {
	defer m.wg.Done()
	for {
		select {
		case <-m.stop:
			return
		case <-m.consLost:
		}
		for !m.reconsume() {
			select {
			case <-m.stop:
				return
			case <-time.After(time.Second): // retry pace, not a wait for an event
			}
		}
	}
}

// reconsume replaces the consumer; false: try again later.
func (m *Monitor) reconsume() bool {
	m.consMu.Lock()
	defer m.consMu.Unlock()
	if m.closing {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := m.opts.JS.Consumer(ctx, m.opts.Stream, m.opts.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cfg := m.consumerConfig(jetstream.DeliverNewPolicy, nil)
		if last := m.lastMsg.Load(); last != 0 {
			from := time.Unix(0, last+1)
			cfg = m.consumerConfig(jetstream.DeliverByStartTimePolicy, &from)
		}
		cons, err = m.opts.JS.CreateConsumer(ctx, m.opts.Stream, cfg)
	}
	if err != nil {
		m.log.Warn("drift: events consumer lost; retrying", "durable", m.opts.Durable, "err", err)
		return false
	}
	m.cc.Stop()
	if err := m.consumeLocked(cons); err != nil {
		m.log.Warn("drift: events consumer lost; retrying", "durable", m.opts.Durable, "err", err)
		return false
	}
	m.log.Info("drift: events consumer resumed", "durable", m.opts.Durable)
	return true
}

// handle applies every event of one message (a frame, or a single event
// written before frames) and acknowledges it. A message that is not events
// is terminated so that it is never redelivered; of a damaged frame the
// events before the damage are applied.
func (m *Monitor) handle(msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		m.log.Warn("drift: dropping message without JetStream metadata", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		return
	}
	notEvent := false
	err = m.opts.Decoded.Each(md.Sequence.Stream, msg.Headers(), msg.Data(), func(_ int, ev *monitor.Event, raw []byte, err error) {
		if err != nil {
			if len(raw) == len(msg.Data()) {
				notEvent = true // a single message that is not an event
				return
			}
			m.log.Warn("drift: skipping an undecodable event in a frame", "subject", msg.Subject(), "err", err)
			return
		}
		if ev.TS.IsZero() {
			ev.TS = md.Timestamp
		}
		m.Apply(ev)
	})
	if err != nil || notEvent {
		m.log.Warn("drift: dropping message that is not events", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		return
	}
	if err := msg.Ack(); err != nil {
		m.log.Debug("drift: ack", "err", err)
	}
	m.lastMsg.Store(md.Timestamp.UnixNano())
}
