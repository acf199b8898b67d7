package drift

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/internal/lifecycle"
	"github.com/weirhq/weir/internal/weirerr"
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

// Stats reports how many events were applied and how many ignored (failed
// inferences, no model or version) since New.
func (m *Monitor) Stats() (applied, ignored int64) {
	return m.applied.Load(), m.ignored.Load()
}
