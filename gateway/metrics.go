package gateway

import (
	"strconv"
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
	l := prometheus.Labels{"model": model, "version": version}
	m.requests.DeletePartialMatch(l)
	m.latency.DeletePartialMatch(l)
}

func (m *metrics) observe(route, variant, model, version string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, variant, model, version, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(route, variant, model, version).Observe(d.Seconds())
}
