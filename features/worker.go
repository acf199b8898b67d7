package features

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/internal/natsx"
)

// entityState is one entity's aggregator state for one feature set, stored
// in weir-features-agg under state.<set>.<entity>. Seq is the last
// WEIR_INGEST sequence folded in: a redelivered event with Seq at or below
// it is skipped, which is what makes replay after a crash exactly-once (see
// DESIGN.md).
type entityState struct {
	Def    uint64     `json:"def"`    // feature set revision the aggregates belong to
	Seq    uint64     `json:"seq"`    // last applied stream sequence
	Idx    int        `json:"idx"`    // last applied event within that message
	Latest int64      `json:"latest"` // newest event time, unix ms
	Seen   int64      `json:"seen"`   // newest arrival time, unix ms (for TTL)
	Aggs   []aggState `json:"aggs"`

	rev uint64 // KV revision, 0 = not stored yet
}

// errLost means another process owns the set now.
var errLost = errors.New("aggregator lost ownership of the feature set")

// maxStates bounds the entity states kept in memory between flushes; past
// it, clean states are dropped and reloaded from KV when next touched.
const maxStates = 100_000

// worker aggregates one feature set. Its goroutine owns every field below
// def; stop ends it after a final flush.
type worker struct {
	s    *Store
	name string
	def  atomic.Pointer[FeatureSet]

	cancel context.CancelFunc
	done   chan struct{}

	states    map[string]*entityState
	dirty     map[string]*entityState
	cursor    uint64 // last stream sequence fully flushed
	cursorRev uint64
	lastSeq   uint64 // last stream sequence processed
	pending   int
	lease     *natsx.Lease // the set's aggregator lease (LeaseName)
	applied   int64
	dups      int64
	late      int64
}

func newWorker(s *Store, fs *FeatureSet) *worker {
	w := &worker{s: s, name: fs.Name, done: make(chan struct{})}
	w.def.Store(fs)
	return w
}

func (w *worker) start() {
	ctx, cancel := context.WithCancel(w.s.ctx)
	w.cancel = cancel
	go w.run(ctx)
}

func (w *worker) stop() {
	w.cancel()
	<-w.done
}

func (w *worker) key(kind string) string { return kind + "." + w.name }

// LeaseName is the name of a set's aggregator lease in natsx.LeaseBucket.
func LeaseName(set string) string { return "features." + set }

// leasePoll is how often a worker without the lease looks whether it has
// it now (natsx.Lease tries to take it every natsx.LeaseTTL/3).
const leasePoll = natsx.LeaseTTL / 10

func (w *worker) run(ctx context.Context) {
	defer close(w.done)
	log := w.s.log.With("set", w.name)
	for ctx.Err() == nil && w.lease == nil {
		var err error
		if w.lease, err = natsx.NewLease(ctx, w.s.o.JS, LeaseName(w.name), w.s.o.Owner, log); err != nil {
			if ctx.Err() == nil {
				log.Warn("aggregator lease", "err", err)
			}
			sleep(ctx, leasePoll)
		}
	}
	if w.lease == nil {
		return
	}
	// Closing the lease releases it, so that another replica takes over at
	// its next try rather than when it expires.
	defer func() { _ = w.lease.Close(context.Background()) }()
	for ctx.Err() == nil {
		if w.lease.Held() {
			if err := w.consume(ctx); err != nil && ctx.Err() == nil {
				log.Warn("aggregator stopped, will retry", "err", err)
			}
		}
		sleep(ctx, leasePoll)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// consume reads the set's events in stream order from just after the
// flushed cursor until ctx ends, the lease is lost or KV fails. Memory state
// is dropped on return: the next round reloads it from KV.
func (w *worker) consume(ctx context.Context) (err error) {
	w.states, w.dirty, w.pending = map[string]*entityState{}, map[string]*entityState{}, 0
	w.applied, w.dups, w.late = 0, 0, 0
	defer func() { w.states, w.dirty = nil, nil }()
	if err := w.loadCursor(ctx); err != nil {
		return err
	}
	w.lastSeq = w.cursor
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{SubjectIngestPrefix + w.name}}
	if w.cursor > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = w.cursor + 1
	}
	cons, err := w.s.o.JS.OrderedConsumer(ctx, StreamIngest, cfg)
	if err != nil {
		return fmt.Errorf("ordered consumer on %s: %w", StreamIngest, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(4096))
	if err != nil {
		return fmt.Errorf("consume %s: %w", StreamIngest, err)
	}
	defer it.Stop()
	o := w.s.o
	lastFlush := time.Now()
	for {
		msg, err := it.Next(jetstream.NextMaxWait(o.FlushInterval))
		switch {
		case err == nil:
			w.process(ctx, msg)
		case errors.Is(err, nats.ErrTimeout):
		default:
			return fmt.Errorf("consume %s: %w", StreamIngest, err)
		}
		stopping := ctx.Err() != nil
		if !stopping && !w.lease.Held() {
			// Expired (on the server's clock) or taken: the states and
			// cursor are compare-and-swap, so a late flush would fail
			// anyway; stop before it.
			return errLost
		}
		if w.pending > 0 && (stopping || w.pending >= o.FlushEvents || time.Since(lastFlush) >= o.FlushInterval) {
			fctx := ctx
			if stopping { // the final flush on Close still has to reach KV
				var cancel context.CancelFunc
				fctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
			}
			if err := w.flush(fctx); err != nil {
				return err
			}
			lastFlush = time.Now()
		}
		if stopping {
			return nil
		}
	}
}

type cursorRecord struct {
	Seq uint64 `json:"seq"`
}

func (w *worker) loadCursor(ctx context.Context) error {
	e, err := w.s.aggKV.Get(ctx, w.key("cursor"))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		w.cursor, w.cursorRev = 0, 0
		return nil
	}
	if err != nil {
		return err
	}
	var c cursorRecord
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return fmt.Errorf("decode cursor of %s: %w", w.name, err)
	}
	w.cursor, w.cursorRev = c.Seq, e.Revision()
	return nil
}

// process folds one stream message into the in-memory states. A message is
// one event object, or a JSON array of events (Ingest and Backfill batch
// them); event i of message seq is identified by (seq, i).
func (w *worker) process(ctx context.Context, msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		return
	}
	seq := md.Sequence.Stream
	w.lastSeq = seq
	data := bytes.TrimLeft(msg.Data(), " \t\r\n")
	if len(data) == 0 || data[0] != '[' {
		w.pending++
		ev, e := decodeEvent(data)
		w.apply(ctx, seq, 0, ev, e, md.Timestamp)
		return
	}
	els, err := splitArray(data)
	if err != nil {
		w.pending++
		w.apply(ctx, seq, 0, nil, reject(ReasonBadJSON, "message is not a JSON object or array of objects: %v", err), md.Timestamp)
		return
	}
	for i, el := range els {
		w.pending++
		ev, e := decodeEvent(el)
		w.apply(ctx, seq, i, ev, e, md.Timestamp)
	}
}

// apply folds event idx of message seq into its entity's state, unless the
// state already covers it (a replay).
func (w *worker) apply(ctx context.Context, seq uint64, idx int, ev map[string]any, e *eventError, arrival time.Time) {
	fs := w.def.Load()
	var p *prepared
	if e == nil {
		p, e = prepare(fs, ev, arrival)
	}
	if e != nil {
		w.s.countReject(w.name, e, seq)
		return
	}
	st, err := w.state(ctx, fs, p.entity)
	if err != nil {
		// KV unreachable: leave the event for the flush to fail on, which
		// restarts consumption from the cursor.
		w.dirty[p.entity] = nil
		return
	}
	if seq < st.Seq || seq == st.Seq && idx <= st.Idx {
		w.dups++
		return
	}
	late := false
	for i := range fs.Aggregations {
		if !p.has[i] {
			continue
		}
		a := &fs.Aggregations[i]
		if !st.Aggs[i].add(a.Op, a.width, a.n, st.Latest, p.obs[i]) {
			late = true
		}
	}
	if late {
		w.late++
	}
	st.Seq, st.Idx = seq, idx
	st.Latest = max(st.Latest, p.ts)
	st.Seen = max(st.Seen, arrival.UnixMilli())
	w.dirty[p.entity] = st
	w.applied++
}

func (w *worker) stateKey(entity string) string {
	return "state." + w.name + "." + encodeKey(entity)
}

// state returns the entity's state, loading it from KV on first use and
// starting it afresh when it belongs to an older definition or expired.
func (w *worker) state(ctx context.Context, fs *FeatureSet, entity string) (*entityState, error) {
	st := w.states[entity]
	if st == nil {
		st = &entityState{}
		e, err := w.s.aggKV.Get(ctx, w.stateKey(entity))
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return nil, err
		default:
			if err := json.Unmarshal(e.Value(), st); err != nil {
				w.s.log.Warn("resetting undecodable aggregator state", "set", w.name, "entity", entity, "err", err)
				*st = entityState{}
			}
			st.rev = e.Revision()
		}
		w.states[entity] = st
	}
	expired := fs.ttl > 0 && st.Seen > 0 && time.UnixMilli(st.Seen).Add(fs.ttl).Before(time.Now())
	if st.Def != fs.Revision || len(st.Aggs) != len(fs.Aggregations) || expired {
		// Keep rev and Seq: the KV write is still a compare-and-swap, and
		// replays must still be recognised.
		*st = entityState{Def: fs.Revision, Seq: st.Seq, Idx: st.Idx, rev: st.rev, Aggs: make([]aggState, len(fs.Aggregations))}
	}
	return st, nil
}

// flush writes every dirty entity's features, then its state, then the
// cursor. The order is what makes a crash at any point safe: features are a
// pure function of the state, and a state is only skipped on replay once it
// is stored together with the sequence it covers. Writes within each step are
// pipelined (asynchronous publishes with an expected-revision header), so a
// flush costs a few round trips, not three per entity.
func (w *worker) flush(ctx context.Context) error {
	fs := w.def.Load()
	js := w.s.o.JS
	now := time.Now().UnixMilli()
	type featWrite struct {
		entity, key string
		values      map[string]any
		meta        expMeta
		next        *entry // the cache entry once written
		fut         jetstream.PubAckFuture
	}
	writes := make([]featWrite, 0, len(w.dirty))
	for entity, st := range w.dirty {
		if st == nil {
			return fmt.Errorf("aggregator state of %q could not be loaded", entity)
		}
		fw := featWrite{entity: entity, key: encodeKey(entity), values: make(map[string]any, len(fs.Aggregations))}
		for i := range fs.Aggregations {
			a := &fs.Aggregations[i]
			fw.values[a.Name] = st.Aggs[i].value(a.Op, a.width, a.n, st.Latest)
		}
		if fs.ttl > 0 {
			fw.meta = expMeta{At: st.Seen + fs.ttl.Milliseconds(), Fields: make([]string, len(fs.Aggregations))}
			for i, a := range fs.Aggregations {
				fw.meta.Fields[i] = a.Name
			}
		}
		en, ok := w.s.cache.Get(fw.key)
		if !ok {
			var err error
			if en, err = w.s.load(ctx, fw.key); err != nil {
				return err
			}
		}
		stored, next, err := applyPatch(en, fw.values, w.name, fw.meta, now)
		if err != nil {
			return err
		}
		fw.next = next
		fw.fut, err = js.PublishAsync(SubjectKVPrefix+BucketFeatures+"."+fw.key, stored,
			jetstream.WithExpectLastSequencePerSubject(en.rev))
		if err != nil {
			return fmt.Errorf("write features of %q: %w", entity, err)
		}
		writes = append(writes, fw)
	}
	for _, fw := range writes {
		ack, err := waitAck(ctx, fw.fut)
		if err == nil {
			w.s.m.writes.Inc()
			fw.next.rev = ack.Sequence
			w.s.cachePut(fw.key, fw.next)
			continue
		}
		// Someone else wrote the entity since we read it: merge for real.
		if _, err := w.s.merge(ctx, fw.key, fw.values, w.name, fw.meta); err != nil {
			return err
		}
	}
	type stateWrite struct {
		st  *entityState
		fut jetstream.PubAckFuture
	}
	states := make([]stateWrite, 0, len(w.dirty))
	for entity, st := range w.dirty {
		b, err := json.Marshal(st)
		if err != nil {
			return err
		}
		fut, err := js.PublishAsync(SubjectKVPrefix+BucketAgg+"."+w.stateKey(entity), b,
			jetstream.WithExpectLastSequencePerSubject(st.rev))
		if err != nil {
			return fmt.Errorf("write aggregator state of %q: %w", entity, err)
		}
		states = append(states, stateWrite{st, fut})
	}
	for _, sw := range states {
		ack, err := waitAck(ctx, sw.fut)
		if isConflict(err) {
			return fmt.Errorf("%w: an entity state changed under us", errLost)
		}
		if err != nil {
			return fmt.Errorf("write aggregator state: %w", err)
		}
		sw.st.rev = ack.Sequence
	}
	if w.s.testSkipCursor.Load() {
		// Tests simulate a crash between the state writes and the cursor.
		// The counts tell them the states are written.
		w.countFlushed()
		w.dirty, w.pending = map[string]*entityState{}, 0
		return nil
	}
	b, _ := json.Marshal(cursorRecord{Seq: w.lastSeq})
	var (
		rev uint64
		err error
	)
	if w.cursorRev == 0 {
		rev, err = w.s.aggKV.Create(ctx, w.key("cursor"), b)
	} else {
		rev, err = w.s.aggKV.Update(ctx, w.key("cursor"), b, w.cursorRev)
	}
	if isConflict(err) {
		return fmt.Errorf("%w: cursor moved under us", errLost)
	}
	if err != nil {
		return fmt.Errorf("write cursor of %s: %w", w.name, err)
	}
	w.cursor, w.cursorRev = w.lastSeq, rev
	w.countFlushed()
	w.dirty, w.pending = map[string]*entityState{}, 0
	if len(w.states) > maxStates {
		w.states = map[string]*entityState{}
	}
	return nil
}

// countFlushed adds the events of a flush that is written to the set's
// counts.
func (w *worker) countFlushed() {
	w.s.m.ingested.WithLabelValues(w.name).Add(float64(w.applied))
	w.s.count(w.name, func(st *Stats) {
		st.Applied += w.applied
		st.Duplicates += w.dups
		st.Late += w.late
	})
	w.applied, w.dups, w.late = 0, 0, 0
}

func waitAck(ctx context.Context, f jetstream.PubAckFuture) (*jetstream.PubAck, error) {
	select {
	case ack := <-f.Ok():
		return ack, nil
	case err := <-f.Err():
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
