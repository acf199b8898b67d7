package controller

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// The controller's own metrics, served with controller-runtime's
// (controller_runtime_reconcile_total, ..._errors_total, workqueue depth and
// latency) on --metrics-addr.
var (
	metricFetchBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "weir_controller_artifact_fetch_bytes_total",
		Help: "Bytes of model, reference and plugin artifacts downloaded from their URLs.",
	})
	metricPushes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_controller_artifact_pushes_total",
		Help: "Artifacts pushed to the gateway, by kind (model, reference, plugin) and result (ok, bad, error).",
	}, []string{"kind", "result"})
	metricRouteCorrections = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "weir_controller_route_corrections_total",
		Help: "Times the gateway's route differed from the declared one (changed or deleted by hand) and was set again.",
	})
	metricScaleDecisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_controller_scaling_decisions_total",
		Help: "Autoscaler decisions, by direction (up, down, none).",
	}, []string{"direction"})
	metricDesiredReplicas = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "weir_controller_desired_replicas",
		Help: "The replica count the autoscaler last decided for the gateway Deployment.",
	})
)

func init() {
	ctrlmetrics.Registry.MustRegister(metricFetchBytes, metricPushes, metricRouteCorrections, metricScaleDecisions, metricDesiredReplicas)
}
