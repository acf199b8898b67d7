package features

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	ingested    *prometheus.CounterVec // by set: events applied to aggregates
	rejected    *prometheus.CounterVec // by set, reason
	cacheHits   prometheus.Counter
	cacheMisses prometheus.Counter
	writes      prometheus.Counter // feature objects written to KV
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		ingested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_features_events_ingested_total",
			Help: "Raw events applied to a feature set's aggregates.",
		}, []string{"set"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_features_rejected_total",
			Help: "Raw events rejected as malformed, by feature set and reason.",
		}, []string{"set", "reason"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_features_cache_hits_total",
			Help: "Feature reads served from the in-process cache.",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_features_cache_misses_total",
			Help: "Feature reads that went to the KV bucket.",
		}),
		writes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_features_store_writes_total",
			Help: "Entity feature objects written to the KV bucket.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.ingested, m.rejected, m.cacheHits, m.cacheMisses, m.writes} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
