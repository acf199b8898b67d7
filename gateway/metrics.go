package gateway

import (
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's own request metrics; the parts it wires register
// theirs on the same registry.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	inflight prometheus.Gauge
	rejected prometheus.Counter

	pluginSkips   *prometheus.CounterVec
	shadow        *prometheus.CounterVec
	shadowDropped prometheus.Counter
	panics        prometheus.Counter

	// mu guards series, the requests and latency series observe has used:
	// finding them through the vectors by label values costs more than the
	// observations.
	mu     sync.RWMutex
	series map[seriesKey]requestSeries
}

// seriesKey is the labels of one request series.
type seriesKey struct {
	route, variant, model, version string
	code                           int
}

type requestSeries struct {
	requests prometheus.Counter
	latency  prometheus.Observer
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_requests_total",
			Help: "Inference requests by route, variant, model, version and HTTP status code.",
		}, []string{"route", "variant", "model", "version", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "weir_request_duration_seconds",
			Help:    "Inference latency in the gateway, from request to response.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "variant", "model", "version"}),
		series: make(map[seriesKey]requestSeries),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weir_inflight_requests",
			Help: "Inference requests being served now.",
		}),
	}
	m.rejected = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "weir_requests_rejected_total",
		Help: "Inference requests refused with 429 because --max-inflight were being served.",
	})
	m.pluginSkips = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_plugin_skipped_total",
		Help: "Plugin failures skipped because the route marks the plugin on_error: skip.",
	}, []string{"route", "plugin"})
	m.shadow = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_shadow_requests_total",
		Help: "Mirrored (shadow) requests by route and status code.",
	}, []string{"route", "code"})
	m.shadowDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "weir_shadow_dropped_total",
		Help: "Shadow requests not sent because too many were in flight.",
	})
	m.panics = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "weir_panics_total",
		Help: "Panics recovered while serving requests (each answered 500 and logged with its request id).",
	})
	reg.MustRegister(m.requests, m.latency, m.inflight, m.rejected, m.pluginSkips, m.shadow, m.shadowDropped, m.panics)
	return m
}

// forget drops the series of a deleted model version.
func (m *metrics) forget(model, version string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	maps.DeleteFunc(m.series, func(k seriesKey, _ requestSeries) bool { return k.model == model && k.version == version })
	l := prometheus.Labels{"model": model, "version": version}
	m.requests.DeletePartialMatch(l)
	m.latency.DeletePartialMatch(l)
}

func (m *metrics) observe(route, variant, model, version string, code int, d time.Duration) {
	k := seriesKey{route, variant, model, version, code}
	m.mu.RLock()
	s, ok := m.series[k]
	m.mu.RUnlock()
	if !ok {
		s = m.resolve(k)
	}
	s.requests.Inc()
	s.latency.Observe(d.Seconds())
}

// resolve finds k's series in the vectors and keeps them. It holds mu
// while it does, so that a forget cannot delete them in between and leave
// series here that are no longer exported.
func (m *metrics) resolve(k seriesKey) requestSeries {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.series[k]; ok {
		return s
	}
	s := requestSeries{
		requests: m.requests.WithLabelValues(k.route, k.variant, k.model, k.version, strconv.Itoa(k.code)),
		latency:  m.latency.WithLabelValues(k.route, k.variant, k.model, k.version),
	}
	m.series[k] = s
	return s
}
