package drift

import (
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/monitor"
)

// Kinds of feature, as reported in FeatureDrift.Kind.
const (
	KindNumeric     = "numeric"
	KindCategorical = "categorical"
	KindOutput      = "output"
)

// Config is the drift policy of one model; the zero value of a field means
// its default. It is a plain value: SetConfig swaps it whole.
type Config struct {
	// Metric is the decision metric: psi (default), ks, tvd, hellinger, kl or
	// general_drift.
	Metric string `json:"metric,omitempty"`
	// Threshold on Metric at which a feature is drifted (default 0.25 for psi,
	// 0.5 for general_drift, 0.1 for ks, 0.3 for tvd and hellinger, 0.5 for kl).
	Threshold float64 `json:"threshold,omitempty"`
	// RecoverRatio: a drifted feature recovers below RecoverRatio·Threshold
	// (default 0.8; must be in (0,1]).
	RecoverRatio float64 `json:"recover_ratio,omitempty"`
	// WindowCount and WindowAge bound each feature window (defaults 1000, 5m).
	WindowCount int           `json:"window_count,omitempty"`
	WindowAge   time.Duration `json:"window_age,omitempty"`
	// Webhook, when set, receives every alert of the model as a JSON POST.
	Webhook string `json:"webhook,omitempty"`
}

var defaultThresholds = map[string]float64{
	MetricPSI: 0.25, MetricGeneralDrift: 0.5, MetricKS: 0.1,
	MetricTVD: 0.3, MetricHellinger: 0.3, MetricKL: 0.5,
}

// withDefaults fills zero fields from base (the monitor's default config)
// and then from the package defaults, and validates the result.
func (c Config) withDefaults(base Config) (Config, error) {
	if c.Metric == "" {
		c.Metric = base.Metric
	}
	if c.Metric == "" {
		c.Metric = MetricPSI
	}
	if !decisionMetrics[c.Metric] {
		return c, weirerr.Invalidf("drift metric %q is not supported: expected one of psi, ks, tvd, hellinger, kl, general_drift", c.Metric)
	}
	if c.Threshold == 0 && base.Metric == c.Metric {
		c.Threshold = base.Threshold
	}
	if c.Threshold == 0 {
		c.Threshold = defaultThresholds[c.Metric]
	}
	if c.Threshold < 0 {
		return c, weirerr.Invalidf("drift threshold %v is negative: expected a positive number", c.Threshold)
	}
	if c.RecoverRatio == 0 {
		c.RecoverRatio = base.RecoverRatio
	}
	if c.RecoverRatio == 0 {
		c.RecoverRatio = 0.8
	}
	if c.RecoverRatio < 0 || c.RecoverRatio > 1 {
		return c, weirerr.Invalidf("drift recover_ratio %v is out of range: expected a number in (0, 1]", c.RecoverRatio)
	}
	if c.WindowCount == 0 {
		c.WindowCount = base.WindowCount
	}
	if c.WindowCount == 0 {
		c.WindowCount = 1000
	}
	if c.WindowCount < 2 || c.WindowCount > 1_000_000 {
		return c, weirerr.Invalidf("drift window_count %d is out of range: expected 2 to 1000000", c.WindowCount)
	}
	if c.WindowAge == 0 {
		c.WindowAge = base.WindowAge
	}
	if c.WindowAge == 0 {
		c.WindowAge = 5 * time.Minute
	}
	if c.WindowAge < 0 {
		return c, weirerr.Invalidf("drift window_age %v is negative: expected a positive duration", c.WindowAge)
	}
	if c.Webhook != "" {
		u, err := url.Parse(c.Webhook)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c, weirerr.Invalidf("drift webhook %q is not an http(s) URL", c.Webhook)
		}
	}
	return c, nil
}

// Options configure a Monitor. Zero fields take the defaults given.
type Options struct {
	// JS is the JetStream context events are consumed from and alerts
	// published on (through JS.Conn()). Without it, Start fails and alerts are
	// only logged and kept in memory; Apply still works.
	JS jetstream.JetStream
	// Stream and FilterSubject: where events come from (defaults
	// monitor.StreamEvents and "weir.events.>").
	Stream        string
	FilterSubject string
	// Decoded, when set, shares the decoding of each event message with the
	// process's other event consumers (Stats, the archive).
	Decoded *monitor.Decoded
	// Durable is the durable consumer name (default "weir-drift"). Gateway
	// processes sharing one durable share the events between them.
	Durable string
	// DeliverAll makes a newly created durable consumer start at the
	// beginning of the stream instead of at new events. An existing durable
	// always resumes where it stopped.
	DeliverAll bool

	// Default is the policy of models without SetConfig.
	Default Config

	// InferCount: a feature without an uploaded reference takes its first
	// InferCount values as reference (default 1000).
	InferCount int
	// MinCount: a window with fewer values is not judged (default 100).
	MinCount int
	// RecomputeEvery and RecomputeInterval: a feature's statistics are
	// recomputed after RecomputeEvery new values (default 250) or at the next
	// RecomputeInterval tick (default 1s), whichever comes first.
	RecomputeEvery    int
	RecomputeInterval time.Duration
	// MaxCategories per categorical feature (default 50), MaxElements per
	// array-valued feature or output (default 16).
	MaxCategories int
	MaxElements   int

	// RecentAlerts is how many alerts RecentAlerts can return (default 100).
	RecentAlerts int
	// WebhookTimeout bounds each webhook POST (default 5s); WebhookQueue is how
	// many alerts may wait for delivery before new ones are dropped (default 64).
	WebhookTimeout time.Duration
	WebhookQueue   int
	// AlertGate, when set, says whether this process holds the alert
	// lease. Gateways sharing one NATS each judge every event, and give the
	// gate to the one holding a lease, so a crossing raises one alert
	// cluster-wide. With JS set too, the holder records each crossing it
	// publishes in AlertBucket and publishes, on taking the lease, the
	// crossings no one recorded (its predecessor died first); others keep
	// their alerts for RecentAlerts only (docs/rationale.md, "One alert per
	// crossing").
	AlertGate func() bool

	// Registerer receives the weir_drift_* metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Stream == "" {
		o.Stream = monitor.StreamEvents
	}
	if o.FilterSubject == "" {
		o.FilterSubject = monitor.SubjectEventsPrefix + ">"
	}
	if o.Durable == "" {
		o.Durable = "weir-drift"
	}
	def, err := o.Default.withDefaults(Config{})
	if err != nil {
		return o, fmt.Errorf("drift default config: %w", err)
	}
	o.Default = def
	setDefault(&o.InferCount, 1000)
	setDefault(&o.MinCount, 100)
	setDefault(&o.RecomputeEvery, 250)
	setDefault(&o.MaxCategories, defaultMaxCategories)
	setDefault(&o.MaxElements, 16)
	setDefault(&o.RecentAlerts, 100)
	setDefault(&o.WebhookQueue, 64)
	if o.RecomputeInterval == 0 {
		o.RecomputeInterval = time.Second
	}
	if o.WebhookTimeout == 0 {
		o.WebhookTimeout = 5 * time.Second
	}
	for name, v := range map[string]int{
		"InferCount": o.InferCount, "MinCount": o.MinCount, "RecomputeEvery": o.RecomputeEvery,
		"MaxCategories": o.MaxCategories, "MaxElements": o.MaxElements, "RecentAlerts": o.RecentAlerts,
		"WebhookQueue": o.WebhookQueue,
	} {
		if v < 1 {
			return o, weirerr.Invalidf("drift option %s is %d: expected a positive number", name, v)
		}
	}
	if o.MaxCategories > 60000 {
		return o, weirerr.Invalidf("drift option MaxCategories is %d: expected at most 60000", o.MaxCategories)
	}
	if o.RecomputeInterval < 0 || o.WebhookTimeout < 0 {
		return o, weirerr.Invalidf("drift options RecomputeInterval and WebhookTimeout must be positive durations")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

func setDefault(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}
