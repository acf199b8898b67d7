package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
