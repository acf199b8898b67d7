package monitor

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/monitor/event"
)

// Durability names: what an answered request's event is guaranteed to
// survive (docs/rationale.md, "Strict event durability").
const (
	// DurabilityBestEffort never holds a request for its event: a process
	// crash loses at most the events in memory (the queue, and frames sent
	// but neither acknowledged nor spooled within SpillAfter); a machine
	// crash also what was spooled in the last second (not yet fsynced).
	DurabilityBestEffort = "best-effort"
	// DurabilityStrict answers a request only once its event is fsynced to
	// the spool (group commit: one fsync for every event that arrived
	// meanwhile); the spool then sends it to JetStream.
	DurabilityStrict = "strict"
)

// ErrNotDurable means an event could not be made durable in strict mode:
// its request must fail rather than answer without a record. PublishDurable
// wraps it in a weirerr Unavailable (503) naming the cause.
var ErrNotDurable = errors.New("event not durable")

// notDurable is a request's error for an event that is not durable: 503,
// wrapping ErrNotDurable and the cause.
func notDurable(format string, args ...any) error {
	return weirerr.Unavailablef("%w", fmt.Errorf("%w: "+format, append([]any{ErrNotDurable}, args...)...))
}

// commitReq is one event awaiting its group commit.
type commitReq struct {
	ev   *Event
	done chan error
}

// commitQueue is the room for events awaiting a commit: none unless strict.
func commitQueue(o PublisherOptions) int {
	if o.Durability != DurabilityStrict {
		return 0
	}
	return o.QueueSize
}

// commitMax bounds the events of one group commit.
const commitMax = 4096

// PublishDurable hands ev to the publisher like Publish, and in strict
// durability waits until it is fsynced to the spool. The error (wrapping
// ErrNotDurable, or ctx's) says the event may be lost: the caller must not
// answer as if it were recorded. In best-effort durability it is Publish.
func (p *Publisher) PublishDurable(ctx context.Context, ev *Event) error {
	if p.opts.Durability != DurabilityStrict {
		p.Publish(ev)
		return nil
	}
	if p.closed.Load() {
		p.drop(1)
		return notDurable("the event publisher is shutting down")
	}
	r := commitReq{ev: ev, done: make(chan error, 1)}
	select {
	case p.commits <- r:
	case <-p.stop:
		p.drop(1)
		return notDurable("the event publisher is shutting down")
	case <-ctx.Done():
		p.drop(1)
		return notDurable("the spool did not take it in time (--events-durability strict): %w", ctx.Err())
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		// Still committed later, most likely; the caller cannot know.
		return notDurable("the spool did not sync it in time (--events-durability strict): %w", ctx.Err())
	}
}

// commitLoop writes the events of PublishDurable to the spool, as many as
// have arrived per write, with one fsync per write, and wakes their
// callers. The replayer sends them to JetStream from there, in order.
func (p *Publisher) commitLoop() {
	defer close(p.commitDone)
	batch := make([]commitReq, 0, commitMax)
	for {
		batch = batch[:0]
		select {
		case r := <-p.commits:
			batch = append(batch, r)
		case <-p.stop:
			for { // commit what was handed over before Close
				batch = p.takeCommits(batch[:0])
				if len(batch) == 0 {
					return
				}
				p.commit(batch)
			}
		}
		p.commit(p.takeCommits(batch))
	}
}

func (p *Publisher) takeCommits(batch []commitReq) []commitReq {
	for len(batch) < commitMax {
		select {
		case r := <-p.commits:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// commit is one group commit: each event a frame of its own (a record the
// replayer sends as one message), appended and fsynced at once.
func (p *Publisher) commit(batch []commitReq) {
	recs := make([]spoolRecord, 0, len(batch))
	reqs := make([]commitReq, 0, len(batch))
	for _, r := range batch {
		data, err := p.encode(r.ev)
		if err != nil {
			p.log.Error("cannot encode event", "id", r.ev.ID, "err", err)
			p.drop(1)
			r.done <- fmt.Errorf("%w: encode: %w", ErrNotDurable, err)
			continue
		}
		frame := event.AppendEvent(event.NewFrame(make([]byte, 0, event.FrameHeaderLen+event.EventOverhead+len(data))), data)
		recs = append(recs, spoolRecord{subject: eventSubject(r.ev.Route), id: NewID(), data: frame})
		reqs = append(reqs, r)
	}
	n, err := p.spool.appendSynced(recs)
	if n > 0 {
		p.spooled.Add(float64(n))
		p.nudge()
	}
	p.noteSpoolWrite(n, recs, err)
	for i, r := range reqs {
		if i < n {
			r.done <- nil
			continue
		}
		r.done <- notDurable("spool %s: %w", p.opts.SpoolDir, err)
	}
}

// appendSynced appends recs and fsyncs what it wrote (and the directory,
// when a new segment file was created) before it returns. On a sync failure
// nothing counts as written.
func (s *spool) appendSynced(recs []spoolRecord) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	segs := len(s.segs)
	n, err := s.appendLocked(recs)
	if n == 0 {
		return 0, err
	}
	if s.w != nil && s.dirty {
		if serr := s.w.Sync(); serr != nil {
			return 0, fmt.Errorf("sync event spool: %w", serr)
		}
		s.dirty = false
	}
	if len(s.segs) != segs {
		if serr := syncDir(s.dir); serr != nil {
			return 0, serr
		}
	}
	return n, err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync event spool dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync event spool dir: %w", err)
	}
	return nil
}
