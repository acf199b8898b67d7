package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weirhq/weir/internal/lifecycle"
	"github.com/weirhq/weir/internal/retry"
	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/monitor/event"
)

// StatsOptions configure Stats.
type StatsOptions struct {
	// JetStream to read WEIR_EVENTS from (required).
	JetStream jetstream.JetStream
	// Window is how much history is kept and replayed at start. Default 1h.
	Window time.Duration
	// Bucket is the time resolution. Default 10s. Window must be a multiple.
	Bucket time.Duration
	// Decoded, when set, shares the decoding of each message with the
	// process's other event consumers (drift, the archive).
	Decoded *Decoded
	// Now is the clock (tests pin it); default time.Now.
	Now func() time.Time
	// Logger; nil uses slog.Default().
	Logger *slog.Logger
	// Registerer receives weir_stats_untracked_total; nil registers nothing.
	Registerer prometheus.Registerer
}

// Point is one bucket of a route variant's time series. Errors are the
// gateway side's failures (5xx, 429); ClientErrors the callers' own
// mistakes (other 4xx, event.ClientError), counted apart: they are in
// Requests but not in ErrorRate (Errors over the requests that were not
// client errors) nor in the latency percentiles.
type Point struct {
	T            time.Time `json:"t"`
	Requests     int64     `json:"requests"`
	Errors       int64     `json:"errors"`
	ClientErrors int64     `json:"client_errors"`
	RPS          float64   `json:"rps"`
	ErrorRate    float64   `json:"error_rate"`
	P50Ms        float64   `json:"p50_ms"`
	P95Ms        float64   `json:"p95_ms"`
	P99Ms        float64   `json:"p99_ms"`
}

// VariantSeries is the time series of one variant of a route. Shadow traffic
// appears as its own series named "shadow:<model>@<version>", pinned calls
// (which bypass the split) as "pinned:<model>@<version>".
type VariantSeries struct {
	Variant string  `json:"variant"`
	Shadow  bool    `json:"shadow,omitempty"`
	Pinned  bool    `json:"pinned,omitempty"`
	Points  []Point `json:"points"`
}

// Histogram is a coarse distribution: Counts[i] values fell in
// [Edges[i], Edges[i+1]) (the last bin includes its upper edge). Counts are
// placed by a sketch, so a value near an edge may land in the neighbour bin.
type Histogram struct {
	Edges  []float64 `json:"edges"`
	Counts []int64   `json:"counts"`
}

// OutputSummary describes one numeric model output over a time range.
type OutputSummary struct {
	Count     int64     `json:"count"`
	Mean      float64   `json:"mean"`
	Min       float64   `json:"min"`
	Max       float64   `json:"max"`
	Histogram Histogram `json:"histogram"`
}

// VariantSummary is one variant over a time range. Percentiles are within
// about 3% of the exact value (see sketch.go). Errors, ClientErrors and
// ErrorRate are as in Point.
type VariantSummary struct {
	Requests     int64                    `json:"requests"`
	Errors       int64                    `json:"errors"`
	ClientErrors int64                    `json:"client_errors"`
	ErrorRate    float64                  `json:"error_rate"`
	P50Ms        float64                  `json:"p50_ms"`
	P95Ms        float64                  `json:"p95_ms"`
	P99Ms        float64                  `json:"p99_ms"`
	Shadow       bool                     `json:"shadow,omitempty"`
	Pinned       bool                     `json:"pinned,omitempty"`
	Outputs      map[string]OutputSummary `json:"outputs"`
}

// Stats keeps live per-route, per-variant statistics in fixed time buckets,
// fed by its own ordered consumer over every event on WEIR_EVENTS, so every
// gateway process sees the traffic of all of them. Buckets are chosen by the
// event's TS. At start it replays the last Window of the stream.
type Stats struct {
	opts    StatsOptions
	log     *slog.Logger
	nb      int   // buckets in the window
	bsec    int64 // bucket width in seconds
	mu      sync.RWMutex
	routes  map[string]map[string]*series
	applied int64 // events taken in, for tests and readiness
	// untracked counts output values left out past maxOutputSeries.
	untracked prometheus.Counter

	cancel context.CancelFunc
	done   chan struct{}
}

type series struct {
	shadow  bool
	pinned  bool
	buckets []bucket // ring indexed by (start / bucket) % nb
}

type bucket struct {
	start     int64 // unix seconds; 0 means unused
	requests  int64
	errors    int64 // the gateway side's failures
	clientErr int64 // the callers' own 4xx (event.ClientError)
	lat       *latHist
	outputs   map[string]*valueStats
}

// statsEvent is the part of an Event that Stats reads; features are skipped.
type statsEvent struct {
	TS        time.Time      `json:"ts"`
	Route     string         `json:"route"`
	Variant   string         `json:"variant"`
	Model     string         `json:"model"`
	Version   string         `json:"version"`
	Outputs   map[string]any `json:"outputs"`
	LatencyUS int64          `json:"latency_us"`
	Status    int            `json:"status"`
	Shadow    bool           `json:"shadow"`
	Pinned    bool           `json:"pinned"`
}

// statsEventOf is the part of ev Stats reads (TestStatsEventOfCarriesEveryField
// fails when a field of statsEvent is not carried here).
func statsEventOf(ev *Event) statsEvent {
	return statsEvent{TS: ev.TS, Route: ev.Route, Variant: ev.Variant, Model: ev.Model, Version: ev.Version,
		Outputs: ev.Outputs, LatencyUS: ev.LatencyUS, Status: ev.Status, Shadow: ev.Shadow, Pinned: ev.Pinned}
}

// NewStats starts consuming. If the stream does not exist yet (the publisher
// creates it), it keeps retrying in the background; Close stops it.
func NewStats(o StatsOptions) (*Stats, error) {
	if o.JetStream == nil {
		return nil, weirerr.Invalidf("monitor stats: JetStream is nil, want a JetStream context")
	}
	if o.Window <= 0 {
		o.Window = time.Hour
	}
	if o.Bucket <= 0 {
		o.Bucket = 10 * time.Second
	}
	if o.Bucket%time.Second != 0 || o.Window%o.Bucket != 0 {
		return nil, weirerr.Invalidf("monitor stats: Bucket %s must be whole seconds and divide Window %s", o.Bucket, o.Window)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Stats{
		opts:   o,
		log:    o.Logger.With("component", "monitor.stats"),
		nb:     int(o.Window / o.Bucket),
		bsec:   int64(o.Bucket / time.Second),
		routes: make(map[string]map[string]*series),
		cancel: cancel,
		done:   make(chan struct{}),
		untracked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_stats_untracked_total",
			Help: "Output values left out of live statistics because their route variant already keeps 64 output series in that bucket.",
		}),
	}
	if o.Registerer != nil {
		if err := o.Registerer.Register(s.untracked); err != nil {
			cancel()
			return nil, fmt.Errorf("monitor stats: %w", err)
		}
	}
	go s.run(ctx)
	return s, nil
}

// run creates the ordered consumer (retrying until the stream exists) and
// feeds events in until ctx ends. The ordered consumer re-creates itself
// after reconnects, continuing from the last sequence it delivered.
func (s *Stats) run(ctx context.Context) {
	defer close(s.done)
	var cons jetstream.Consumer
	for {
		start := s.opts.Now().Add(-s.opts.Window)
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := s.opts.JetStream.OrderedConsumer(cctx, StreamEvents, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{SubjectEventsPrefix + ">"},
			DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
			OptStartTime:   &start,
		})
		cancel()
		if err == nil {
			cons = c
			break
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			s.log.Warn("events consumer not ready; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry.Jitter(500 * time.Millisecond)): // retry pace, not a wait for an event
		}
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if s.opts.Decoded != nil {
			s.takeShared(m)
			return
		}
		err := EachEvent(m.Headers(), m.Data(), func(_ int, raw []byte) error {
			var ev statsEvent
			if err := json.Unmarshal(raw, &ev); err != nil {
				s.log.Debug("skipping undecodable event", "subject", m.Subject(), "err", err)
				return nil
			}
			s.add(&ev)
			return nil
		})
		if err != nil {
			s.log.Debug("skipping the rest of a damaged event frame", "subject", m.Subject(), "err", err)
		}
	}, jetstream.PullMaxBytes(consumeMaxBytes), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		s.log.Debug("events consumer", "err", err)
	}))
	if err != nil {
		s.log.Error("events consumer failed to start", "err", err)
		return
	}
	<-ctx.Done()
	cc.Stop()
	<-cc.Closed()
}

// takeShared adds the events of m decoded once for every consumer.
func (s *Stats) takeShared(m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		return
	}
	err = s.opts.Decoded.Each(meta.Sequence.Stream, m.Headers(), m.Data(), func(_ int, ev *Event, _ []byte, err error) {
		if err != nil {
			s.log.Debug("skipping undecodable event", "subject", m.Subject(), "err", err)
			return
		}
		se := statsEventOf(ev)
		s.add(&se)
	})
	if err != nil {
		s.log.Debug("skipping the rest of a damaged event frame", "subject", m.Subject(), "err", err)
	}
}

// consumeMaxBytes bounds what a consumer buffers: a message is a frame of
// up to about 64 KiB (or a legacy event of a few hundred bytes), so a count
// of messages says little about memory.
const consumeMaxBytes = 8 << 20

// Close stops the consumer and waits for it.
func (s *Stats) Close(ctx context.Context) error {
	s.cancel()
	return lifecycle.Wait(ctx, "the stats consumer", s.done)
}

// Events returns how many events Stats has taken in (including ones outside
// the window that were then ignored).
func (s *Stats) Events() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.applied
}

func variantKey(ev *statsEvent) string {
	if ev.Shadow {
		return "shadow:" + ev.Model + "@" + ev.Version
	}
	if ev.Pinned {
		return "pinned:" + ev.Model + "@" + ev.Version
	}
	return ev.Variant
}

func (s *Stats) add(ev *statsEvent) {
	ts := ev.TS.Unix()
	now := s.opts.Now().Unix()
	start := ts - mod(ts, s.bsec)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applied++
	// Outside the window (or too far ahead of our clock) it would evict a
	// live bucket: ignore it.
	if ts <= now-int64(s.opts.Window/time.Second) || ts > now+int64(time.Minute/time.Second) {
		return
	}
	vars := s.routes[ev.Route]
	if vars == nil {
		vars = make(map[string]*series)
		s.routes[ev.Route] = vars
	}
	key := variantKey(ev)
	sr := vars[key]
	if sr == nil {
		sr = &series{shadow: ev.Shadow, pinned: ev.Pinned && !ev.Shadow, buckets: make([]bucket, s.nb)}
		vars[key] = sr
	}
	b := &sr.buckets[s.slot(start)]
	if b.start != start {
		if b.start > start {
			return // the slot holds newer data; this event is older than the window
		}
		*b = bucket{start: start}
	}
	b.requests++
	switch {
	case event.ClientError(ev.Status):
		// Counted apart, and out of the latency: a flood of quick refusals
		// must not lower a variant's p99 either.
		b.clientErr++
		return
	case ev.Status < 200 || ev.Status > 299:
		b.errors++
	}
	if b.lat == nil {
		b.lat = new(latHist)
	}
	b.lat.add(ev.LatencyUS)
	for name, v := range ev.Outputs {
		s.addOutput(b, name, v)
	}
}

// maxOutputSeries bounds the output series one route variant keeps per
// bucket (an output's values, or a wide output's summary statistics
// "<name>.mean", "<name>.c0.mean", ...); values of further series are
// ignored and counted in weir_stats_untracked_total.
const maxOutputSeries = 64

func (s *Stats) addOutput(b *bucket, name string, v any) {
	if event.SummarySeries(name, v, func(series string, f float64) { s.addOutput(b, series, f) }) {
		return
	}
	if _, ok := b.outputs[name]; !ok && len(b.outputs) >= maxOutputSeries {
		s.untracked.Add(1)
		return
	}
	switch x := v.(type) {
	case float64:
		outputStats(b, name).add(x)
	case bool:
		if x {
			outputStats(b, name).add(1)
		} else {
			outputStats(b, name).add(0)
		}
	case []any: // a batch or a vector: every element counts
		for _, e := range x {
			switch y := e.(type) {
			case float64, bool, []any:
				s.addOutput(b, name, y)
			}
		}
	}
}

func outputStats(b *bucket, name string) *valueStats {
	if b.outputs == nil {
		b.outputs = make(map[string]*valueStats)
	}
	vs := b.outputs[name]
	if vs == nil {
		vs = new(valueStats)
		b.outputs[name] = vs
	}
	return vs
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

func (s *Stats) slot(start int64) int { return int(mod(start/s.bsec, int64(s.nb))) }

// Timeseries returns, per variant of route (sorted by name), one point per
// bucket from now-since to now, empty buckets included. since is capped at
// the window. An unknown route gives an empty slice.
func (s *Stats) Timeseries(route string, since time.Duration) []VariantSeries {
	if since <= 0 || since > s.opts.Window {
		since = s.opts.Window
	}
	now := s.opts.Now()
	nowSec := now.Unix()
	last := nowSec - mod(nowSec, s.bsec)
	first := now.Add(-since).Unix()
	first -= mod(first, s.bsec)
	if first <= nowSec-int64(s.opts.Window/time.Second) {
		first += s.bsec
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	vars := s.routes[route]
	out := make([]VariantSeries, 0, len(vars))
	for _, name := range sortedKeys(vars) {
		sr := vars[name]
		vs := VariantSeries{Variant: name, Shadow: sr.shadow, Pinned: sr.pinned, Points: make([]Point, 0, (last-first)/s.bsec+1)}
		for t := first; t <= last; t += s.bsec {
			p := Point{T: time.Unix(t, 0).UTC()}
			b := &sr.buckets[s.slot(t)]
			if b.start == t && b.requests > 0 {
				secs := float64(s.bsec)
				if t == last { // the current bucket is still filling
					secs = max(float64(nowSec-t), 1)
				}
				p.Requests, p.Errors, p.ClientErrors = b.requests, b.errors, b.clientErr
				p.RPS = float64(b.requests) / secs
				if served := b.requests - b.clientErr; served > 0 {
					p.ErrorRate = float64(b.errors) / float64(served)
					p.P50Ms = b.lat.quantile(0.50) / 1000
					p.P95Ms = b.lat.quantile(0.95) / 1000
					p.P99Ms = b.lat.quantile(0.99) / 1000
				}
			}
			vs.Points = append(vs.Points, p)
		}
		out = append(out, vs)
	}
	return out
}

// Summary merges the buckets that overlap [from, to] per variant of route.
// Resolution is one bucket: an event in the same bucket as from counts even
// if it is a few seconds older. Canary analysis calls it with the step start
// and now; an unknown route gives an empty map.
func (s *Stats) Summary(route string, from, to time.Time) map[string]VariantSummary {
	lo, hi := s.span(from, to)
	s.mu.RLock()
	defer s.mu.RUnlock()
	vars := s.routes[route]
	out := make(map[string]VariantSummary, len(vars))
	for name, sr := range vars {
		var lat latHist
		sum := VariantSummary{Shadow: sr.shadow, Pinned: sr.pinned}
		for i := range sr.buckets {
			b := &sr.buckets[i]
			if b.start == 0 || b.start < lo || b.start > hi {
				continue
			}
			sum.Requests += b.requests
			sum.Errors += b.errors
			sum.ClientErrors += b.clientErr
			if b.lat != nil {
				lat.merge(b.lat)
			}
		}
		if sum.Requests == 0 {
			continue
		}
		if served := sum.Requests - sum.ClientErrors; served > 0 {
			sum.ErrorRate = float64(sum.Errors) / float64(served)
		}
		sum.P50Ms = lat.quantile(0.50) / 1000
		sum.P95Ms = lat.quantile(0.95) / 1000
		sum.P99Ms = lat.quantile(0.99) / 1000
		outputs := sr.outputs(lo, hi)
		sum.Outputs = make(map[string]OutputSummary, len(outputs))
		for o, vs := range outputs {
			sum.Outputs[o] = OutputSummary{
				Count: vs.count, Mean: vs.sum / float64(vs.count),
				Min: vs.min, Max: vs.max, Histogram: vs.histogram(),
			}
		}
		out[name] = sum
	}
	return out
}

// span is the bucket starts [lo, hi] that Summary merges for [from, to].
func (s *Stats) span(from, to time.Time) (lo, hi int64) {
	lo = from.Unix()
	lo -= mod(lo, s.bsec)
	// Slots without recent traffic may still hold buckets older than the
	// window; never report those.
	if oldest := s.opts.Now().Unix() - int64(s.opts.Window/time.Second); lo <= oldest {
		lo = oldest + 1
	}
	return lo, to.Unix()
}

// AnswerShift is how far one variant's answers (a numeric output) lie from
// another's over the same time range.
type AnswerShift struct {
	// PSI is the population stability index of the variant's values
	// against the base's, over answerGroups groups of about equal share of
	// the base's values.
	PSI       float64 `json:"psi"`
	Count     int64   `json:"count"`      // the variant's values
	BaseCount int64   `json:"base_count"` // the base variant's values
}

// answerGroups is how many groups of the base's values AnswerShift
// compares: quintiles, so that a hundred answers already give a stable
// figure (PSI's noise is about groups/count).
const answerGroups = 5

// AnswerShifts compares the answers of variant with those of base, both of
// route over the same buckets: those that start within [from, to] (unlike
// Summary, not the one from falls in, which holds answers from before
// from), for every numeric output both gave. Because both served the same traffic over the
// same period, a shift in the inputs that both see moves both alike: what
// remains is the difference between the two models. Canary analysis calls
// it with the stable variant as base.
func (s *Stats) AnswerShifts(route, variant, base string, from, to time.Time) map[string]AnswerShift {
	lo, hi := s.span(from, to)
	if time.Unix(lo, 0).Before(from) {
		lo += s.bsec // the bucket from falls in began before it
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	vars := s.routes[route]
	if vars[variant] == nil || vars[base] == nil {
		return nil
	}
	got, want := vars[variant].outputs(lo, hi), vars[base].outputs(lo, hi)
	out := make(map[string]AnswerShift)
	for name, v := range got {
		b := want[name]
		if b == nil || b.count == 0 || v.count == 0 {
			continue
		}
		out[name] = AnswerShift{PSI: sketchPSI(v.sketch, b.sketch), Count: v.count, BaseCount: b.count}
	}
	return out
}

// outputs merges the output sketches of the buckets starting in [lo, hi].
// Called with s.mu held.
func (sr *series) outputs(lo, hi int64) map[string]*valueStats {
	out := make(map[string]*valueStats)
	for i := range sr.buckets {
		b := &sr.buckets[i]
		if b.start == 0 || b.start < lo || b.start > hi {
			continue
		}
		for o, vs := range b.outputs {
			acc := out[o]
			if acc == nil {
				acc = new(valueStats)
				out[o] = acc
			}
			acc.merge(vs)
		}
	}
	return out
}

// sketchPSI is the PSI of sketch got against sketch base, over groups of
// base's bins holding about 1/answerGroups of its values each (a bin is
// never split, so a two-valued output has two groups). Empty groups count
// as half a value, so that the figure stays finite.
func sketchPSI(got, base map[int32]uint32) float64 {
	bins := make([]int32, 0, len(base))
	var total float64
	for bin, c := range base {
		bins = append(bins, bin)
		total += float64(c)
	}
	slices.Sort(bins) // bins are in the order of their values
	// upper[i] bounds group i: halfway between its last bin and the next
	// group's first, so that answers a bin or two away from one of the
	// base's (a hair's difference on a discrete output) fall in its group.
	var upper []int32
	var cum float64
	for i, bin := range bins {
		cum += float64(base[bin])
		if i == len(bins)-1 {
			upper = append(upper, bin)
		} else if cum >= total*float64(len(upper)+1)/answerGroups {
			upper = append(upper, bin+(bins[i+1]-bin)/2)
		}
	}
	group := func(bin int32) int {
		i, _ := slices.BinarySearch(upper, bin)
		return min(i, len(upper)-1) // past the base's largest: the last group
	}
	g, b := make([]float64, len(upper)), make([]float64, len(upper))
	var n float64
	for bin, c := range got {
		g[group(bin)] += float64(c)
		n += float64(c)
	}
	for bin, c := range base {
		b[group(bin)] += float64(c)
	}
	psi := 0.0
	for i := range upper {
		p, q := max(g[i], 0.5)/n, max(b[i], 0.5)/total
		psi += (p - q) * math.Log(p/q)
	}
	return psi
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// String is for logs.
func (v VariantSummary) String() string {
	return fmt.Sprintf("requests=%d errors=%d client_errors=%d p99=%.1fms", v.Requests, v.Errors, v.ClientErrors, v.P99Ms)
}
