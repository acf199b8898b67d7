package monitor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/monitor/event"
)

// PublisherOptions configure a Publisher. Zero values take the defaults
// documented on each field.
type PublisherOptions struct {
	// Conn is the NATS connection to publish on (required). The Publisher
	// does not close it. It should reconnect forever (natsx.Connect does).
	Conn *nats.Conn
	// SpoolDir holds events that could not be sent yet (required).
	SpoolDir string
	// SpoolMaxBytes bounds the spool; past it events are dropped and counted.
	// Default 1 GiB.
	SpoolMaxBytes int64
	// SpoolSegmentBytes is the size at which a spool segment file is closed.
	// Default 16 MiB.
	SpoolSegmentBytes int64
	// QueueSize is the in-memory queue between Publish and the sender.
	// Default 65536.
	QueueSize int
	// StreamMaxAge and StreamMaxBytes bound the WEIR_EVENTS stream (oldest
	// events are discarded first). Defaults 24h and 1 GiB. When
	// StreamMaxBytes is left at 0 and NATS has less storage than 1 GiB to
	// reserve, the stream is made smaller (halving, down to 8 MiB) with a
	// warning; a size given explicitly is used as is or NewPublisher fails
	// saying so.
	StreamMaxAge   time.Duration
	StreamMaxBytes int64
	// DedupWindow is the stream's duplicate window: a re-sent event is stored
	// once if it comes back within it. Default 2m.
	DedupWindow time.Duration
	// Replicas of the stream. Default 1.
	Replicas int
	// MaxPending bounds async publishes awaiting an ack. Default 4096.
	MaxPending int
	// AckTimeout after which an unacked publish is given up on (it is on
	// disk by then; see SpillAfter). Default 5s.
	AckTimeout time.Duration
	// MaxEventBytes bounds one encoded event (and stays under the NATS
	// server's max payload): a larger one is truncated (truncate.go).
	// Default 1 MiB.
	MaxEventBytes int
	// SpillAfter is the at-least-once window: an event handed to NATS and
	// not acknowledged within it is written to the spool (and re-sent from
	// there; de-duplication absorbs a late ack), and a send loop stalled
	// that long on NATS spools instead of waiting. A crash loses at most the
	// events of about this window plus the in-memory queue
	// (weir_events_at_risk). Default 250ms; see docs/rationale.md.
	SpillAfter time.Duration
	// FrameMaxBytes and FrameMaxEvents bound a frame, the message that
	// carries many events of one route: a frame is sent when the next event
	// would take it past either (an event larger than FrameMaxBytes goes
	// alone). Defaults 64 KiB and 1024; a frame also stays under the NATS
	// server's max payload.
	FrameMaxBytes  int
	FrameMaxEvents int
	// FrameLinger is how long the sender, having taken an event, waits for
	// more to fill frames before it sends: events reach the stream up to
	// this much later, and a busy gateway sends far fewer messages. Default
	// 5ms; negative sends what is queued at once.
	FrameLinger time.Duration
	// Durability is DurabilityBestEffort (default) or DurabilityStrict: in
	// strict, PublishDurable returns only once the event is fsynced to the
	// spool (durable.go).
	Durability string
	// Registerer receives the weir_events_* metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger; nil uses slog.Default().
	Logger *slog.Logger

	streamAutoSize bool // StreamMaxBytes was not given: fit it to NATS
}

// ErrStreamNoRoom means NATS refused to reserve storage for WEIR_EVENTS:
// free disk where NATS stores (the data dir) or ask for a smaller stream.
var ErrStreamNoRoom = errors.New("NATS has too little storage for the events stream")

// minAutoStreamBytes is the smallest WEIR_EVENTS an automatic size goes to.
const minAutoStreamBytes = 8 << 20

func (o *PublisherOptions) setDefaults() error {
	if o.Conn == nil {
		return weirerr.Invalidf("monitor publisher: Conn is nil, want a NATS connection")
	}
	if o.SpoolDir == "" {
		return weirerr.Invalidf("monitor publisher: SpoolDir is empty, want a directory for undelivered events")
	}
	def := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.SpoolMaxBytes, 1<<30)
	def(&o.SpoolSegmentBytes, 16<<20)
	o.streamAutoSize = o.StreamMaxBytes <= 0
	def(&o.StreamMaxBytes, 1<<30)
	if o.QueueSize <= 0 {
		o.QueueSize = 1 << 16
	}
	if o.StreamMaxAge <= 0 {
		o.StreamMaxAge = 24 * time.Hour
	}
	if o.DedupWindow <= 0 {
		o.DedupWindow = 2 * time.Minute
	}
	if o.DedupWindow > o.StreamMaxAge {
		return weirerr.Invalidf("monitor publisher: DedupWindow %s is longer than StreamMaxAge %s, want it shorter", o.DedupWindow, o.StreamMaxAge)
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 4096
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = 5 * time.Second
	}
	if o.MaxEventBytes <= 0 {
		o.MaxEventBytes = 1 << 20
	}
	if o.SpillAfter <= 0 {
		o.SpillAfter = 250 * time.Millisecond
	}
	if o.FrameMaxBytes <= 0 {
		o.FrameMaxBytes = 64 << 10
	}
	if o.FrameMaxEvents <= 0 {
		o.FrameMaxEvents = 1024
	}
	if o.FrameLinger == 0 {
		o.FrameLinger = 5 * time.Millisecond
	}
	o.SpillAfter = min(o.SpillAfter, o.AckTimeout)
	switch o.Durability {
	case "":
		o.Durability = DurabilityBestEffort
	case DurabilityBestEffort, DurabilityStrict:
	default:
		return weirerr.Invalidf("monitor publisher: durability %q is unknown, want %q or %q (--events-durability)", o.Durability, DurabilityBestEffort, DurabilityStrict)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// Publisher sends inference events to JetStream without ever blocking the
// caller. See doc.go for the delivery guarantees.
type Publisher struct {
	opts  PublisherOptions
	nc    *nats.Conn
	js    jetstream.JetStream // direct sends; its callbacks spool failures
	rjs   jetstream.JetStream // spool replay; no callbacks, acks awaited per batch
	q     chan *Event
	spool *spool
	log   *slog.Logger

	streamReady atomic.Bool
	streamBytes atomic.Int64
	closed      atomic.Bool
	stop        chan struct{} // closed by Close: stop taking from the queue
	drained     chan struct{} // closed when the sender has emptied the queue
	replayDone  chan struct{}
	spillDone   chan struct{}
	commits     chan commitReq // PublishDurable's events awaiting a group commit
	commitDone  chan struct{}
	wake        chan struct{} // nudges the replayer when the spool gets data
	full        chan struct{} // ends the send loop's linger: the queue is filling
	fullAt      int           // queued events that end a linger early

	// inflight holds direct publishes (frames, by frame ID) not yet acked
	// and not yet on disk: the spiller writes those older than SpillAfter
	// to the spool, and Close spools what never got an answer.
	inflightMu     sync.Mutex
	inflight       map[string]inflightMsg
	inflightEvents int // events in the inflight frames
	inflightClosed bool
	batching       atomic.Int64 // events the send loop holds while it fills frames

	// frames are the send loop's frames being filled, by subject.
	frames     map[string]*frameBuilder
	frameOrder []*frameBuilder
	scratch    []byte // the send loop's event encoding buffer

	published, spooled, dropped, spilled, unreadable prometheus.Counter
	truncated, deadLettered                          prometheus.Counter
	deadLetterMu                                     sync.Mutex
	collectors                                       []prometheus.Collector
	lastDropLog                                      atomic.Int64 // unix nanos
	dropsSinceLog                                    atomic.Int64
	spoolFailing                                     atomic.Bool // last spool write failed (logged once per change)
}

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

// NewPublisher opens (or resumes) the spool, creates or updates stream
// WEIR_EVENTS, and starts the sender and the spool replayer. Events left in
// the spool by an earlier run are sent before new ones. If NATS cannot be
// reached now, NewPublisher still succeeds: events are spooled and the stream
// is created when NATS answers.
func NewPublisher(ctx context.Context, o PublisherOptions) (*Publisher, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	sp, err := openSpool(o.SpoolDir, o.SpoolMaxBytes, o.SpoolSegmentBytes)
	if err != nil {
		return nil, err
	}
	p := &Publisher{
		opts:       o,
		nc:         o.Conn,
		q:          make(chan *Event, o.QueueSize),
		spool:      sp,
		log:        o.Logger.With("component", "monitor.publisher"),
		stop:       make(chan struct{}),
		drained:    make(chan struct{}),
		replayDone: make(chan struct{}),
		spillDone:  make(chan struct{}),
		commits:    make(chan commitReq, commitQueue(o)),
		commitDone: make(chan struct{}),
		wake:       make(chan struct{}, 1),
		full:       make(chan struct{}, 1),
		fullAt:     max(1, min(sendBatchMax, o.QueueSize/2)),
		inflight:   make(map[string]inflightMsg),
		frames:     make(map[string]*frameBuilder),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_events_published_total", Help: "Inference events acknowledged by JetStream."}),
		spooled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_events_spooled_total", Help: "Inference events written to the on-disk spool to be sent later."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_events_dropped_total", Help: "Inference events lost: queue and spool full, spool not writable, or a damaged spool record (each damaged stretch counts as one)."}),
		truncated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_events_truncated_total", Help: "Inference events cut to the event size cap (rows dropped, marked truncated)."}),
		deadLettered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_events_dead_letter_total", Help: "Inference events NATS refused for good, written to the dead-letter file."}),
		spilled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_events_spilled_total", Help: "Inference events written to the spool because their ack took longer than the at-least-once window."}),
		unreadable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_events_spool_unreadable_total", Help: "Damaged stretches of the spool skipped (each held at least one event, also counted as dropped)."}),
	}
	sp.onUnreadable = func() {
		p.unreadable.Inc()
		p.drop(1)
	}
	p.collectors = []prometheus.Collector{p.published, p.spooled, p.dropped, p.spilled, p.unreadable, p.truncated, p.deadLettered,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "weir_events_at_risk", Help: "Inference events only in memory (queued, or sent and not yet acked nor spooled): what a crash now would lose."},
			func() float64 { return float64(len(p.q) + int(p.batching.Load()) + p.inflightLen()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "weir_events_queue_length", Help: "Inference events waiting in memory to be sent."},
			func() float64 { return float64(len(p.q)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "weir_events_spool_bytes", Help: "Bytes of inference events in the spool not yet sent."},
			func() float64 { return float64(p.spool.unreadBytes()) }),
	}
	if o.Registerer != nil {
		for i, c := range p.collectors {
			if err := o.Registerer.Register(c); err != nil {
				for _, done := range p.collectors[:i] {
					o.Registerer.Unregister(done)
				}
				_ = sp.close()
				return nil, fmt.Errorf("register event metrics: %w", err)
			}
		}
	}
	p.js, err = jetstream.New(o.Conn,
		jetstream.WithPublishAsyncMaxPending(o.MaxPending),
		jetstream.WithPublishAsyncTimeout(o.AckTimeout),
		jetstream.WithPublishAsyncAckHandler(p.onAck),
		jetstream.WithPublishAsyncErrHandler(p.onPubErr),
	)
	if err == nil {
		// Replayed publishes must time out too: an ack lost with the
		// server's state (JetStream restarted after a full disk) would
		// otherwise hold a pending slot for ever, and once MaxPending are
		// held every replay stalls and the spool never drains.
		p.rjs, err = jetstream.New(o.Conn, jetstream.WithPublishAsyncMaxPending(o.MaxPending),
			jetstream.WithPublishAsyncTimeout(o.AckTimeout))
	}
	if err != nil {
		p.unregister()
		_ = sp.close()
		return nil, fmt.Errorf("jetstream context for events: %w", err)
	}
	if err := p.ensureStream(ctx); err != nil {
		if errors.Is(err, ErrStreamNoRoom) {
			p.unregister()
			_ = sp.close()
			return nil, err
		}
		p.log.Warn("events stream not ready; spooling until NATS answers", "err", err)
	}
	go p.sendLoop()
	go p.replayLoop()
	go p.spillLoop()
	go p.commitLoop()
	return p, nil
}

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

// Publish hands ev to the publisher and returns at once; it never blocks and
// never fails. The publisher takes ownership of ev and its Features and
// Outputs maps: the caller must not touch them afterwards, and they must not
// alias request buffers that are reused (fasthttp's are), so build them from
// owned copies. ev.ID should be set (NewID); an empty ID gets one here.
func (p *Publisher) Publish(ev *Event) {
	if p.closed.Load() {
		p.drop(1)
		return
	}
	select {
	case p.q <- ev:
		if len(p.q) >= p.fullAt {
			select {
			case p.full <- struct{}{}:
			default:
			}
		}
		return
	default:
	}
	// Queue full: spill straight to the spool if nobody holds it right now;
	// never wait for it.
	data, err := p.encode(ev)
	if err != nil {
		p.log.Error("cannot encode event", "id", ev.ID, "err", err)
		p.drop(1)
		return
	}
	if !p.spool.mu.TryLock() {
		p.drop(1)
		return
	}
	frame := event.AppendEvent(event.NewFrame(make([]byte, 0, event.FrameHeaderLen+event.EventOverhead+len(data))), data)
	n, _ := p.spool.appendLocked([]spoolRecord{{subject: eventSubject(ev.Route), id: NewID(), data: frame}})
	p.spool.mu.Unlock()
	if n == 0 {
		p.drop(1)
		return
	}
	p.spooled.Inc()
	p.nudge()
}

// fillEvent gives an event what the contract requires before it is encoded:
// an ID, and objects (not null) for features and outputs.
func fillEvent(ev *Event) {
	if ev.ID == "" {
		ev.ID = NewID()
	}
	if ev.Features == nil {
		ev.Features = map[string]any{}
	}
	if ev.Outputs == nil {
		ev.Outputs = map[string]any{}
	}
}

// eventSubject maps a route to its subject. Route names are validated by the
// gateway; an empty one still needs a valid subject token.
func eventSubject(route string) string {
	if route == "" {
		route = "_"
	}
	return SubjectEventsPrefix + route
}

func (p *Publisher) nudge() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// drop counts lost events and logs at most once every 10 seconds.
func (p *Publisher) drop(n int) {
	p.dropped.Add(float64(n))
	total := p.dropsSinceLog.Add(int64(n))
	now := time.Now().UnixNano()
	last := p.lastDropLog.Load()
	if now-last >= int64(10*time.Second) && p.lastDropLog.CompareAndSwap(last, now) {
		p.dropsSinceLog.Add(-total)
		if p.spool.diskFull.Load() {
			p.log.Warn("inference events dropped: queue full and the disk holding the event spool is full", "dropped", total,
				"spool_dir", p.opts.SpoolDir)
		} else {
			p.log.Warn("inference events dropped: queue and spool full", "dropped", total,
				"spool_max_bytes", p.opts.SpoolMaxBytes)
		}
	}
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

// Close stops taking events, sends or spools what is queued, waits for
// outstanding acks until ctx ends, and spools whatever is still unanswered so
// the next start sends it first. Publish after Close drops and counts.
func (p *Publisher) Close(ctx context.Context) error {
	if !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(p.stop)
	// The loops write to the spool: when ctx ends first, the spool stays
	// open under them rather than being closed while they use it.
	for _, loop := range []struct {
		what string
		done <-chan struct{}
	}{{"sending", p.drained}, {"replaying the spool", p.replayDone}, {"spilling to the spool", p.spillDone},
		{"committing strict events", p.commitDone}} {
		select {
		case <-loop.done:
		case <-ctx.Done():
			return fmt.Errorf("monitor: closing the publisher while still %s: %w", loop.what, ctx.Err())
		}
	}
	select {
	case <-p.js.PublishAsyncComplete():
	case <-ctx.Done():
	}
	p.inflightMu.Lock()
	p.inflightClosed = true
	left := make([]spoolRecord, 0, len(p.inflight))
	for id, m := range p.inflight {
		left = append(left, spoolRecord{subject: m.msg.Subject, id: id, data: m.msg.Data})
	}
	p.inflight = nil
	p.inflightEvents = 0
	p.inflightMu.Unlock()
	p.spoolRecords(left)
	err := p.spool.close()
	p.unregister()
	return err
}

func (p *Publisher) unregister() {
	if p.opts.Registerer == nil {
		return
	}
	for _, c := range p.collectors {
		p.opts.Registerer.Unregister(c)
	}
}
