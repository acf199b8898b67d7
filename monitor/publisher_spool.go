// The Publisher's use of the spool: writing frames to it (when NATS is down
// or the spool is not empty), spilling frames whose ack is overdue, and
// replaying spooled frames to JetStream oldest first. The spool's file format
// is spool.go; strict durability's group commit is durable.go.

package monitor

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func (p *Publisher) spoolRecords(recs []spoolRecord) {
	if len(recs) == 0 {
		return
	}
	p.spool.mu.Lock()
	n, err := p.spool.appendLocked(recs)
	p.spool.mu.Unlock()
	if n > 0 {
		p.spooled.Add(float64(eventsIn(recs[:n])))
		p.nudge()
	}
	p.noteSpoolWrite(n, recs, err)
}

// noteSpoolWrite counts what a spool write could not keep and logs the
// spool's state once per change (failing, writable again), never per batch.
func (p *Publisher) noteSpoolWrite(n int, recs []spoolRecord, err error) {
	if n < len(recs) {
		if !errors.Is(err, errSpoolFull) && p.spoolFailing.CompareAndSwap(false, true) {
			p.log.Error("event spool write failed; events are dropped and counted until it works again",
				"dir", p.opts.SpoolDir, "err", err)
		}
		p.drop(eventsIn(recs[n:]))
		return
	}
	if p.spoolFailing.CompareAndSwap(true, false) {
		p.log.Info("event spool writable again", "dir", p.opts.SpoolDir)
	}
}

// spillLoop writes events whose ack is overdue (SpillAfter) to the spool, so
// that a crash while NATS is slow cannot lose them.
func (p *Publisher) spillLoop() {
	defer close(p.spillDone)
	tick := time.NewTicker(max(p.opts.SpillAfter/2, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
			p.spill(time.Now().Add(-p.opts.SpillAfter))
		}
	}
}

// spill spools the in-flight events sent before cutoff, oldest first. It
// takes them out of the in-flight set before writing, so that an ack
// arriving meanwhile is ignored: the spooled copy is re-sent,
// de-duplicated, and counted as published once, when the re-send is acked.
// (Leaving them in flight until written let such an ack count them, and the
// re-send count them again.) What the spool cannot keep goes back in flight.
func (p *Publisher) spill(cutoff time.Time) {
	p.inflightMu.Lock()
	if p.inflightClosed {
		p.inflightMu.Unlock()
		return
	}
	var old []inflightMsg
	for id, m := range p.inflight {
		if m.sent.Before(cutoff) {
			old = append(old, m)
			delete(p.inflight, id)
			p.inflightEvents -= m.events
		}
	}
	p.inflightMu.Unlock()
	if len(old) == 0 {
		return
	}
	sort.Slice(old, func(i, j int) bool { return old[i].sent.Before(old[j].sent) })
	recs := make([]spoolRecord, len(old))
	for i, m := range old {
		recs[i] = spoolRecord{subject: m.msg.Subject, id: m.msg.Header.Get(jetstream.MsgIDHeader), data: m.msg.Data}
	}
	p.spool.mu.Lock()
	n, err := p.spool.appendLocked(recs)
	p.spool.mu.Unlock()
	if n < len(recs) {
		if !errors.Is(err, errSpoolFull) && p.spoolFailing.CompareAndSwap(false, true) {
			p.log.Error("event spool write failed; events awaiting an ack stay in memory only",
				"dir", p.opts.SpoolDir, "err", err)
		}
		// Close waits for this goroutine before it takes what is in
		// flight, so these are not missed.
		p.inflightMu.Lock()
		for i, m := range old[n:] {
			p.inflight[recs[n+i].id] = m
			p.inflightEvents += m.events
		}
		p.inflightMu.Unlock()
	}
	if n == 0 {
		return
	}
	events := eventsIn(recs[:n])
	p.spooled.Add(float64(events))
	p.spilled.Add(float64(events))
	p.nudge()
}

// replayLoop sends spooled events, oldest first, whenever NATS is up.
func (p *Publisher) replayLoop() {
	defer close(p.replayDone)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	lastSync := time.Now()
	var lastStreamWarn time.Time
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		case <-p.wake:
		}
		if time.Since(lastSync) >= spoolSyncEvery {
			lastSync = time.Now()
			if err := p.spool.syncIfDirty(); err != nil {
				p.log.Error("event spool sync failed", "err", err)
			}
		}
		if p.nc.Status() != nats.CONNECTED {
			continue
		}
		if !p.streamReady.Load() {
			if err := p.ensureStream(context.Background()); err != nil {
				if time.Since(lastStreamWarn) >= 30*time.Second {
					lastStreamWarn = time.Now()
					p.log.Warn("events stream still not ready", "err", err)
				}
				continue
			}
		}
		p.replay()
	}
}

// replay sends the spool in batches and commits a batch only when every
// event in it is acked; a failure leaves the batch for the next attempt.
func (p *Publisher) replay() {
	for {
		select {
		case <-p.stop:
			return
		default:
		}
		recs, next, err := p.spool.read(1024, replayMaxBytes)
		if err != nil {
			p.log.Error("event spool read failed", "err", err)
			return
		}
		if len(recs) == 0 {
			return
		}
		// A record NATS refuses for good goes to the dead-letter file
		// rather than holding up every record behind it for ever.
		futures := make([]jetstream.PubAckFuture, 0, len(recs))
		ok, dead := true, 0
		for _, r := range recs {
			f, err := p.rjs.PublishMsgAsync(&nats.Msg{Subject: r.subject, Data: r.data, Header: msgHeader(r)})
			if permanent(err) {
				p.deadLetter(r, err)
				dead += r.events()
				f = nil
			} else if err != nil {
				ok = false
				break
			}
			futures = append(futures, f)
		}
		timeout := time.NewTimer(p.opts.AckTimeout)
		for i, f := range futures {
			if !ok {
				break
			}
			if f == nil {
				continue
			}
			select {
			case <-f.Ok():
			case err := <-f.Err():
				if permanent(err) {
					p.deadLetter(recs[i], err)
					dead += recs[i].events()
					continue
				}
				p.log.Debug("spooled event re-send failed", "err", err)
				ok = false
			case <-timeout.C:
				ok = false
			}
		}
		timeout.Stop()
		if !ok {
			return
		}
		p.spool.commit(next)
		p.published.Add(float64(eventsIn(recs) - dead))
	}
}

// replayMaxBytes bounds one replay batch: spooled frames are up to about
// FrameMaxBytes each.
const replayMaxBytes = 8 << 20
