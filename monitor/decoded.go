package monitor

import (
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
)

// Decoded shares the decoding of WEIR_EVENTS messages among the consumers
// of one process. Stats, drift and the archive each keep their own consumer
// (they need different deliveries, docs/rationale.md), but they receive the
// same frames at about the same time, and decoding every event's JSON once
// per consumer was the event pipeline's largest cost: the first consumer to
// meet a message decodes it, the others take the decoded events. Entries
// are dropped once every reader has taken them, and the oldest beyond a
// small bound are dropped anyway (a reader far behind, or a message only
// some readers see, decodes it again), so memory stays small. A nil
// *Decoded decodes every time.
type Decoded struct {
	readers int
	max     int

	mu    sync.Mutex
	msgs  map[uint64]*decodedMsg
	order []uint64 // insertion order, for the bound

	decodes atomic.Int64 // messages decoded (tests)
}

type decodedMsg struct {
	ready chan struct{}
	evs   []decodedEvent
	err   error // the frame's damage (events before it are in evs)
	taken int
}

type decodedEvent struct {
	ev  Event
	raw []byte // aliases the message body
	err error  // not an event: ev is zero
}

// NewDecoded shares decoding among readers consumers (entries go once each
// has taken them), keeping at most maxMsgs decoded messages.
func NewDecoded(readers, maxMsgs int) *Decoded {
	return &Decoded{readers: max(readers, 1), max: max(maxMsgs, 1), msgs: make(map[uint64]*decodedMsg)}
}

// Each calls fn with a copy of each event of stream message seq (header h,
// body data) in order; raw is the event's JSON, and err says it is not an
// event (ev is then zero). The events' maps are shared with the other
// readers: fn must not modify them. The returned error is the frame's
// damage, as for EachEvent.
func (d *Decoded) Each(seq uint64, h nats.Header, data []byte, fn func(i int, ev *Event, raw []byte, err error)) error {
	var dm *decodedMsg
	if d != nil {
		dm = d.take(seq, h, data)
	} else {
		dm = decodeMsg(h, data)
	}
	for i := range dm.evs {
		e := dm.evs[i]
		fn(i, &e.ev, e.raw, e.err)
	}
	return dm.err
}

func (d *Decoded) take(seq uint64, h nats.Header, data []byte) *decodedMsg {
	d.mu.Lock()
	dm := d.msgs[seq]
	if dm != nil {
		dm.taken++
		if dm.taken >= d.readers {
			delete(d.msgs, seq)
		}
		d.mu.Unlock()
		<-dm.ready
		return dm
	}
	dm = &decodedMsg{ready: make(chan struct{}), taken: 1}
	if d.readers > 1 {
		d.msgs[seq] = dm
		d.order = append(d.order, seq)
		for len(d.msgs) > d.max {
			delete(d.msgs, d.order[0])
			d.order = d.order[1:]
		}
		if len(d.order) > 4*d.max { // taken entries leave holes in order
			d.compactLocked()
		}
	}
	d.mu.Unlock()
	d.decodes.Add(1)
	full := decodeMsg(h, data)
	dm.evs, dm.err = full.evs, full.err
	close(dm.ready)
	return dm
}

// compactLocked drops from order the sequences no longer held.
func (d *Decoded) compactLocked() {
	kept := d.order[:0]
	for _, s := range d.order {
		if _, ok := d.msgs[s]; ok {
			kept = append(kept, s)
		}
	}
	d.order = append([]uint64(nil), kept...)
}

func decodeMsg(h nats.Header, data []byte) *decodedMsg {
	dm := &decodedMsg{evs: make([]decodedEvent, 0, 1)}
	dm.err = EachEvent(h, data, func(_ int, raw []byte) error {
		de := decodedEvent{raw: raw}
		if err := decodeEvent(raw, &de.ev); err != nil {
			de.ev, de.err = Event{}, err
		}
		dm.evs = append(dm.evs, de)
		return nil
	})
	return dm
}
