package plugins

import (
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
	logDropped *prometheus.CounterVec
}

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
		logDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_plugin_log_dropped_total",
			Help: "Guest log lines (log import, stdout, stderr) dropped by the rate limit.",
		}, []string{"plugin", "version"}),
	}
	var err error
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
	logDropped prometheus.Counter
}

func (m *metrics) forPlugin(name, version string) pluginMetrics {
	pm := pluginMetrics{
		parent:     m,
		name:       name,
		ver:        version,
		calls:      m.calls.WithLabelValues(name, version),
		duration:   m.duration.WithLabelValues(name, version),
		logDropped: m.logDropped.WithLabelValues(name, version),
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
	pm.parent.logDropped.DeleteLabelValues(pm.name, pm.ver)
	for k := failGuest; k < numFailures; k++ {
		pm.parent.failures.DeleteLabelValues(pm.name, pm.ver, failureNames[k])
	}
}
