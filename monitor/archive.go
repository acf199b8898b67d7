package monitor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/internal/retry"
	"github.com/weirhq/weir/internal/weirerr"
)

// ArchiverOptions configure an Archiver.
type ArchiverOptions struct {
	// JetStream to consume WEIR_EVENTS from (required).
	JetStream jetstream.JetStream
	// Dir is the archive root on local disk. Store, when set, is used
	// instead (e.g. the shared object store, OpenObjectArchive); one of the
	// two is required.
	Dir   string
	Store ArchiveStore
	// Durable consumer name. Default "weir-archive".
	Durable string
	// MaxRows and MaxAge close a file: whichever comes first. Defaults
	// 10,000 rows and 10s.
	MaxRows int
	MaxAge  time.Duration
	// AckWait before the server redelivers an unacked event. Default
	// 3*MaxAge + 30s; it must exceed the time a file stays open.
	AckWait time.Duration
	// MaxAckPending bounds events held in open files. Default 5*MaxRows.
	MaxAckPending int
	// Raw keeps each event's JSON, as published, in a column "raw" beside
	// the typed ones. Off by default: the typed columns hold every field
	// (arrays and objects as JSON text), and raw makes a file about 3.5
	// times larger.
	Raw bool
	// Decoded, when set, shares the decoding of each message with the
	// process's other event consumers (Stats, drift).
	Decoded *Decoded
	// Logger; nil uses slog.Default().
	Logger *slog.Logger
}

// maxOpenSchemas bounds the files open at once for one route and hour
// (one per schema, see partition): past it the oldest are written early.
const maxOpenSchemas = 8

// Archiver writes events from WEIR_EVENTS into Parquet files partitioned as
// route=<route>/date=YYYY-MM-DD/hour=HH/<firstSeq>-<lastSeq>[-<k>].parquet
// in its ArchiveStore
// (by event TS, UTC), one typed column per feature and output (parquet.go).
// Events of another schema (a new feature, a value of another type) go to
// another file; k tells apart files of one hour opened by the same message. See doc.go for why no row is lost or written twice.
type Archiver struct {
	opts ArchiverOptions
	log  *slog.Logger

	mu    sync.Mutex
	parts map[string][]*partition // by directory, oldest first
	dirs  map[string]hourDir      // each route's directory for its latest hour
	held  map[eventKey]bool       // events in open files (redeliveries are ignored)
	skip  map[eventKey]struct{}   // events already in files, their message not acked
	// unwritten holds each message (a frame of events, or one legacy
	// event) some of whose events are not in a file yet; it is acked when
	// the last of them is.
	unwritten map[uint64]*msgState
	files     int
	// failures counts file writes failed in a row (logged only when it
	// leaves or returns to 0); failingSince sets the redelivery delay.
	failures     int
	failingSince time.Time
	failedRows   int64 // rows Nak'ed since the last successful write

	noAck bool // tests: simulate a crash between rename and ack

	cancel context.CancelFunc
	done   chan struct{}
}

// partition is one open file: events of one route and hour whose features
// and outputs fit its schema.
type partition struct {
	dir    string
	opened time.Time
	schema archiveSchema
	recs   []archiveRecord
	minSeq uint64
	maxSeq uint64
	// k is how many files of this directory were opened before this one
	// by the same message (same minSeq): a suffix that keeps names apart.
	k int
}

// eventKey names one event in the stream: the sequence of the message that
// carries it and its ID (unique within a frame: the publisher makes IDs).
type eventKey struct {
	seq uint64
	id  string
}

// msgState is a message with events not yet written: the latest delivery
// (the one to ack) and how many of its events are not in a file.
type msgState struct {
	msg  jetstream.Msg
	left int
}

func (o *ArchiverOptions) setDefaults() error {
	if o.JetStream == nil {
		return weirerr.Invalidf("monitor archiver: JetStream is nil, want a JetStream context")
	}
	if o.Dir == "" && o.Store == nil {
		return weirerr.Invalidf("monitor archiver: Dir and Store are empty, want an archive directory or store")
	}
	if o.Durable == "" {
		o.Durable = "weir-archive"
	}
	if o.MaxRows <= 0 {
		o.MaxRows = 10000
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 10 * time.Second
	}
	if o.AckWait <= 0 {
		o.AckWait = 3*o.MaxAge + 30*time.Second
	}
	if o.MaxAckPending <= 0 {
		o.MaxAckPending = 5 * o.MaxRows
	}
	if o.MaxAckPending < o.MaxRows {
		return weirerr.Invalidf("monitor archiver: MaxAckPending %d is below MaxRows %d; files could never fill", o.MaxAckPending, o.MaxRows)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// NewArchiver starts archiving. It waits in the background for the stream
// if it does not exist yet; Close stops it.
func NewArchiver(o ArchiverOptions) (*Archiver, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	if o.Store == nil {
		if err := os.MkdirAll(o.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("create archive dir: %w", err)
		}
		o.Store = DirArchive(o.Dir)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &Archiver{
		opts:      o,
		log:       o.Logger.With("component", "monitor.archiver"),
		parts:     make(map[string][]*partition),
		dirs:      make(map[string]hourDir),
		held:      make(map[eventKey]bool),
		skip:      make(map[eventKey]struct{}),
		unwritten: make(map[uint64]*msgState),
		cancel:    cancel,
		done:      make(chan struct{}),
	}
	go a.run(ctx)
	return a, nil
}

func (a *Archiver) run(ctx context.Context) {
	defer close(a.done)
	lost := make(chan struct{}, 1)
	cons, cc := a.consume(ctx, lost)
	if cc == nil {
		return // ctx ended
	}
	tick := time.NewTicker(max(a.opts.MaxAge/4, 50*time.Millisecond))
	defer tick.Stop()
	prune := time.NewTicker(5 * time.Second)
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			cc.Stop()
			<-cc.Closed()
			return
		case <-lost:
			// Lost with its NATS node, or silent: consume again. The new
			// consumer's redeliveries of what is already in files are
			// skipped (loadSkips), as after a restart.
			cc.Stop()
			<-cc.Closed()
			a.log.Warn("archive consumer lost; consuming again", "durable", a.opts.Durable)
			if cons, cc = a.consume(ctx, lost); cc == nil {
				return
			}
		case <-tick.C:
			a.mu.Lock()
			a.flushOld(time.Now())
			a.mu.Unlock()
		case <-prune.C:
			a.pruneSkips(ctx, cons)
		}
	}
}

// consume opens the durable consumer and consumes it, retrying until it
// works or ctx ends (then cc is nil). A consumer that is gone or silent
// past two heartbeats (2s each) signals lost.
func (a *Archiver) consume(ctx context.Context, lost chan<- struct{}) (jetstream.Consumer, jetstream.ConsumeContext) {
	for {
		cons, err := a.consumer(ctx)
		if err != nil {
			return nil, nil // ctx ended
		}
		cc, err := cons.Consume(a.onMsg, jetstream.PullMaxBytes(consumeMaxBytes),
			jetstream.PullExpiry(10*time.Second), jetstream.PullHeartbeat(2*time.Second),
			jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
				a.log.Debug("archive consumer", "err", err)
				if ConsumerLost(err) {
					select {
					case lost <- struct{}{}:
					default:
					}
				}
			}))
		if err == nil {
			return cons, cc
		}
		a.log.Error("archive consumer failed to start; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(time.Second): // retry pace
		}
	}
}

// ConsumerLost says whether a consume error means the consumer is gone
// (lost with its NATS node) or has not been heard from for two heartbeats.
func ConsumerLost(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, jetstream.ErrNoHeartbeat)
}

// consumer creates the durable consumer (retrying until the stream exists)
// and loads the sequences already on disk above its ack floor.
func (a *Archiver) consumer(ctx context.Context) (jetstream.Consumer, error) {
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		cons, err := a.opts.JetStream.CreateOrUpdateConsumer(cctx, StreamEvents, jetstream.ConsumerConfig{
			Durable:       a.opts.Durable,
			FilterSubject: SubjectEventsPrefix + ">",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       a.opts.AckWait,
			MaxAckPending: a.opts.MaxAckPending,
			DeliverPolicy: jetstream.DeliverAllPolicy,
		})
		var info *jetstream.ConsumerInfo
		if err == nil {
			info, err = cons.Info(cctx)
		}
		cancel()
		if err == nil {
			if err := a.loadSkips(info.AckFloor.Stream); err != nil {
				a.log.Error("scanning archive for written events", "err", err)
			}
			return cons, nil
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			a.log.Warn("archive consumer not ready; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(retry.Jitter(500 * time.Millisecond)): // retry pace
		}
	}
}

// archiveName is <20-digit first seq>-<20-digit last seq>[-<k>].parquet.
var archiveName = regexp.MustCompile(`^(\d{20})-(\d{20})(?:-\d{1,3})?\.parquet$`)

// loadSkips records the sequences above floor held by files already written,
// so their redelivery is acked without writing them again. Stale temp files
// from a crash are removed.
func (a *Archiver) loadSkips(floor uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	keys, err := a.opts.Store.List(ctx, "")
	if err != nil {
		return fmt.Errorf("list archive: %w", err)
	}
	for _, key := range keys {
		m := archiveName.FindStringSubmatch(path.Base(key))
		if m == nil {
			continue
		}
		if last, _ := strconv.ParseUint(m[2], 10, 64); last <= floor {
			continue
		}
		b, err := a.opts.Store.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("read %s: %w", key, err)
		}
		recs, err := readArchiveFile(b)
		if err != nil {
			return fmt.Errorf("read %s: %w", key, err)
		}
		a.mu.Lock()
		for _, r := range recs {
			if r.seq > floor {
				a.skip[eventKey{r.seq, r.ev.ID}] = struct{}{}
			}
		}
		a.mu.Unlock()
	}
	return nil
}

// onMsg takes the events of one message (a frame or a legacy single event)
// into open files. The message is acked once every one of its events is in
// a file: at once if all already are (a redelivery after a crash), else
// when the last file holding one of them is written.
func (a *Archiver) onMsg(m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		a.log.Error("event without JetStream metadata", "err", err)
		_ = m.Term()
		return
	}
	seq := meta.Sequence.Stream
	a.mu.Lock()
	defer a.mu.Unlock()
	left := 0
	touched := make(map[*partition]struct{}, 1)
	err = a.opts.Decoded.Each(seq, m.Headers(), m.Data(), func(i int, ev *Event, raw []byte, err error) {
		if err != nil {
			a.log.Error("undecodable event not archived", "seq", seq, "index", i, "err", err)
			return
		}
		k := eventKey{seq, ev.ID}
		if _, ok := a.skip[k]; ok {
			// Already in a file. Keep the mark until the ack floor passes
			// it (pruneSkips): this ack can be lost too, and a third
			// delivery must not write the event again.
			return
		}
		left++
		if a.held[k] {
			return // redelivered while its file is still open
		}
		r := archiveRecord{ev: ev, seq: seq}
		if a.opts.Raw {
			r.raw = bytes.Clone(raw)
		}
		p := a.add(r)
		a.held[k] = true
		touched[p] = struct{}{}
	})
	if err != nil {
		a.log.Error("damaged event frame: the events after the damage are not archived", "seq", seq, "err", err)
	}
	if left == 0 {
		delete(a.unwritten, seq)
		if !a.noAck {
			_ = m.Ack()
		}
		return
	}
	a.unwritten[seq] = &msgState{msg: m, left: left}
	// A file is closed only between messages, so the events of one message
	// in one partition always share a file (and file names never repeat).
	for p := range touched {
		if len(p.recs) >= a.opts.MaxRows {
			a.flush(p)
		}
	}
	for p := range touched {
		if open := a.parts[p.dir]; len(open) > maxOpenSchemas {
			for _, q := range open[:len(open)-maxOpenSchemas] {
				a.flush(q)
			}
		}
	}
}

// add puts an event into the open file of its route, hour and schema,
// opening one if none fits, and returns that file. Caller holds a.mu.
func (a *Archiver) add(r archiveRecord) *partition {
	r.ev.TS = r.ev.TS.UTC()
	dir := a.partitionDir(r.ev.Route, r.ev.TS)
	var p *partition
	k := 0
	for _, q := range a.parts[dir] {
		if q.schema.same(r.ev) {
			p = q
			break
		}
		if p == nil && q.schema.accepts(r.ev) {
			p = q
		}
		if q.minSeq == r.seq {
			k = max(k, q.k+1)
		}
	}
	if p == nil {
		p = &partition{dir: dir, opened: time.Now(), schema: newArchiveSchema(), minSeq: r.seq, k: k}
		a.parts[dir] = append(a.parts[dir], p)
	}
	p.schema.add(r.ev)
	p.recs = append(p.recs, r)
	p.minSeq, p.maxSeq = min(p.minSeq, r.seq), max(p.maxSeq, r.seq)
	return p
}

var nameOK = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// hourDir is a route's directory for the hour starting at from.
type hourDir struct {
	from time.Time
	dir  string
}

// partitionDir is the directory of route's events at ts (UTC). Events
// come in hour after hour, so each route's latest is kept rather than
// checking the name and formatting the time for every event. Caller holds
// a.mu.
func (a *Archiver) partitionDir(route string, ts time.Time) string {
	if d, ok := a.dirs[route]; ok && !ts.Before(d.from) && ts.Before(d.from.Add(time.Hour)) {
		return d.dir
	}
	name := route
	if !nameOK.MatchString(route) || strings.Contains(route, "..") {
		name = "_invalid"
	}
	d := hourDir{from: ts.Truncate(time.Hour), dir: archiveKey("route="+name, ts.Format("date=2006-01-02"), ts.Format("hour=15"))}
	if len(a.dirs) >= maxHourDirs {
		clear(a.dirs) // names no route has: start over rather than grow
	}
	a.dirs[route] = d
	return d.dir
}

// maxHourDirs bounds Archiver.dirs: events name their route, and a stream
// written by something else may name many.
const maxHourDirs = 1024

// flushOld closes every file older than MaxAge. Caller holds a.mu.
func (a *Archiver) flushOld(now time.Time) {
	var old []*partition
	for _, ps := range a.parts {
		for _, p := range ps {
			if now.Sub(p.opened) >= a.opts.MaxAge {
				old = append(old, p)
			}
		}
	}
	for _, p := range old {
		a.flush(p)
	}
}

// flush writes p to its file and acks its events, or on failure naks them so
// they come back. Caller holds a.mu.
func (a *Archiver) flush(p *partition) {
	open := slices.DeleteFunc(a.parts[p.dir], func(q *partition) bool { return q == p })
	if len(open) == 0 {
		delete(a.parts, p.dir)
	} else {
		a.parts[p.dir] = open
	}
	for _, r := range p.recs {
		delete(a.held, eventKey{r.seq, r.ev.ID})
	}
	name := fmt.Sprintf("%020d-%020d.parquet", p.minSeq, p.maxSeq)
	if p.k > 0 {
		name = fmt.Sprintf("%020d-%020d-%d.parquet", p.minSeq, p.maxSeq, p.k)
	}
	if err := a.write(archiveKey(p.dir, name), p.schema, p.recs); err != nil {
		// A full or read-only disk does not get better by retrying at once:
		// redeliver later, longer after each failure in a row.
		now := time.Now()
		if a.failures == 0 {
			a.failingSince = now
		}
		a.failures++
		a.failedRows += int64(len(p.recs))
		delay := archiveBackoff(now.Sub(a.failingSince))
		if a.failures == 1 {
			a.log.Error("archive file not written; backing off, events will be redelivered",
				"dir", p.dir, "err", err, "retry_in", delay)
		}
		// Each message once, even with many of its events here; events
		// of it still held in other open files are ignored when it comes
		// back, and it is acked only when all of them are written.
		naked := make(map[uint64]bool)
		for _, r := range p.recs {
			seq := r.seq
			if st := a.unwritten[seq]; st != nil && !naked[seq] {
				naked[seq] = true
				_ = st.msg.NakWithDelay(delay)
			}
		}
		return
	}
	if a.failures > 0 {
		a.log.Info("archive files written again", "failed_writes", a.failures, "rows_redelivered", a.failedRows)
		a.failures, a.failedRows = 0, 0
	}
	a.files++
	// An ack can be lost (NATS reconnecting); the event then comes back
	// while we run. Remember what is written until the ack floor passes it.
	for _, r := range p.recs {
		seq := r.seq
		a.skip[eventKey{seq, r.ev.ID}] = struct{}{}
		st := a.unwritten[seq]
		if st == nil {
			continue
		}
		if st.left--; st.left > 0 {
			continue
		}
		delete(a.unwritten, seq)
		if !a.noAck {
			_ = st.msg.Ack()
		}
	}
}

// archiveBackoff is the redelivery delay for a write that failed after
// writes have been failing for d: as long again, at least 1s and at most a
// minute, so retries come at about 1s, 2s, 4s, 8s ... however many partitions
// fail at once.
func archiveBackoff(d time.Duration) time.Duration {
	return min(max(d, time.Second), time.Minute)
}

// Failing says whether the last archive file write failed (the disk is
// full or not writable); events wait in the stream meanwhile.
func (a *Archiver) Failing() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.failures > 0
}

// pruneSkips forgets written sequences at or below the consumer's ack floor:
// the server will not deliver those again.
func (a *Archiver) pruneSkips(ctx context.Context, cons jetstream.Consumer) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := cons.Info(ctx)
	if err != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := range a.skip {
		if k.seq <= info.AckFloor.Stream {
			delete(a.skip, k)
		}
	}
}

// write encodes recs as one Parquet file and puts it in the store, whole or
// not at all.
func (a *Archiver) write(key string, s archiveSchema, recs []archiveRecord) error {
	var buf bytes.Buffer
	if err := writeArchiveFile(&buf, s, a.opts.Raw, recs); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return a.opts.Store.Put(ctx, key, buf.Bytes())
}

// Files returns how many Parquet files this Archiver has written.
func (a *Archiver) Files() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.files
}

// Close stops consuming, writes every open file and acks its events. Events
// still held when ctx ends are left unacked and come back on the next start.
func (a *Archiver) Close(ctx context.Context) error {
	a.cancel()
	select {
	case <-a.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	dirs := make([]string, 0, len(a.parts))
	for d := range a.parts {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	for _, d := range dirs {
		for _, p := range slices.Clone(a.parts[d]) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			a.flush(p)
		}
	}
	return nil
}
