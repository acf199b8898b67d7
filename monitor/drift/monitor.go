package drift

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/internal/lifecycle"
	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/monitor"
	"github.com/weirhq/weir/monitor/event"
)

// maxFeaturesPerVersion bounds how many input plus output series (features,
// array elements, summary statistics) one version tracks, so that events
// with ever-new feature names cannot grow memory (and metric cardinality)
// without bound. Values of further series are ignored and counted in
// weir_drift_untracked_total.
const maxFeaturesPerVersion = 512

// forgetFor is how long events of a deleted version are ignored: longer
// than events spend in flight or spooled in any normal outage.
const forgetFor = 10 * time.Minute

// Monitor keeps the drift windows of every model version it has seen events
// for, judges them, and raises alerts. Create it with New, feed it with Start
// (the JetStream consumer) or Apply, and stop it with Close.
type Monitor struct {
	opts    Options
	log     *slog.Logger
	met     *metrics
	alerter *alerter
	// alertLog records alerted crossings when gateways share NATS and an
	// alert lease (JS and AlertGate set); nil: the gate alone decides.
	alertLog *alertLog
	// holder: the tick goroutine's view of the alert lease at its last
	// settle; settleNow asks it to settle at once (a crossing happened).
	holder    bool
	settleNow chan struct{}

	mu     sync.RWMutex
	models map[string]*modelState
	// forgotten holds the versions deleted in the last forgetFor (key
	// model@version -> when), so that their events still in flight do not
	// bring their state back; Track lifts it when a version returns.
	forgotten map[string]time.Time

	consMu   sync.Mutex
	cc       jetstream.ConsumeContext
	closing  bool          // Close took cc: resume must not replace it
	lastMsg  atomic.Int64  // stream time of the last message handled, unix nanos
	consLost chan struct{} // the consumer is gone or silent: resume

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once

	applied atomic.Int64
	ignored atomic.Int64
	judged  atomic.Int64 // recomputes that judged a window
}

type modelState struct {
	cfg      Config
	versions map[string]*versionState
}

// versionState holds the features of one model version; mu guards all of it.
type versionState struct {
	model, version string

	mu       sync.Mutex
	cfg      Config
	uploaded *Reference
	inputs   map[string]*featureState
	outputs  map[string]*featureState
	// elemNames caches "<name>[i]" so array values do not allocate names on
	// every event.
	elemNames map[string][]string
	// untracked counts values of series beyond maxFeaturesPerVersion since
	// the last Apply handed them to weir_drift_untracked_total.
	untracked int
}

// featureState is one feature (or output) of a version: its reference (or
// the values collected to infer one), its window and its last judgement.
type featureState struct {
	name      string
	output    bool
	ref       *featureRef
	refSource string
	vsStable  bool // the reference is another version's answers (ShareOutputReferences)
	// recent keeps an output's latest numeric values (a ring of up to
	// InferCount), so that a canary can be measured against this version's
	// recent answers with bins of their own (ShareOutputReferences).
	recent     []float64
	recentNext int
	pending    []cell
	win        *window
	dirty      int

	evaluated bool
	metrics   Metrics
	value     float64
	drifted   bool
	// crossing is the alert of the feature's latest crossing judged here.
	// logKnown says whether logDrifted, logRev and logCrossing hold what the
	// shared alert log records for the feature (alertlog.go).
	crossing    Alert
	logKnown    bool
	logDrifted  bool
	logRev      uint64
	logCrossing uint64

	props   []float64 // scratch: window proportions
	scratch []float64 // scratch: chi-square expectations
	gauges  *featureGauges
}

func (f *featureState) kind() string {
	switch {
	case f.output:
		return KindOutput
	case f.ref != nil && !f.ref.numeric:
		return KindCategorical
	case f.ref != nil:
		return KindNumeric
	}
	return ""
}

// New builds a Monitor and starts its recompute ticker and webhook sender.
// It does not consume events until Start.
func New(opts Options) (*Monitor, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	met, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	m := &Monitor{
		opts:      o,
		log:       o.Logger.With("component", "drift"),
		met:       met,
		models:    map[string]*modelState{},
		forgotten: map[string]time.Time{},
		stop:      make(chan struct{}),
		settleNow: make(chan struct{}, 1),
		consLost:  make(chan struct{}, 1),
	}
	if o.JS != nil && o.AlertGate != nil {
		m.alertLog = &alertLog{js: o.JS}
	}
	m.alerter = newAlerter(o, m.log, met)
	m.wg.Add(1)
	go m.tick()
	return m, nil
}

// Start creates (or resumes) the durable consumer on the events stream and
// applies every event it delivers, acknowledging each after applying it. The
// stream must exist: the event publisher creates it.
func (m *Monitor) Start(ctx context.Context) error {
	if m.opts.JS == nil {
		return errors.New("drift: Start needs Options.JS")
	}
	m.consMu.Lock()
	defer m.consMu.Unlock()
	if m.cc != nil {
		return errors.New("drift: already started")
	}
	select {
	case <-m.stop:
		return errors.New("drift: monitor is closed")
	default:
	}
	if _, err := m.opts.JS.Stream(ctx, m.opts.Stream); err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return weirerr.Unavailablef("drift: stream %s does not exist yet (the event publisher creates it): %w", m.opts.Stream, err)
		}
		return fmt.Errorf("drift: look up stream %s: %w", m.opts.Stream, err)
	}
	deliver := jetstream.DeliverNewPolicy
	if m.opts.DeliverAll {
		deliver = jetstream.DeliverAllPolicy
	}
	cons, err := m.opts.JS.CreateOrUpdateConsumer(ctx, m.opts.Stream, m.consumerConfig(deliver, nil))
	if err != nil {
		return fmt.Errorf("drift: create durable consumer %s on %s: %w", m.opts.Durable, m.opts.Stream, err)
	}
	if err := m.consumeLocked(cons); err != nil {
		return err
	}
	m.wg.Add(1)
	go m.resume()
	return nil
}

func (m *Monitor) consumerConfig(deliver jetstream.DeliverPolicy, from *time.Time) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       m.opts.Durable,
		Description:   "weir drift monitor",
		FilterSubject: m.opts.FilterSubject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: deliver,
		OptStartTime:  from,
		AckWait:       30 * time.Second,
		MaxAckPending: 4096,
	}
}

// consumeLocked consumes cons into handle; called with consMu held. A
// consumer that is gone (lost with its NATS node) or silent past two
// heartbeats (2s each) wakes resume.
func (m *Monitor) consumeLocked(cons jetstream.Consumer) error {
	cc, err := cons.Consume(m.handle,
		jetstream.PullMaxBytes(8<<20), // a message is a frame of up to ~64 KiB of events
		jetstream.PullExpiry(10*time.Second), jetstream.PullHeartbeat(2*time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			m.log.Debug("drift consumer", "err", err)
			if monitor.ConsumerLost(err) {
				select {
				case m.consLost <- struct{}{}:
				default:
				}
			}
		}))
	if err != nil {
		return fmt.Errorf("drift: consume %s: %w", m.opts.Durable, err)
	}
	m.cc = cc
	return nil
}

// resume consumes again when the consumer was lost: the durable if it
// still exists (its leader moved), or a new one from just after the last
// event applied (it went with its node), retrying every second until
// Close.
func (m *Monitor) resume() {
	defer m.wg.Done()
	for {
		select {
		case <-m.stop:
			return
		case <-m.consLost:
		}
		for !m.reconsume() {
			select {
			case <-m.stop:
				return
			case <-time.After(time.Second): // retry pace, not a wait for an event
			}
		}
	}
}

// reconsume replaces the consumer; false: try again later.
func (m *Monitor) reconsume() bool {
	m.consMu.Lock()
	defer m.consMu.Unlock()
	if m.closing {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := m.opts.JS.Consumer(ctx, m.opts.Stream, m.opts.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cfg := m.consumerConfig(jetstream.DeliverNewPolicy, nil)
		if last := m.lastMsg.Load(); last != 0 {
			from := time.Unix(0, last+1)
			cfg = m.consumerConfig(jetstream.DeliverByStartTimePolicy, &from)
		}
		cons, err = m.opts.JS.CreateConsumer(ctx, m.opts.Stream, cfg)
	}
	if err != nil {
		m.log.Warn("drift: events consumer lost; retrying", "durable", m.opts.Durable, "err", err)
		return false
	}
	m.cc.Stop()
	if err := m.consumeLocked(cons); err != nil {
		m.log.Warn("drift: events consumer lost; retrying", "durable", m.opts.Durable, "err", err)
		return false
	}
	m.log.Info("drift: events consumer resumed", "durable", m.opts.Durable)
	return true
}

// handle applies every event of one message (a frame, or a single event
// written before frames) and acknowledges it. A message that is not events
// is terminated so that it is never redelivered; of a damaged frame the
// events before the damage are applied.
func (m *Monitor) handle(msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		m.log.Warn("drift: dropping message without JetStream metadata", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		return
	}
	notEvent := false
	err = m.opts.Decoded.Each(md.Sequence.Stream, msg.Headers(), msg.Data(), func(_ int, ev *monitor.Event, raw []byte, err error) {
		if err != nil {
			if len(raw) == len(msg.Data()) {
				notEvent = true // a single message that is not an event
				return
			}
			m.log.Warn("drift: skipping an undecodable event in a frame", "subject", msg.Subject(), "err", err)
			return
		}
		if ev.TS.IsZero() {
			ev.TS = md.Timestamp
		}
		m.Apply(ev)
	})
	if err != nil || notEvent {
		m.log.Warn("drift: dropping message that is not events", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		return
	}
	if err := msg.Ack(); err != nil {
		m.log.Debug("drift: ack", "err", err)
	}
	m.lastMsg.Store(md.Timestamp.UnixNano())
}

// Close stops consuming (processing what was already fetched and flushing
// its acknowledgements, so that a restarted consumer neither loses nor
// repeats events), stops the ticker and the webhook sender. It is safe to
// call more than once, and after a failed or missing Start.
func (m *Monitor) Close(ctx context.Context) error {
	var err error
	m.closeOnce.Do(func() {
		m.consMu.Lock()
		cc := m.cc
		m.closing = true
		m.consMu.Unlock()
		if cc != nil {
			cc.Drain()
			if lifecycle.Wait(ctx, "the drift consumer", cc.Closed()) != nil {
				m.log.Warn("drift: consumer did not drain before shutdown's deadline")
				cc.Stop()
			}
			if nc := m.opts.JS.Conn(); nc != nil {
				_ = nc.FlushTimeout(5 * time.Second)
			}
		}
		close(m.stop)
		err = lifecycle.WaitGroup(ctx, "the drift monitor", &m.wg)
		m.alerter.close()
	})
	return err
}

// tick recomputes, every RecomputeInterval, the features that received
// values since their last recompute, so that a slow trickle of events is
// judged within about a second too.
func (m *Monitor) tick() {
	defer m.wg.Done()
	t := time.NewTicker(m.opts.RecomputeInterval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-m.settleNow:
			m.settleAlerts()
		case now := <-t.C:
			m.mu.Lock()
			for k, at := range m.forgotten {
				if now.Sub(at) > forgetFor {
					delete(m.forgotten, k)
				}
			}
			m.mu.Unlock()
			for _, vs := range m.allVersions() {
				vs.mu.Lock()
				m.recomputeDirty(vs)
				vs.mu.Unlock()
			}
			m.settleAlerts()
		}
	}
}

func (m *Monitor) allVersions() []*versionState {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []*versionState
	for _, ms := range m.models {
		for _, vs := range ms.versions {
			out = append(out, vs)
		}
	}
	return out
}

// versionFor returns the state of a model version, creating it, or nil
// while the version is forgotten.
func (m *Monitor) versionFor(model, version string) *versionState {
	m.mu.RLock()
	ms := m.models[model]
	var vs *versionState
	if ms != nil {
		vs = ms.versions[version]
	}
	m.mu.RUnlock()
	if vs != nil {
		return vs
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, gone := m.forgotten[model+"@"+version]; gone {
		return nil
	}
	ms = m.models[model]
	if ms == nil {
		ms = &modelState{cfg: m.opts.Default, versions: map[string]*versionState{}}
		m.models[model] = ms
	}
	vs = ms.versions[version]
	if vs == nil {
		vs = &versionState{
			model: model, version: version, cfg: ms.cfg,
			inputs: map[string]*featureState{}, outputs: map[string]*featureState{},
			elemNames: map[string][]string{},
		}
		ms.versions[version] = vs
	}
	return vs
}

// lookup returns an existing version state or a NotFound error.
func (m *Monitor) lookup(model, version string) (*versionState, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	ms := m.models[model]
	if ms == nil {
		return nil, weirerr.NotFoundf("no drift data for model %q: no events or reference seen for it yet", model)
	}
	vs := ms.versions[version]
	if vs == nil {
		known := make([]string, 0, len(ms.versions))
		for v := range ms.versions {
			known = append(known, v)
		}
		slices.Sort(known)
		return nil, weirerr.NotFoundf("no drift data for model %q version %q: versions with data are %v", model, version, known)
	}
	return vs, nil
}

// SetConfig replaces the drift policy of one model (zero fields take the
// monitor's defaults). Windows of another size keep their newest values.
func (m *Monitor) SetConfig(model string, cfg Config) error {
	resolved, err := cfg.withDefaults(m.opts.Default)
	if err != nil {
		return err
	}
	m.mu.Lock()
	ms := m.models[model]
	if ms == nil {
		ms = &modelState{versions: map[string]*versionState{}}
		m.models[model] = ms
	}
	ms.cfg = resolved
	versions := make([]*versionState, 0, len(ms.versions))
	for _, vs := range ms.versions {
		versions = append(versions, vs)
	}
	m.mu.Unlock()
	for _, vs := range versions {
		vs.mu.Lock()
		vs.cfg = resolved
		for _, set := range []map[string]*featureState{vs.inputs, vs.outputs} {
			for _, fs := range set {
				if fs.win == nil {
					continue
				}
				if len(fs.win.bins) != resolved.WindowCount || fs.win.maxAge != int64(resolved.WindowAge) {
					fs.win = fs.win.resized(resolved.WindowCount, resolved.WindowAge)
				}
				fs.dirty = max(fs.dirty, 1) // judge again under the new policy at the next tick
			}
		}
		vs.mu.Unlock()
	}
	return nil
}

// Config returns the effective drift policy of a model.
func (m *Monitor) Config(model string) Config {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if ms := m.models[model]; ms != nil {
		return ms.cfg
	}
	return m.opts.Default
}

// SetReference sets the uploaded reference of a model version. The features
// it names start new windows against it (a drifted state is cleared without
// an alert); other features keep what they had.
func (m *Monitor) SetReference(model, version string, ref *Reference) {
	m.Track(model, version)
	vs := m.versionFor(model, version)
	vs.mu.Lock()
	defer vs.mu.Unlock()
	vs.uploaded = ref
	for _, name := range ref.features {
		fs := vs.inputs[name]
		if fs == nil {
			fs = &featureState{name: name}
			vs.inputs[name] = fs
		}
		m.resetFeature(vs, fs)
		fs.ref = ref.cols[name]
		fs.refSource = "uploaded"
		fs.initWindow(vs.cfg)
	}
}

// Track undoes Forget: events of model@version count again (the version
// was pushed again after a delete).
func (m *Monitor) Track(model, version string) {
	m.mu.Lock()
	delete(m.forgotten, model+"@"+version)
	m.mu.Unlock()
}

// Forget drops all drift state of a model version (when it is deleted) and
// ignores its events until Track (or for forgetFor): events still in
// flight would otherwise bring the state back for good.
func (m *Monitor) Forget(model, version string) {
	m.mu.Lock()
	m.forgotten[model+"@"+version] = time.Now()
	ms := m.models[model]
	var vs *versionState
	if ms != nil {
		vs = ms.versions[version]
		delete(ms.versions, version)
	}
	m.mu.Unlock()
	if vs == nil {
		return
	}
	vs.mu.Lock()
	defer vs.mu.Unlock()
	for _, set := range []map[string]*featureState{vs.inputs, vs.outputs} {
		for _, fs := range set {
			m.resetFeature(vs, fs)
		}
	}
}

func (m *Monitor) resetFeature(vs *versionState, fs *featureState) {
	if fs.gauges != nil {
		m.met.deleteFeature(vs.model, vs.version, fs.name)
		fs.gauges = nil
	}
	fs.ref, fs.refSource, fs.pending, fs.win, fs.vsStable = nil, "", nil, nil, false
	fs.evaluated, fs.metrics, fs.value, fs.drifted, fs.dirty = false, Metrics{}, 0, false, 0
	fs.crossing = Alert{} // a state cleared without an alert: the alert log learns it quietly
}

func (fs *featureState) initWindow(cfg Config) {
	fs.win = newWindow(cfg.WindowCount, cfg.WindowAge, fs.ref)
	fs.props = make([]float64, fs.ref.numBins())
	fs.scratch = make([]float64, fs.ref.numBins())
	fs.dirty = 0
}

// Apply adds one event's features and outputs to the windows of its model
// version. Events of failed inferences, and events without a model or
// version, are ignored.
func (m *Monitor) Apply(ev *monitor.Event) {
	if !ev.OK() || ev.Model == "" || ev.Version == "" {
		m.ignored.Add(1)
		return
	}
	ts := ev.TS.UnixNano()
	if ev.TS.IsZero() {
		ts = time.Now().UnixNano()
	}
	vs := m.versionFor(ev.Model, ev.Version)
	if vs == nil { // deleted
		m.ignored.Add(1)
		return
	}
	vs.mu.Lock()
	for name, v := range ev.Features {
		m.addValue(vs, vs.inputs, false, name, v, ts)
	}
	for name, v := range ev.Outputs {
		m.addValue(vs, vs.outputs, true, name, v, ts)
	}
	vs.mu.Unlock()
	if vs.untracked > 0 {
		m.met.untracked.WithLabelValues(vs.model).Add(float64(vs.untracked))
		vs.untracked = 0
	}
	m.applied.Add(1)
}

// addValue adds one JSON value: scalars directly, arrays one element per
// "<name>[i]" feature (flattened row-major, the first MaxElements), and a
// wide tensor's summary as its "<name>.<stat>" and "<name>.c<i>.<stat>"
// series (event.SummarySeries).
func (m *Monitor) addValue(vs *versionState, set map[string]*featureState, output bool, name string, v any, ts int64) {
	if c, ok := scalarCell(v); ok {
		m.addCell(vs, set, output, name, c, ts)
		return
	}
	if event.SummarySeries(name, v, func(series string, f float64) {
		if c, ok := scalarCell(f); ok {
			m.addCell(vs, set, output, series, c, ts)
		}
	}) {
		return
	}
	arr, ok := v.([]any)
	if !ok {
		return // objects and nulls are not features
	}
	i := 0
	m.addArray(vs, set, output, name, arr, &i, ts)
}

// addArray adds the elements of a (nested) array, *i counting the scalars
// seen so far in row-major order.
func (m *Monitor) addArray(vs *versionState, set map[string]*featureState, output bool, name string, arr []any, i *int, ts int64) {
	for _, e := range arr {
		if *i >= m.opts.MaxElements {
			return
		}
		if sub, ok := e.([]any); ok {
			m.addArray(vs, set, output, name, sub, i, ts)
			continue
		}
		// A null keeps its position: element i is always "<name>[i]".
		if c, ok := scalarCell(e); ok {
			names := vs.elemNames[name]
			if len(names) <= *i {
				for len(names) <= *i {
					names = append(names, name+"["+strconv.Itoa(len(names))+"]")
				}
				vs.elemNames[name] = names
			}
			m.addCell(vs, set, output, names[*i], c, ts)
		}
		*i++
	}
}

// scalarCell converts a decoded JSON scalar (or a Go number, for callers of
// Apply that did not go through JSON).
func scalarCell(v any) (cell, bool) {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case string:
		if x == "" {
			return cell{}, false
		}
		return cell{str: x}, true
	case bool:
		return cell{str: strconv.FormatBool(x)}, true
	case float32:
		f = float64(x)
	case int:
		f = float64(x)
	case int64:
		f = float64(x)
	case int32:
		f = float64(x)
	case json.Number:
		g, err := x.Float64()
		if err != nil {
			return cell{}, false
		}
		f = g
	default:
		return cell{}, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return cell{}, false
	}
	return cell{num: f, isNum: true}, true
}

func (m *Monitor) addCell(vs *versionState, set map[string]*featureState, output bool, name string, c cell, ts int64) {
	fs := set[name]
	if fs == nil {
		if len(vs.inputs)+len(vs.outputs) >= maxFeaturesPerVersion {
			vs.untracked++
			return
		}
		fs = &featureState{name: name, output: output}
		set[name] = fs
	}
	if fs.ref == nil {
		fs.pending = append(fs.pending, c)
		if len(fs.pending) >= m.opts.InferCount {
			ref, err := buildFeatureRef(fs.pending, m.opts.MaxCategories)
			if err != nil { // cannot happen: pending holds no missing cells
				m.log.Warn("drift: cannot infer reference", "model", vs.model, "version", vs.version, "feature", name, "err", err)
				fs.pending = fs.pending[:0]
				return
			}
			fs.ref = ref
			fs.refSource = fmt.Sprintf("inferred from first %d events", m.opts.InferCount)
			fs.pending = nil
			fs.initWindow(vs.cfg)
		}
		return
	}
	var bin int
	if fs.ref.numeric {
		v := c.num
		if !c.isNum {
			f, err := strconv.ParseFloat(c.str, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return // a word in a numeric feature: not comparable
			}
			v = f
		}
		if output {
			if len(fs.recent) < m.opts.InferCount {
				fs.recent = append(fs.recent, v)
			} else {
				fs.recent[fs.recentNext] = v
				fs.recentNext = (fs.recentNext + 1) % len(fs.recent)
			}
		}
		bin = fs.ref.binOf(v)
	} else {
		bin = fs.ref.catBin(c.catKey())
	}
	if !fs.win.add(bin, ts) {
		return // older than the window: not part of the present
	}
	fs.dirty++
	if fs.dirty >= m.opts.RecomputeEvery {
		m.recompute(vs, fs)
	}
}

func (m *Monitor) recomputeDirty(vs *versionState) {
	for _, set := range []map[string]*featureState{vs.inputs, vs.outputs} {
		for _, fs := range set {
			if fs.dirty > 0 && fs.win != nil {
				m.recompute(vs, fs)
			}
		}
	}
}

// recompute judges one feature window against its reference. Called with
// vs.mu held.
func (m *Monitor) recompute(vs *versionState, fs *featureState) {
	fs.dirty = 0
	w := fs.win
	if w.n < m.opts.MinCount {
		fs.evaluated = false
		return
	}
	total := float64(w.n)
	for i, c := range w.counts {
		fs.props[i] = c / total
	}
	ref := fs.ref
	mt := Metrics{
		PSI:       psi(fs.props, ref.props),
		TVD:       tvd(fs.props, ref.props),
		Hellinger: hellinger(fs.props, ref.props),
		KL:        klSym(fs.props, ref.props),
	}
	mt.GeneralDrift = (mt.TVD + mt.Hellinger) / 2
	if ref.numeric {
		d, p := ksGrid(ref.refCum, w.fine, ref.n, w.n)
		mt.KS, mt.KSP = &d, &p
	} else {
		p := chi2PValue(w.counts, ref.props, total, fs.scratch)
		mt.Chi2P = &p
	}
	fs.metrics, fs.evaluated = mt, true
	m.judged.Add(1)
	fs.value = mt.value(vs.cfg.Metric)
	if fs.gauges == nil {
		fs.gauges = m.met.featureGauges(vs.model, vs.version, fs.name, ref.numeric)
	}
	fs.gauges.set(&mt)

	cfg := vs.cfg
	switch {
	case !fs.drifted && fs.value >= cfg.Threshold:
		fs.drifted = true
		fs.gauges.drifted.Set(1)
		m.crossed(vs, fs, StateDrifted)
	case fs.drifted && fs.value < cfg.RecoverRatio*cfg.Threshold:
		fs.drifted = false
		fs.gauges.drifted.Set(0)
		m.crossed(vs, fs, StateRecovered)
	}
}

// crossed raises the alert of a crossing judged here. With a shared alert
// log the lease holder's tick goroutine sends it (now, or when this process
// takes the lease), once it is recorded there; otherwise the gate decides.
func (m *Monitor) crossed(vs *versionState, fs *featureState, state string) {
	al := m.alertFor(vs, fs, state)
	if m.alertLog == nil {
		m.alerter.emit(al, vs.cfg.Webhook)
		return
	}
	fs.crossing = al
	m.alerter.remember(al)
	select {
	case m.settleNow <- struct{}{}:
	default:
	}
}

func (m *Monitor) alertFor(vs *versionState, fs *featureState, state string) Alert {
	return Alert{
		Model: vs.model, Version: vs.version, Feature: fs.name, Kind: fs.kind(),
		Metric: vs.cfg.Metric, Value: fs.value, Threshold: vs.cfg.Threshold,
		TS: time.Now().UTC(), State: state, Count: fs.win.n,
	}
}

// Stats reports how many events were applied and how many ignored (failed
// inferences, no model or version) since New.
func (m *Monitor) Stats() (applied, ignored int64) {
	return m.applied.Load(), m.ignored.Load()
}
