package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/weirhq/weir/deploy/api/v1alpha1"
	sdk "github.com/weirhq/weir/sdk/client"
)

// Options configure Run (`weir controller`). Validate fills the defaults.
type Options struct {
	GatewayURL string // the local gateway's admin API, e.g. http://127.0.0.1:8080
	Token      string // admin bearer token

	Namespace string // watched namespace; default $POD_NAMESPACE, else "default"

	LeaderElection   bool          // one controller at a time (on in a cluster)
	LeaderElectionID string        // the Lease name; default weir-controller
	LeaseDuration    time.Duration // default 15s
	RenewDeadline    time.Duration // default 10s
	RetryPeriod      time.Duration // default 2s

	MetricsAddr string // controller metrics; "0" disables; default ":8083" (":8081" is weir serve's gRPC)
	HealthAddr  string // /healthz and /readyz; "0" disables; default ":8082"

	// Autoscaling: the gateway Deployment and how to find and read its pods.
	// An empty Deployment disables the autoscaler.
	Deployment     string
	PodSelector    string        // label selector of the gateway pods; default app.kubernetes.io/name=weir
	MetricsPort    int           // the gateway pods' HTTP port; default 8080
	InFlightMetric string        // default weir_inflight_requests
	RequestsMetric string        // default weir_requests_total
	ScaleInterval  time.Duration // default 15s

	FollowInterval time.Duration // rollout polling and deferred deletes; default 10s
	ResyncInterval time.Duration // compare every WeirRoute with the gateway again; default 1m
	// RouteWatchInterval: list the gateway's routes this often and reconcile
	// at once the WeirRoute of one changed or deleted by hand; default 2s,
	// negative disables.
	RouteWatchInterval time.Duration
	// MaxConcurrentReconciles WeirRoutes are reconciled at once; default 4.
	MaxConcurrentReconciles int

	// Artifact downloads: connect/header timeout (default 15s), stall
	// timeout (default 30s), total bound (default 30m), largest size
	// (default 2 GiB) and where they are streamed (default $TMPDIR).
	FetchConnectTimeout time.Duration
	FetchStallTimeout   time.Duration
	FetchTimeout        time.Duration
	MaxArtifactSize     int64
	TempDir             string

	// LogLevel is debug, info (default) or error; Run logs JSON lines to
	// stderr at that level.
	LogLevel string

	// REST is the API server config; nil reads the in-cluster or kubeconfig one.
	REST *rest.Config
	// Source replaces the pod scraper (tests).
	Source LoadSource

	skipNameValidation bool          // tests run several managers in one process
	retryBase          time.Duration // tests shorten the per-WeirRoute backoff
	retryMax           time.Duration
	// otherNamespaceGrace: how long a WeirRoute of another namespace may
	// wait for a controller there before it is told none manages it
	// (default 30s; tests shorten it).
	otherNamespaceGrace time.Duration
}

// Validate fills defaults and checks o once.
func (o *Options) Validate() error {
	if o.GatewayURL == "" {
		return errors.New("controller: --gateway URL is required")
	}
	if o.Namespace == "" {
		o.Namespace = os.Getenv("POD_NAMESPACE")
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	o.LeaderElectionID = cmpOr(o.LeaderElectionID, "weir-controller")
	if o.LeaseDuration == 0 {
		o.LeaseDuration = 15 * time.Second
	}
	if o.RenewDeadline == 0 {
		o.RenewDeadline = 10 * time.Second
	}
	if o.RetryPeriod == 0 {
		o.RetryPeriod = 2 * time.Second
	}
	o.MetricsAddr = cmpOr(o.MetricsAddr, ":8083")
	o.HealthAddr = cmpOr(o.HealthAddr, ":8082")
	o.PodSelector = cmpOr(o.PodSelector, "app.kubernetes.io/name=weir")
	if _, err := labels.Parse(o.PodSelector); err != nil {
		return fmt.Errorf("controller: pod selector %q: %w", o.PodSelector, err)
	}
	if o.MetricsPort == 0 {
		o.MetricsPort = 8080
	}
	o.InFlightMetric = cmpOr(o.InFlightMetric, "weir_inflight_requests")
	o.RequestsMetric = cmpOr(o.RequestsMetric, "weir_requests_total")
	if o.ScaleInterval == 0 {
		o.ScaleInterval = 15 * time.Second
	}
	if _, err := parseLevel(o.LogLevel); err != nil {
		return err
	}
	return nil
}

// parseLevel maps --log-level to an slog level. logr's V(n) is slog level
// -n, so debug (-4) shows the controller's V(1) lines and client-go's up to
// V(4).
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("controller: --log-level %q: use debug, info or error", s)
}

// NewLogger returns the controller's structured logger: JSON lines to w at
// level (debug, info or error).
func NewLogger(w io.Writer, level string) (logr.Logger, error) {
	lvl, err := parseLevel(level)
	if err != nil {
		return logr.Discard(), err
	}
	return logr.FromSlogHandler(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl})), nil
}

// Scheme returns a scheme with the Kubernetes built-in types and WeirRoute.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err) // static registration: cannot fail at run time
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// Run runs the controller until ctx ends: the WeirRoute reconciler and, when
// opts.Deployment is set, the autoscaler, both under one leader-election Lease.
func Run(ctx context.Context, opts Options) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	log, err := NewLogger(os.Stderr, opts.LogLevel)
	if err != nil {
		return err
	}
	ctrl.SetLogger(log)
	klog.SetLogger(log) // client-go's leader election and reflectors
	cfg := opts.REST
	if cfg == nil {
		if cfg, err = ctrl.GetConfig(); err != nil {
			return fmt.Errorf("controller: Kubernetes API config: %w", err)
		}
	}
	mgr, err := NewManager(cfg, opts)
	if err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// NewManager builds the manager Run starts, with the reconciler and the
// autoscaler added; tests start it themselves.
func NewManager(cfg *rest.Config, opts Options) (manager.Manager, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	leaseDuration, renew, retry := opts.LeaseDuration, opts.RenewDeadline, opts.RetryPeriod
	probe := newGatewayProbe(opts.GatewayURL, max(min(2*time.Second, renew/4), 100*time.Millisecond))
	var lock resourcelock.Interface
	if opts.LeaderElection {
		var err error
		if lock, err = newGatedLock(cfg, opts, probe); err != nil {
			return nil, err
		}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: Scheme(),
		// One namespace is managed (RBAC is a Role there), but WeirRoutes
		// are watched in every namespace (a ClusterRole for them alone),
		// so one created where no controller runs is told so.
		Cache: cache.Options{
			DefaultNamespaces: map[string]cache.Config{opts.Namespace: {}},
			ByObject: map[client.Object]cache.ByObject{
				&v1alpha1.WeirRoute{}: {Namespaces: map[string]cache.Config{cache.AllNamespaces: {}}},
			},
		},
		LeaderElection:                opts.LeaderElection,
		LeaderElectionID:              opts.LeaderElectionID,
		LeaderElectionNamespace:       opts.Namespace,
		LeaderElectionReleaseOnCancel: true,
		// The lease is held only while the local gateway answers.
		LeaderElectionResourceLockInterface: lock,
		LeaseDuration:                       &leaseDuration,
		RenewDeadline:                       &renew,
		RetryPeriod:                         &retry,
		Metrics:                             metricsserver.Options{BindAddress: opts.MetricsAddr},
		HealthProbeBindAddress:              disabled(opts.HealthAddr),
		Controller:                          config.Controller{SkipNameValidation: &opts.skipNameValidation},
	})
	if err != nil {
		return nil, fmt.Errorf("controller: new manager: %w", err)
	}
	if opts.HealthAddr != "0" {
		if err := mgr.AddHealthzCheck("ping", func(_ *http.Request) error { return nil }); err != nil {
			return nil, err
		}
		// Not ready while the local gateway is unreachable: this controller
		// then neither holds nor takes the lease. /healthz stays up (a
		// restart would not bring the gateway back, and models may take
		// minutes to load before it answers).
		if err := mgr.AddReadyzCheck("gateway", func(req *http.Request) error { return probe.check(req.Context()) }); err != nil {
			return nil, err
		}
	}

	rec, err := NewReconciler(ReconcilerConfig{
		Gateway:                 sdk.New(opts.GatewayURL, opts.Token),
		Client:                  mgr.GetClient(),
		Recorder:                loggingRecorder{mgr.GetEventRecorder("weir-controller"), mgr.GetLogger().WithName("weirroute")},
		Namespace:               opts.Namespace,
		OtherNamespaceGrace:     opts.otherNamespaceGrace,
		FollowInterval:          opts.FollowInterval,
		ResyncInterval:          opts.ResyncInterval,
		RouteWatchInterval:      opts.RouteWatchInterval,
		MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
		ConnectTimeout:          opts.FetchConnectTimeout,
		StallTimeout:            opts.FetchStallTimeout,
		FetchTimeout:            opts.FetchTimeout,
		MaxArtifactSize:         opts.MaxArtifactSize,
		TempDir:                 opts.TempDir,
		RetryBase:               opts.retryBase,
		RetryMax:                opts.retryMax,
	})
	if err != nil {
		return nil, err
	}
	if err := rec.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("controller: set up the WeirRoute reconciler: %w", err)
	}

	if opts.Deployment != "" {
		src := opts.Source
		if src == nil {
			sel, _ := labels.Parse(opts.PodSelector) // checked in Validate
			src = &PodScraper{
				Reader: mgr.GetAPIReader(), Namespace: opts.Namespace, Selector: sel, Port: opts.MetricsPort,
				InFlightMetric: opts.InFlightMetric, RequestsMetric: opts.RequestsMetric,
			}
		}
		as, err := NewAutoscaler(AutoscalerConfig{
			Client: mgr.GetClient(), Recorder: loggingRecorder{mgr.GetEventRecorder("weir-autoscaler"), mgr.GetLogger().WithName("autoscaler")}, Source: src,
			Namespace: opts.Namespace, Deployment: opts.Deployment, Interval: opts.ScaleInterval,
		})
		if err != nil {
			return nil, err
		}
		if err := mgr.Add(as); err != nil {
			return nil, fmt.Errorf("controller: add the autoscaler: %w", err)
		}
	}
	return mgr, nil
}

// loggingRecorder writes every Event to the log as well, so that what the
// controller does is in its log without a second set of messages to keep.
type loggingRecorder struct {
	EventRecorder
	log logr.Logger
}

func (l loggingRecorder) Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	l.EventRecorder.Eventf(regarding, related, eventtype, reason, action, note, args...)
	kv := []any{"reason", reason, "action", action}
	if o, ok := regarding.(client.Object); ok {
		kv = append(kv, "object", o.GetNamespace()+"/"+o.GetName())
	}
	msg := fmt.Sprintf(note, args...)
	if eventtype == corev1.EventTypeWarning {
		l.log.Info("warning: "+msg, kv...)
		return
	}
	l.log.Info(msg, kv...)
}

func disabled(addr string) string {
	if addr == "0" {
		return ""
	}
	return addr
}
