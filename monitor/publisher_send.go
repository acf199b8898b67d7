// The Publisher's send path: the send loop that frames queued events by
// route, direct publishes to JetStream, and the in-flight set that acks and
// publish errors settle.

package monitor

import (
	"bytes"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/monitor/event"
)

type inflightMsg struct {
	msg    *nats.Msg
	sent   time.Time
	events int
}

// frameBuilder fills one route's frame in the send loop.
type frameBuilder struct {
	subject string
	buf     []byte
	count   int
}

// sendBatchMax bounds the events the send loop frames at once.
const sendBatchMax = 4096

// sendLoop takes events off the queue in batches and either publishes them
// as frames (NATS up, spool empty, so order is kept) or appends the frames to
// the spool. Having taken an event it lingers up to FrameLinger for more to
// fill frames. The events that come meanwhile wait in the queue rather than
// being taken one by one: that would wake this goroutine on every request, a
// goroutine switch per inference. Half a queue ends the linger early.
func (p *Publisher) sendLoop() {
	defer close(p.drained)
	batch := make([]*Event, 0, sendBatchMax)
	recs := make([]spoolRecord, 0, 64)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for {
		batch = batch[:0]
		select {
		case ev := <-p.q:
			batch = append(batch, ev)
		case <-p.stop:
			// Take what is left and finish.
			for {
				batch = p.takeQueued(batch)
				if len(batch) < sendBatchMax {
					break
				}
				recs = p.send(batch, recs)
				clear(batch)
				batch = batch[:0]
			}
			p.send(batch, recs)
			return
		}
		p.batching.Store(1)
		if p.opts.FrameLinger > 0 && len(p.q) < p.fullAt {
			linger.Reset(p.opts.FrameLinger)
			select {
			case <-linger.C:
			case <-p.full:
			case <-p.stop: // the loop's next turn takes the rest
			}
			linger.Stop()
		}
		batch = p.takeQueued(batch)
		p.batching.Store(int64(len(batch)))
		recs = p.send(batch, recs)
		// The slice's array outlives the batch: let go of its events, or
		// an idle gateway keeps its largest burst alive.
		clear(batch)
		p.batching.Store(0)
	}
}

// takeQueued appends what the queue holds to batch, up to sendBatchMax
// events, without waiting.
func (p *Publisher) takeQueued(batch []*Event) []*Event {
	for len(batch) < sendBatchMax {
		select {
		case ev := <-p.q:
			batch = append(batch, ev)
		default:
			return batch
		}
	}
	return batch
}

// send frames one batch, per route in arrival order, and publishes or
// spools the frames; recs is scratch space returned for reuse.
func (p *Publisher) send(batch []*Event, recs []spoolRecord) []spoolRecord {
	recs = recs[:0]
	// A frame must fit the server's max payload, or NATS refuses it for good.
	frameMax := p.opts.FrameMaxBytes
	if mp := int(p.nc.MaxPayload()); mp > headerRoom && mp-headerRoom < frameMax {
		frameMax = mp - headerRoom
	}
	for _, ev := range batch {
		data, err := p.encodeTo(p.scratch, ev)
		if cap(data) <= 1<<20 {
			p.scratch = data[:0] // AppendEvent copies it into the frame
		}
		if err != nil {
			p.log.Error("cannot encode event", "id", ev.ID, "err", err)
			p.drop(1)
			continue
		}
		subj := eventSubject(ev.Route)
		fb := p.frames[subj]
		if fb == nil {
			if len(p.frames) > 1024 { // many routes come and go: do not keep them all
				clear(p.frames)
			}
			fb = &frameBuilder{subject: subj}
			p.frames[subj] = fb
		}
		if fb.count > 0 && (len(fb.buf)+event.EventOverhead+len(data) > frameMax || fb.count >= p.opts.FrameMaxEvents) {
			recs = p.finishFrame(fb, recs)
		}
		if fb.count == 0 {
			fb.buf = event.NewFrame(fb.buf)
			p.frameOrder = append(p.frameOrder, fb)
		}
		fb.buf = event.AppendEvent(fb.buf, data)
		fb.count++
	}
	for _, fb := range p.frameOrder {
		if fb.count > 0 {
			recs = p.finishFrame(fb, recs)
		}
	}
	clear(p.frameOrder)
	p.frameOrder = p.frameOrder[:0]

	direct := p.streamReady.Load() && p.nc.Status() == nats.CONNECTED && p.spool.empty()
	spoolFrom := len(recs)
	for i, r := range recs {
		if !direct {
			spoolFrom = i
			break
		}
		err := p.publishDirect(r)
		if err == nil {
			continue
		}
		if permanent(err) {
			p.deadLetter(r, err)
			continue
		}
		// Stalled or disconnected: keep order by spooling the rest too.
		direct = false
		spoolFrom = i
		break
	}
	p.spoolRecords(recs[spoolFrom:])
	clear(recs)
	return recs[:0]
}

// finishFrame closes fb's frame into a record of its own (exact-size
// memory: it may wait in flight for a while) with a new frame ID.
func (p *Publisher) finishFrame(fb *frameBuilder, recs []spoolRecord) []spoolRecord {
	recs = append(recs, spoolRecord{subject: fb.subject, id: NewID(), data: bytes.Clone(fb.buf)})
	fb.count = 0
	if cap(fb.buf) > 4*p.opts.FrameMaxBytes {
		fb.buf = nil // one huge event: do not keep its buffer
	}
	return recs
}

// msgHeader is the header of a frame message: its ID (JetStream
// de-duplicates a re-sent frame by it) and the frame marker, for a frame.
func msgHeader(r spoolRecord) nats.Header {
	h := nats.Header{jetstream.MsgIDHeader: []string{r.id}}
	if event.IsFrame(r.data) {
		h[event.HeaderFrame] = []string{event.FrameVersionValue}
	}
	return h
}

func (p *Publisher) publishDirect(r spoolRecord) error {
	// The header is set here rather than with jetstream.WithMsgID: same
	// header, without the per-call option processing.
	msg := &nats.Msg{Subject: r.subject, Data: r.data, Header: msgHeader(r)}
	n := r.events()
	p.inflightMu.Lock()
	p.inflight[r.id] = inflightMsg{msg: msg, sent: time.Now(), events: n}
	p.inflightEvents += n
	p.inflightMu.Unlock()
	_, err := p.js.PublishMsgAsync(msg)
	// At MaxPending the call stalls briefly, then fails. That is back
	// pressure on this goroutine, not an outage: wait for room (the queue
	// absorbs the delay), but only within the at-least-once window: past
	// it the rest goes to the spool rather than pile up in memory.
	for deadline := time.Now().Add(p.opts.SpillAfter); errors.Is(err, jetstream.ErrTooManyStalledMsgs) &&
		time.Now().Before(deadline) && p.nc.Status() == nats.CONNECTED; {
		_, err = p.js.PublishMsgAsync(msg)
	}
	if err != nil {
		p.inflightMu.Lock()
		if _, ok := p.inflight[r.id]; ok {
			delete(p.inflight, r.id)
			p.inflightEvents -= n
		}
		p.inflightMu.Unlock()
		return err
	}
	return nil
}

// inflightLen is how many events are in frames sent and not yet acked nor
// spooled.
func (p *Publisher) inflightLen() int {
	p.inflightMu.Lock()
	defer p.inflightMu.Unlock()
	return p.inflightEvents
}

// onAck runs on the NATS client's goroutine for each acked direct publish.
func (p *Publisher) onAck(_ jetstream.JetStream, msg *nats.Msg, _ *jetstream.PubAck) {
	if n, ok := p.forget(msg); ok {
		p.published.Add(float64(n))
	}
}

// onPubErr runs for a direct publish that failed or timed out: its fate is
// unknown, so it goes to the spool and de-duplication sorts out a double.
func (p *Publisher) onPubErr(_ jetstream.JetStream, msg *nats.Msg, err error) {
	if _, ok := p.forget(msg); !ok {
		return
	}
	if permanent(err) {
		p.deadLetter(spoolRecord{subject: msg.Subject, id: msg.Header.Get(jetstream.MsgIDHeader), data: msg.Data}, err)
		return
	}
	p.log.Debug("event publish failed; spooling", "subject", msg.Subject, "err", err)
	p.spoolRecords([]spoolRecord{{subject: msg.Subject, id: msg.Header.Get(jetstream.MsgIDHeader), data: msg.Data}})
}

// forget removes msg from the in-flight set and says how many events it
// carried; false means it was spooled already (by the spiller or Close),
// which then owns it.
func (p *Publisher) forget(msg *nats.Msg) (int, bool) {
	id := msg.Header.Get(jetstream.MsgIDHeader)
	p.inflightMu.Lock()
	defer p.inflightMu.Unlock()
	m, ok := p.inflight[id]
	if !ok || p.inflightClosed {
		return 0, false
	}
	delete(p.inflight, id)
	p.inflightEvents -= m.events
	return m.events, true
}
