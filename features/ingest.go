package features

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/internal/weirerr"
)

// Stats are one feature set's ingestion counters in this process since it
// started (the Prometheus counters carry the same numbers).
type Stats struct {
	Set string `json:"set"`
	// Accepted events were published to WEIR_INGEST by Ingest or Backfill.
	Accepted int64 `json:"accepted"`
	// Applied events were folded into aggregates by this process.
	Applied int64 `json:"applied"`
	// Duplicates were redeliveries already applied before (skipped).
	Duplicates int64 `json:"duplicates"`
	// Late events were older than a window relative to the entity's newest
	// event, for at least one aggregation (that aggregation skipped them).
	Late int64 `json:"late"`
	// Rejected counts malformed events by reason.
	Rejected   map[string]int64 `json:"rejected"`
	LastErrors []EventError     `json:"last_errors"`
}

// EventError is one rejected event.
type EventError struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
	Error  string    `json:"error"`
	// Seq is the event's WEIR_INGEST sequence (0 when rejected before publishing).
	Seq uint64 `json:"seq,omitempty"`
}

const keepErrors = 10

type setStats struct {
	mu sync.Mutex
	st Stats
}

func (s *Store) statsFor(set string) *setStats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	ss := s.stats[set]
	if ss == nil {
		ss = &setStats{st: Stats{Set: set, Rejected: map[string]int64{}}}
		s.stats[set] = ss
	}
	return ss
}

// Stats returns a copy of a feature set's counters and last errors.
func (s *Store) Stats(set string) Stats {
	ss := s.statsFor(set)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	out := ss.st
	out.Rejected = make(map[string]int64, len(ss.st.Rejected))
	for k, v := range ss.st.Rejected {
		out.Rejected[k] = v
	}
	out.LastErrors = append([]EventError(nil), ss.st.LastErrors...)
	return out
}

func (s *Store) countReject(set string, e *eventError, seq uint64) {
	s.m.rejected.WithLabelValues(set, e.reason).Inc()
	ss := s.statsFor(set)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.st.Rejected[e.reason]++
	ss.st.LastErrors = append(ss.st.LastErrors, EventError{At: time.Now().UTC(), Reason: e.reason, Error: e.msg, Seq: seq})
	if n := len(ss.st.LastErrors); n > keepErrors {
		ss.st.LastErrors = append(ss.st.LastErrors[:0], ss.st.LastErrors[n-keepErrors:]...)
	}
}

func (s *Store) count(set string, f func(*Stats)) {
	ss := s.statsFor(set)
	ss.mu.Lock()
	f(&ss.st)
	ss.mu.Unlock()
}

// Ingest validates raw events for a feature set and publishes the valid ones
// to weir.ingest.<set> (POST /v1/featuresets/{name}/ingest). body is a JSON
// array of objects, one object, or objects one per line. Valid events go out
// in batches whose message id is a hash of their content, so a retried
// request (the same body within the stream's 2-minute duplicate window) is
// stored once; two identical bodies sent on purpose within that window count
// once too, so give events an id or a timestamp. Rejected events are counted
// with their reason and reported by Stats; they do not fail the call.
func (s *Store) Ingest(ctx context.Context, set string, body []byte) (accepted, rejected int, err error) {
	raws, err := splitEvents(body)
	if err != nil {
		return 0, 0, err
	}
	return s.ingestRaw(ctx, set, raws, "")
}

// IngestEvents is Ingest for events already decoded.
func (s *Store) IngestEvents(ctx context.Context, set string, events []map[string]any) (accepted, rejected int, err error) {
	raws := make([][]byte, len(events))
	for i, ev := range events {
		if raws[i], err = json.Marshal(ev); err != nil {
			return 0, 0, weirerr.Invalidf("event %d cannot be encoded as JSON: %w", i, err)
		}
	}
	return s.ingestRaw(ctx, set, raws, "")
}

// splitEvents cuts a request body into event objects.
func splitEvents(body []byte) ([][]byte, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, weirerr.Invalidf("ingest body is empty: expected a JSON array of event objects")
	}
	if body[0] == '[' {
		out, err := splitArray(body)
		if err != nil {
			return nil, weirerr.Invalidf("ingest body is not a JSON array of events: %w", err)
		}
		return out, nil
	}
	var out [][]byte
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		var r json.RawMessage
		err := dec.Decode(&r)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, weirerr.Invalidf("ingest body is not JSON (an array, an object, or one object per line): %w", err)
		}
		out = append(out, r)
	}
}

// ingestRaw validates and publishes; idPrefix, when set, replaces the
// content-derived message id scheme (Backfill numbers its rows).
func (s *Store) ingestRaw(ctx context.Context, set string, raws [][]byte, idPrefix string) (accepted, rejected int, err error) {
	fs := s.set(set)
	if fs == nil {
		if err := validateSetName(set); err != nil {
			return 0, 0, err
		}
		if fs, err = s.GetSet(ctx, set); err != nil {
			return 0, 0, err
		}
	}
	subject := SubjectIngestPrefix + set
	now := time.Now()
	var futures []jetstream.PubAckFuture
	wait := func() error {
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return weirerr.Unavailablef("publish events for feature set %q: %w", set, err)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		futures = futures[:0]
		return nil
	}
	// Valid events go out in batches (one JSON array per message): a stream
	// message costs far more than decoding an event, and the aggregator
	// de-duplicates per (message, index).
	var (
		chunk   []byte
		inChunk int
		chunkNo int
	)
	send := func() error {
		if inChunk == 0 {
			return nil
		}
		chunk = append(chunk, ']')
		f, err := s.o.JS.PublishAsync(subject, chunk, jetstream.WithMsgID(msgID(set, chunk, idPrefix, chunkNo)))
		if err != nil {
			return weirerr.Unavailablef("publish events for feature set %q: %w", set, err)
		}
		futures = append(futures, f)
		chunk, inChunk = nil, 0
		chunkNo++
		if len(futures) >= 64 {
			return wait()
		}
		return nil
	}
	for _, raw := range raws {
		ev, e := decodeEvent(raw)
		if e == nil {
			_, e = prepare(fs, ev, now)
		}
		if e != nil {
			rejected++
			s.countReject(set, e, 0)
			continue
		}
		if inChunk == 0 {
			chunk = append(make([]byte, 0, 64<<10), '[')
		} else {
			chunk = append(chunk, ',')
		}
		chunk = append(chunk, bytes.TrimSpace(raw)...)
		inChunk++
		accepted++
		if inChunk >= maxChunkEvents || len(chunk) >= maxChunkBytes {
			if err := send(); err != nil {
				return accepted, rejected, err
			}
		}
	}
	if err := send(); err != nil {
		return accepted, rejected, err
	}
	if err := wait(); err != nil {
		return accepted, rejected, err
	}
	s.count(set, func(st *Stats) { st.Accepted += int64(accepted) })
	return accepted, rejected, nil
}

// Bounds of one ingest message.
const (
	maxChunkEvents = 1000
	maxChunkBytes  = 512 << 10 // well under the 1 MiB default max_payload of an external NATS
)

// msgID is the de-duplication id of one batch: its content hash, so a
// retried request (cut into the same batches) is stored once. Backfill adds
// its own prefix and the batch number.
func msgID(set string, chunk []byte, prefix string, n int) string {
	sum := sha256.Sum256(chunk)
	if prefix != "" {
		return fmt.Sprintf("%s:%s:%d:%s", set, prefix, n, hex.EncodeToString(sum[:12]))
	}
	return set + ":h:" + hex.EncodeToString(sum[:16])
}
