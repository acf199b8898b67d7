package monitor

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/monitor/event"
)

// headerRoom is what a message's subject and headers may take on top of the
// event: the event cap stays this far under the server's max payload.
const headerRoom = 4 << 10

// encode fills and encodes ev, truncating it to the event cap. One big
// predict (500k rows) must not make an event NATS refuses: it would sit at
// the head of the spool and block every event behind it.
func (p *Publisher) encode(ev *Event) ([]byte, error) { return p.encodeTo(nil, ev) }

// encodeTo is encode writing into buf[:0] (the result may alias buf).
func (p *Publisher) encodeTo(buf []byte, ev *Event) ([]byte, error) {
	fillEvent(ev)
	data, err := appendEventJSON(buf[:0], ev)
	if err != nil {
		// json.Marshal names what cannot be encoded (a NaN output, say).
		if data, err = json.Marshal(ev); err != nil {
			return nil, err
		}
	}
	limit := p.opts.MaxEventBytes
	if mp := int(p.nc.MaxPayload()); mp > headerRoom && mp-headerRoom < limit {
		limit = mp - headerRoom
	}
	if len(data) <= limit {
		return data, nil
	}
	p.truncated.Inc()
	return truncateEvent(ev, limit)
}

// truncateEvent re-encodes ev under limit bytes, marked Truncated: first by
// keeping fewer rows of each per-row feature and output (1000, 100, 10, 1),
// then without features and outputs at all.
func truncateEvent(ev *Event, limit int) ([]byte, error) {
	ev.Truncated = true
	feats, outs := ev.Features, ev.Outputs
	for keep := 1000; keep >= 1; keep /= 10 {
		ev.Features, ev.Outputs = keepRows(feats, keep), keepRows(outs, keep)
		data, err := json.Marshal(ev)
		if err != nil || len(data) <= limit {
			return data, err
		}
	}
	ev.Features, ev.Outputs = map[string]any{}, map[string]any{}
	if len(ev.Error) > 1024 {
		ev.Error = ev.Error[:1024]
	}
	data, err := json.Marshal(ev)
	if err == nil && len(data) > limit {
		err = fmt.Errorf("event is %d bytes even without features and outputs, over the cap of %d", len(data), limit)
	}
	return data, err
}

// keepRows copies m with every list value cut to its first keep elements.
func keepRows(m map[string]any, keep int) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if rows, ok := v.([]any); ok && len(rows) > keep {
			v = rows[:keep]
		}
		out[k] = v
	}
	return out
}

// DeadLetterFile, in the spool directory, holds events NATS refused for
// good, one JSON object a line: {"ts","subject","id","reason","bytes","event"}.
const DeadLetterFile = "dead-letter.jsonl"

// deadLetterMaxBytes bounds the dead-letter file; past it only the line
// without the event is written.
const deadLetterMaxBytes = 64 << 20

// permanent reports whether NATS refused a message for good, so that
// sending it again can never succeed.
func permanent(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, nats.ErrMaxPayload) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum
}

// deadLetter records a refused message in the dead-letter file (mode 0600:
// events hold request features), one line per event of a frame, and counts
// its events.
func (p *Publisher) deadLetter(r spoolRecord, reason error) {
	n := r.events()
	p.deadLettered.Add(float64(n))
	p.log.Error("NATS refused events for good: written to the dead-letter file",
		"id", r.id, "subject", r.subject, "events", n, "bytes", len(r.data), "err", reason,
		"file", filepath.Join(p.opts.SpoolDir, DeadLetterFile))
	p.deadLetterMu.Lock()
	defer p.deadLetterMu.Unlock()
	if !event.IsFrame(r.data) {
		p.deadLetterLocked(r.subject, r.id, r.data, reason)
		return
	}
	err := event.Each(event.FrameVersionValue, r.data, func(_ int, ev []byte) error {
		var id struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(ev, &id)
		p.deadLetterLocked(r.subject, id.ID, ev, reason)
		return nil
	})
	if err != nil {
		p.deadLetterLocked(r.subject, r.id, nil, fmt.Errorf("%w (and the frame is damaged: %w)", reason, err))
	}
}

// deadLetterLocked appends one event's line; the caller holds deadLetterMu.
func (p *Publisher) deadLetterLocked(subject, id string, data []byte, reason error) {
	rec := struct {
		TS      time.Time       `json:"ts"`
		Subject string          `json:"subject"`
		ID      string          `json:"id"`
		Reason  string          `json:"reason"`
		Bytes   int             `json:"bytes"`
		Event   json.RawMessage `json:"event,omitempty"`
	}{time.Now().UTC(), subject, id, reason.Error(), len(data), nil}
	path := filepath.Join(p.opts.SpoolDir, DeadLetterFile)
	var size int64
	if fi, err := os.Stat(path); err == nil {
		size = fi.Size()
	}
	if size+int64(len(data)) < deadLetterMaxBytes && json.Valid(data) {
		rec.Event = data
	}
	line, err := json.Marshal(rec)
	if err != nil {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		p.log.Error("cannot write the dead-letter file", "err", err)
		return
	}
	defer f.Close()
	if _, err := f.Write(append(line, '\n')); err != nil {
		p.log.Error("cannot write the dead-letter file", "err", err)
	}
}
