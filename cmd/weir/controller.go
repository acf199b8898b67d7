package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/weirhq/weir/deploy/controller"
)

func init() { extraCommands = append(extraCommands, newControllerCmd) }

func newControllerCmd(cf *clientFlags) *cobra.Command {
	var o controller.Options
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the Kubernetes sidecar controller: reconcile WeirRoutes into the local gateway, and autoscale it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Token, _ = cf.token()
			if err := o.Validate(); err != nil {
				return err
			}
			return controller.Run(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.GatewayURL, "gateway", "http://127.0.0.1:8080", "the gateway beside this controller")
	f.StringVar(&o.Namespace, "namespace", "", "namespace to watch (default $POD_NAMESPACE, else default)")
	f.BoolVar(&o.LeaderElection, "leader-elect", false, "elect one autoscaling controller through a Lease")
	f.StringVar(&o.LeaderElectionID, "leader-election-id", "weir-controller", "name of the Lease")
	f.StringVar(&o.Deployment, "deployment", "", "gateway Deployment to scale (empty: no autoscaling)")
	f.StringVar(&o.PodSelector, "pod-selector", "app.kubernetes.io/name=weir", "label selector of the gateway pods whose load is read")
	f.IntVar(&o.MetricsPort, "metrics-port", 8080, "port of the gateway pods' /metrics")
	f.StringVar(&o.InFlightMetric, "inflight-metric", "weir_inflight_requests", "gauge of requests in flight")
	f.StringVar(&o.RequestsMetric, "requests-metric", "weir_requests_total", "counter of requests")
	f.StringVar(&o.MetricsAddr, "metrics-addr", ":8083", "the controller's own metrics address (0: off)")
	f.StringVar(&o.HealthAddr, "health-addr", ":8082", "the controller's health probe address (0: off)")
	f.StringVar(&o.LogLevel, "log-level", "info", "log level: debug, info or error (JSON lines on stderr)")
	f.IntVar(&o.MaxConcurrentReconciles, "max-concurrent-reconciles", 4, "WeirRoutes reconciled at once")
	f.DurationVar(&o.ResyncInterval, "resync-interval", time.Minute, "compare every WeirRoute with the gateway this often (a route changed by hand is set back)")
	f.DurationVar(&o.RouteWatchInterval, "route-watch-interval", 2*time.Second, "list the gateway's routes this often; a route changed or deleted by hand is set back at once (negative: only at each resync)")
	f.DurationVar(&o.FetchConnectTimeout, "fetch-connect-timeout", 15*time.Second, "artifact download: connect, TLS and response-header timeout")
	f.DurationVar(&o.FetchStallTimeout, "fetch-stall-timeout", 30*time.Second, "artifact download: abort when no byte arrives for this long")
	f.DurationVar(&o.FetchTimeout, "fetch-timeout", 30*time.Minute, "artifact download and push: total bound")
	f.Int64Var(&o.MaxArtifactSize, "max-artifact-size", 2<<30, "largest artifact in bytes (keep it at most the gateway's --max-upload)")
	f.StringVar(&o.TempDir, "temp-dir", "", "where downloads are streamed (default $TMPDIR); give it room for the largest artifact")
	return cmd
}
