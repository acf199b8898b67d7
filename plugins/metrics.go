package plugins

import (
	"math"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weirhq/weir/internal/promx"
)

// metrics are the host's Prometheus collectors, labelled by plugin and
// version. Each plugin version resolves its label values once at load
// (pluginMetrics), so a call does not hash labels or allocate.
type metrics struct {
	calls      *prometheus.CounterVec
	failures   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	wait       *prometheus.HistogramVec
	instances  *prometheus.GaugeVec
	logDropped *prometheus.CounterVec

	// Series plugins report through the metric import.
	guestCount   *prometheus.CounterVec
	guestValue   *prometheus.HistogramVec
	guestDropped *prometheus.CounterVec
}

// Bounds on the metric import: the names one plugin version may use, and
// their form, so a plugin cannot blow up the gateway's series.
const (
	maxGuestMetrics    = 16
	maxGuestMetricName = 40
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_plugin_calls_total",
			Help: "Plugin calls, by plugin and version.",
		}, []string{"plugin", "version"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_plugin_failures_total",
			Help: "Failed plugin calls by kind: guest_error, bad_output, deadline, memory, trap, overload, unloaded.",
		}, []string{"plugin", "version", "kind"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "weir_plugin_call_duration_seconds",
			Help:    "Time a plugin call took, waiting for an instance included.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 11), // 1µs .. ~1s
		}, []string{"plugin", "version"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "weir_plugin_instance_wait_seconds",
			Help:    "Time a plugin call waited for a free instance (a busy pool), apart from its own deadline.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 11), // 1µs .. ~1s
		}, []string{"plugin", "version"}),
		instances: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_plugin_instances",
			Help: "Instances of a plugin version in existence (idle, in a call or being created): one at load, more as concurrent calls ask, up to the pool size, and fewer again as instances stay free for a minute.",
		}, []string{"plugin", "version"}),
		logDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_plugin_log_dropped_total",
			Help: "Guest log lines (log import, stdout, stderr) dropped by the rate limit.",
		}, []string{"plugin", "version"}),
	}
	m.guestCount = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_plugin_metric_total",
		Help: "Counts a plugin reports through the metric import (kind 0), by plugin, version and name.",
	}, []string{"plugin", "version", "name"})
	m.guestValue = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "weir_plugin_metric_value",
		Help:    "Values a plugin observes through the metric import (kind 1), by plugin, version and name.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 12), // 0.001 .. ~4200
	}, []string{"plugin", "version", "name"})
	m.guestDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_plugin_metric_dropped_total",
		Help: "Metric import calls refused: a bad name, more than 16 names per plugin version, a bad kind or value.",
	}, []string{"plugin", "version"})
	var err error
	if m.guestCount, err = promx.Register(reg, m.guestCount); err != nil {
		return nil, err
	}
	if m.guestValue, err = promx.Register(reg, m.guestValue); err != nil {
		return nil, err
	}
	if m.guestDropped, err = promx.Register(reg, m.guestDropped); err != nil {
		return nil, err
	}
	m.calls, err = promx.Register(reg, m.calls)
	if err != nil {
		return nil, err
	}
	if m.failures, err = promx.Register(reg, m.failures); err != nil {
		return nil, err
	}
	if m.duration, err = promx.Register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.wait, err = promx.Register(reg, m.wait); err != nil {
		return nil, err
	}
	if m.instances, err = promx.Register(reg, m.instances); err != nil {
		return nil, err
	}
	if m.logDropped, err = promx.Register(reg, m.logDropped); err != nil {
		return nil, err
	}
	return m, nil
}

type pluginMetrics struct {
	parent     *metrics
	name, ver  string
	calls      prometheus.Counter
	failures   [numFailures]prometheus.Counter
	duration   prometheus.Observer
	wait       prometheus.Observer
	instances  prometheus.Gauge
	logDropped prometheus.Counter
	guest      *guestMetrics
}

// guestMetrics are one plugin version's series from the metric import,
// created on first use of a name.
type guestMetrics struct {
	parent    *metrics
	name, ver string
	dropped   prometheus.Counter

	mu     sync.Mutex
	byName map[string]*guestMetric
}

type guestMetric struct {
	count prometheus.Counter
	value prometheus.Observer
}

// Kinds of the metric import.
const (
	metricCount   = 0
	metricObserve = 1
)

// record serves one metric import call. It allocates only the first time
// a name is seen.
func (g *guestMetrics) record(kind int32, name []byte, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) || (kind == metricCount && v < 0) || (kind != metricCount && kind != metricObserve) {
		g.dropped.Inc()
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	m, ok := g.byName[string(name)]
	if !ok {
		if !validMetricName(name) || len(g.byName) >= maxGuestMetrics {
			g.dropped.Inc()
			return
		}
		m = &guestMetric{}
		g.byName[string(name)] = m
	}
	if kind == metricCount {
		if m.count == nil {
			m.count = g.parent.guestCount.WithLabelValues(g.name, g.ver, string(name))
		}
		m.count.Add(v)
		return
	}
	if m.value == nil {
		m.value = g.parent.guestValue.WithLabelValues(g.name, g.ver, string(name))
	}
	m.value.Observe(v)
}

// validMetricName: a lower-case letter, then up to 39 of a-z 0-9 _.
func validMetricName(b []byte) bool {
	if len(b) == 0 || len(b) > maxGuestMetricName || b[0] < 'a' || b[0] > 'z' {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func (m *metrics) forPlugin(name, version string) pluginMetrics {
	pm := pluginMetrics{
		parent:     m,
		name:       name,
		ver:        version,
		calls:      m.calls.WithLabelValues(name, version),
		duration:   m.duration.WithLabelValues(name, version),
		wait:       m.wait.WithLabelValues(name, version),
		instances:  m.instances.WithLabelValues(name, version),
		logDropped: m.logDropped.WithLabelValues(name, version),
		guest: &guestMetrics{parent: m, name: name, ver: version, byName: map[string]*guestMetric{},
			dropped: m.guestDropped.WithLabelValues(name, version)},
	}
	for k := failGuest; k < numFailures; k++ {
		pm.failures[k] = m.failures.WithLabelValues(name, version, failureNames[k])
	}
	return pm
}

// delete drops the plugin version's series once it is unloaded.
func (pm pluginMetrics) delete() {
	pm.parent.calls.DeleteLabelValues(pm.name, pm.ver)
	pm.parent.duration.DeleteLabelValues(pm.name, pm.ver)
	pm.parent.wait.DeleteLabelValues(pm.name, pm.ver)
	pm.parent.instances.DeleteLabelValues(pm.name, pm.ver)
	pm.parent.logDropped.DeleteLabelValues(pm.name, pm.ver)
	pm.parent.guestDropped.DeleteLabelValues(pm.name, pm.ver)
	own := prometheus.Labels{"plugin": pm.name, "version": pm.ver}
	pm.parent.guestCount.DeletePartialMatch(own)
	pm.parent.guestValue.DeletePartialMatch(own)
	for k := failGuest; k < numFailures; k++ {
		pm.parent.failures.DeleteLabelValues(pm.name, pm.ver, failureNames[k])
	}
}
