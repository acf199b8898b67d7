// The Publisher's stream: the WEIR_EVENTS configuration it applies, and
// creating or resizing the stream to what NATS can store.

package monitor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrStreamNoRoom means NATS refused to reserve storage for WEIR_EVENTS:
// free disk where NATS stores (the data dir) or ask for a smaller stream.
var ErrStreamNoRoom = errors.New("NATS has too little storage for the events stream")

// minAutoStreamBytes is the smallest WEIR_EVENTS an automatic size goes to.
const minAutoStreamBytes = 8 << 20

// StreamConfig is the WEIR_EVENTS configuration the publisher applies.
func (p *Publisher) streamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:       StreamEvents,
		Subjects:   []string{SubjectEventsPrefix + ">"},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		Discard:    jetstream.DiscardOld,
		MaxAge:     p.opts.StreamMaxAge,
		MaxBytes:   p.opts.StreamMaxBytes,
		Duplicates: p.opts.DedupWindow,
		Replicas:   p.opts.Replicas,
	}
}

// ensureStream creates or updates WEIR_EVENTS. When NATS cannot reserve
// the size asked for, an automatic size is halved until it fits (with a
// warning); otherwise the error wraps ErrStreamNoRoom.
func (p *Publisher) ensureStream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cfg := p.streamConfig()
	for {
		_, err := p.js.CreateOrUpdateStream(ctx, cfg)
		if err == nil {
			break
		}
		if !isNoStorage(err) {
			return fmt.Errorf("create stream %s: %w", StreamEvents, err)
		}
		if !p.opts.streamAutoSize || cfg.MaxBytes/2 < minAutoStreamBytes {
			return fmt.Errorf("create stream %s of %d bytes: %w (NATS: %w)", StreamEvents, cfg.MaxBytes, ErrStreamNoRoom, err)
		}
		cfg.MaxBytes /= 2
	}
	if cfg.MaxBytes < p.opts.StreamMaxBytes {
		p.log.Warn("events stream made smaller than asked: NATS has too little storage; free disk where NATS stores or set the size explicitly",
			"stream", StreamEvents, "max_bytes", cfg.MaxBytes, "wanted", p.opts.StreamMaxBytes)
	}
	p.streamBytes.Store(cfg.MaxBytes)
	p.streamReady.Store(true)
	return nil
}

// isNoStorage recognises JetStream's "insufficient storage resources
// available" (10047).
func isNoStorage(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == 10047
}

// StreamMaxBytes is the size WEIR_EVENTS was created with (0 until it
// exists): the asked size, or less when NATS had too little storage.
func (p *Publisher) StreamMaxBytes() int64 { return p.streamBytes.Load() }
