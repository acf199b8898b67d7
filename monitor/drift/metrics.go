package drift

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weirhq/weir/internal/promx"
)

// metrics are the weir_drift_* collectors. They always exist; they are only
// exported when Options.Registerer is set.
type metrics struct {
	score          *prometheus.GaugeVec
	drifted        *prometheus.GaugeVec
	alerts         *prometheus.CounterVec
	alertChecks    prometheus.Counter
	webhookFailure *prometheus.CounterVec
	untracked      *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		score: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_drift_score",
			Help: "Drift statistic of a feature window against its reference, by metric (psi, ks, ks_p, tvd, hellinger, kl, general_drift, chi2_p).",
		}, []string{"model", "version", "feature", "metric"}),
		drifted: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_drift_drifted",
			Help: "1 while a feature is drifted under its model's decision metric and threshold, else 0.",
		}, []string{"model", "version", "feature"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_drift_alerts_total",
			Help: "Drift alerts raised (drifted and recovered).",
		}, []string{"model"}),
		alertChecks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_drift_alert_checks_total",
			Help: "Features the drift alert lease holder checked against the shared alert log (weir-drift-alerts), whether or not their crossing needed an alert.",
		}),
		webhookFailure: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_drift_webhook_failures_total",
			Help: "Drift alert webhook deliveries that failed or were dropped because the queue was full.",
		}, []string{"model"}),
		untracked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_drift_untracked_total",
			Help: "Values ignored by drift because their version already tracks its cap of 512 series (features, array elements, tensor summary statistics).",
		}, []string{"model"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.score, err = promx.Register(reg, m.score); err != nil {
		return nil, err
	}
	if m.drifted, err = promx.Register(reg, m.drifted); err != nil {
		return nil, err
	}
	if m.alerts, err = promx.Register(reg, m.alerts); err != nil {
		return nil, err
	}
	if m.webhookFailure, err = promx.Register(reg, m.webhookFailure); err != nil {
		return nil, err
	}
	if m.untracked, err = promx.Register(reg, m.untracked); err != nil {
		return nil, err
	}
	if m.alertChecks, err = promx.Register(reg, m.alertChecks); err != nil {
		return nil, err
	}
	return m, nil
}

// featureGauges caches one feature's gauge children so a recompute does not
// look labels up.
type featureGauges struct {
	psi, tvd, hellinger, kl, general prometheus.Gauge
	ks, ksp, chi2p                   prometheus.Gauge // nil when not applicable
	drifted                          prometheus.Gauge
}

func (m *metrics) featureGauges(model, version, feature string, numeric bool) *featureGauges {
	g := func(metric string) prometheus.Gauge {
		return m.score.WithLabelValues(model, version, feature, metric)
	}
	fg := &featureGauges{
		psi: g(MetricPSI), tvd: g(MetricTVD), hellinger: g(MetricHellinger), kl: g(MetricKL),
		general: g(MetricGeneralDrift),
		drifted: m.drifted.WithLabelValues(model, version, feature),
	}
	if numeric {
		fg.ks, fg.ksp = g(MetricKS), g(MetricKSP)
	} else {
		fg.chi2p = g(MetricChi2P)
	}
	return fg
}

func (fg *featureGauges) set(mt *Metrics) {
	fg.psi.Set(mt.PSI)
	fg.tvd.Set(mt.TVD)
	fg.hellinger.Set(mt.Hellinger)
	fg.kl.Set(mt.KL)
	fg.general.Set(mt.GeneralDrift)
	if fg.ks != nil && mt.KS != nil {
		fg.ks.Set(*mt.KS)
		fg.ksp.Set(*mt.KSP)
	}
	if fg.chi2p != nil && mt.Chi2P != nil {
		fg.chi2p.Set(*mt.Chi2P)
	}
}

func (m *metrics) deleteFeature(model, version, feature string) {
	for _, metric := range []string{MetricPSI, MetricTVD, MetricHellinger, MetricKL, MetricGeneralDrift, MetricKS, MetricKSP, MetricChi2P} {
		m.score.DeleteLabelValues(model, version, feature, metric)
	}
	m.drifted.DeleteLabelValues(model, version, feature)
}
