package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/weirhq/weir/deploy/api/v1alpha1"
	"github.com/weirhq/weir/internal/clip"
)

// PodLoad is one gateway pod's load metrics at one moment.
type PodLoad struct {
	Pod           string
	InFlight      float64 // the in-flight requests gauge
	RequestsTotal float64 // the requests counter (monotonic)
	At            time.Time
	// NotReady: the pod exists but is pending or not ready (not read).
	NotReady bool
	// Missing: the pod is ready but its metrics could not be read.
	Missing bool
	// InFlightAbsent, RequestsAbsent: the pod's /metrics was read but did
	// not hold that metric (renamed, or not exported yet): Missing for a
	// policy on it, never zero load.
	InFlightAbsent, RequestsAbsent bool
}

// LoadSource reports every gateway pod of the Deployment (deleted and failed
// ones left out): the load of those it could read, and which are not ready
// or could not be read, so that the autoscaler treats them as the HPA does.
type LoadSource interface {
	Load(ctx context.Context) ([]PodLoad, error)
}

// AutoscalerConfig configures an Autoscaler.
type AutoscalerConfig struct {
	Client     client.Client // reads WeirRoutes, scales the Deployment, patches status
	Recorder   EventRecorder
	Source     LoadSource
	Namespace  string
	Deployment string        // the gateway Deployment to scale
	Interval   time.Duration // default 15s
	Now        func() time.Time
}

// Autoscaler sets the gateway Deployment's replicas from weir's own load, with
// the policy declared in a WeirRoute's spec.scaling that names the
// Deployment. When several WeirRoutes name it, the oldest wins and the
// others say so in their ScalingActive condition (PolicyConflict). It runs
// only on the leader.
type Autoscaler struct {
	cfg AutoscalerConfig

	mu      sync.Mutex
	lastReq map[string]PodLoad // previous counter sample per pod, for RPS
}

// NewAutoscaler validates cfg and returns an Autoscaler.
func NewAutoscaler(cfg AutoscalerConfig) (*Autoscaler, error) {
	if cfg.Client == nil || cfg.Recorder == nil || cfg.Source == nil || cfg.Namespace == "" || cfg.Deployment == "" {
		return nil, errors.New("controller: AutoscalerConfig needs Client, Recorder, Source, Namespace and Deployment")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 15 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Autoscaler{cfg: cfg, lastReq: map[string]PodLoad{}}, nil
}

// Start runs Step every Interval until ctx ends; it implements
// manager.Runnable. A failed step is logged and the next one tries again.
func (a *Autoscaler) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("autoscaler")
	t := time.NewTicker(a.cfg.Interval)
	defer t.Stop()
	for {
		if err := a.Step(logf.IntoContext(ctx, log)); err != nil && ctx.Err() == nil {
			log.Error(err, "autoscaling step failed")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// NeedLeaderElection makes the manager run the Autoscaler on the leader only.
func (a *Autoscaler) NeedLeaderElection() bool { return true }

// policy turns a WeirRoute's spec.scaling into numbers; ok is false when it
// has no target (scaling disabled).
func policy(s *v1alpha1.ScalingPolicy) (p ScalePolicy, metric string, ok bool, err error) {
	if s == nil || (s.TargetInFlight == nil && s.TargetRequestsPerSecond == nil) {
		return p, "", false, nil
	}
	p = ScalePolicy{Min: 1, Max: 10, Tolerance: 0.1, DownWindow: 5 * time.Minute}
	if s.MinReplicas != nil {
		p.Min = *s.MinReplicas
	}
	if s.MaxReplicas != nil {
		p.Max = *s.MaxReplicas
	}
	if s.TargetInFlight != nil {
		p.Target, metric = float64(*s.TargetInFlight), "inflight"
	} else {
		p.Target, metric = float64(*s.TargetRequestsPerSecond), "rps"
	}
	if s.ScaleUpStabilization != nil {
		if p.UpWindow, err = s.ScaleUpStabilization.Parse(); err != nil {
			return p, "", false, fmt.Errorf("scaleUpStabilization: %w", err)
		}
	}
	if s.ScaleDownStabilization != nil {
		if p.DownWindow, err = s.ScaleDownStabilization.Parse(); err != nil {
			return p, "", false, fmt.Errorf("scaleDownStabilization: %w", err)
		}
	}
	if p.UpRules, err = rules("scaleUpRules", s.ScaleUpRules); err != nil {
		return p, "", false, err
	}
	if p.DownRules, err = rules("scaleDownRules", s.ScaleDownRules); err != nil {
		return p, "", false, err
	}
	if s.Tolerance != "" {
		if p.Tolerance, err = strconv.ParseFloat(string(s.Tolerance), 64); err != nil {
			return p, "", false, fmt.Errorf("tolerance %q: %w", s.Tolerance, err)
		}
	}
	if p.Min < 1 || p.Max < p.Min || p.Target <= 0 {
		return p, "", false, fmt.Errorf("minReplicas %d, maxReplicas %d, target %v: want 1 <= min <= max and target > 0", p.Min, p.Max, p.Target)
	}
	return p, metric, true, nil
}

// rules converts declared rate rules; none declared gives nil (the HPA's
// defaults).
func rules(field string, in []v1alpha1.ScaleRule) ([]ScaleRule, error) {
	var out []ScaleRule
	for i, r := range in {
		d, err := r.Period.Parse()
		if err != nil || d <= 0 || d > 30*time.Minute {
			return nil, fmt.Errorf("%s[%d].period %q: want a duration above 0 and at most 30m", field, i, r.Period)
		}
		if r.Value < 1 || (r.Type != "Pods" && r.Type != "Percent") {
			return nil, fmt.Errorf("%s[%d]: want type Pods or Percent and value >= 1", field, i)
		}
		out = append(out, ScaleRule{Percent: r.Type == "Percent", Value: r.Value, Period: d})
	}
	return out, nil
}

// historyOf reads the autoscaler's memory from a WeirRoute's status.
func historyOf(wr *v1alpha1.WeirRoute) History {
	var h History
	if s := wr.Status.Scaling; s != nil {
		for _, r := range s.Recommendations {
			h.Recommendations = append(h.Recommendations, Recommendation{At: r.At.Time, Replicas: r.Replicas})
		}
		for _, r := range s.Changes {
			h.Changes = append(h.Changes, Recommendation{At: r.At.Time, Replicas: r.Replicas})
		}
	}
	return h
}

func statusHistory(h History) *v1alpha1.ScalingHistory {
	conv := func(in []Recommendation) []v1alpha1.ReplicaSample {
		// The status keeps the newest 512 (the schema's bound): a 5m
		// window at a 15s interval needs 20.
		if len(in) > 512 {
			in = in[len(in)-512:]
		}
		var out []v1alpha1.ReplicaSample
		for _, r := range in {
			out = append(out, v1alpha1.ReplicaSample{At: metav1.NewMicroTime(r.At), Replicas: r.Replicas})
		}
		return out
	}
	return &v1alpha1.ScalingHistory{Recommendations: conv(h.Recommendations), Changes: conv(h.Changes)}
}

// Step makes one scaling decision: read the policy and the load, compute the
// desired replicas, update the Deployment's scale when it differs, and write
// status. Tests call it directly to drive the clock.
func (a *Autoscaler) Step(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()

	var list v1alpha1.WeirRouteList
	if err := a.cfg.Client.List(ctx, &list, client.InNamespace(a.cfg.Namespace)); err != nil {
		return fmt.Errorf("list WeirRoutes: %w", err)
	}
	// The oldest WeirRoute whose policy names this Deployment owns it.
	slices.SortFunc(list.Items, func(x, y v1alpha1.WeirRoute) int {
		switch {
		case olderThan(&x, &y):
			return -1
		case olderThan(&y, &x):
			return 1
		}
		return 0
	})
	var owner *v1alpha1.WeirRoute
	var p ScalePolicy
	var metric string
	for i := range list.Items {
		wr := &list.Items[i]
		pol, m, ok, err := policy(wr.Spec.Scaling)
		switch {
		case err != nil:
			a.setScaling(ctx, wr, nil, metav1.ConditionFalse, "InvalidPolicy", err.Error())
		case !ok:
			a.setScaling(ctx, wr, nil, metav1.ConditionFalse, "NoTarget", "spec.scaling sets no target: weir does not scale the gateway for this route")
		case wr.Spec.Scaling.Deployment == "":
			a.setScaling(ctx, wr, nil, metav1.ConditionFalse, "NoDeployment",
				fmt.Sprintf("spec.scaling sets a target but no deployment: name the Deployment it scales (this controller scales %s)", a.cfg.Deployment))
		case wr.Spec.Scaling.Deployment != a.cfg.Deployment:
			a.setScaling(ctx, wr, nil, metav1.ConditionFalse, "OtherDeployment",
				fmt.Sprintf("spec.scaling.deployment is %s; this controller scales Deployment %s (--deployment)", wr.Spec.Scaling.Deployment, a.cfg.Deployment))
		case owner != nil:
			a.setScaling(ctx, wr, nil, metav1.ConditionFalse, "PolicyConflict",
				fmt.Sprintf("WeirRoute %s, older, declares the scaling policy of Deployment %s; remove one of the two policies", owner.Name, a.cfg.Deployment))
		default:
			owner, p, metric = wr, pol, m
		}
	}
	if owner == nil {
		return nil
	}

	deploy := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: a.cfg.Namespace, Name: a.cfg.Deployment}}
	scale := &autoscalingv1.Scale{}
	if err := a.cfg.Client.SubResource("scale").Get(ctx, deploy, scale); err != nil {
		a.setScaling(ctx, owner, nil, metav1.ConditionFalse, "DeploymentUnavailable", err.Error())
		return fmt.Errorf("get scale of Deployment %s/%s: %w", a.cfg.Namespace, a.cfg.Deployment, err)
	}
	current := scale.Spec.Replicas
	if current != 0 && (current < p.Min || current > p.Max) {
		// Bounds first, as the HPA does: a fresh install below its
		// minimum, or a hand edit above its maximum, is corrected whether
		// or not any pod reports a metric yet.
		desired := clamp(current, p.Min, p.Max)
		msg := fmt.Sprintf("%d replicas outside minReplicas %d, maxReplicas %d: %d -> %d replicas", current, p.Min, p.Max, current, desired)
		if err := a.scaleTo(ctx, deploy, scale, owner, desired, msg); err != nil {
			return err
		}
		a.setScalingDesired(ctx, owner, current, desired, historyOf(owner), msg)
		return nil
	}

	loads, err := a.cfg.Source.Load(ctx)
	if err != nil {
		a.setScaling(ctx, owner, &current, metav1.ConditionFalse, "MetricsUnavailable", err.Error())
		return fmt.Errorf("read gateway load: %w", err)
	}
	pods := a.observe(loads, metric)
	raw, ratio, ok := Recommend(current, pods, p.Target, p.Tolerance)
	if !ok {
		a.setScaling(ctx, owner, &current, metav1.ConditionFalse, "MetricsUnavailable",
			fmt.Sprintf("no ready gateway pod reported %s (%s) yet (%d pods seen); missing metrics are not zero load: nothing is scaled on them", metric, metricFlag(metric), len(loads)))
		return nil
	}

	desired, hist := Desired(current, raw, p, historyOf(owner), a.cfg.Now())
	msg := fmt.Sprintf("%s per ready replica %.2f (%.0f%% of target %.0f) over %d pods: %d -> %d replicas (raw %d, min %d, max %d)",
		metric, ratio*p.Target, ratio*100, p.Target, len(pods), current, desired, raw, p.Min, p.Max)
	metricDesiredReplicas.Set(float64(desired))
	switch {
	case desired > current:
		metricScaleDecisions.WithLabelValues("up").Inc()
	case desired < current:
		metricScaleDecisions.WithLabelValues("down").Inc()
	default:
		metricScaleDecisions.WithLabelValues("none").Inc()
	}
	if desired != current {
		if err := a.scaleTo(ctx, deploy, scale, owner, desired, msg); err != nil {
			return err
		}
	}
	a.setScalingDesired(ctx, owner, current, desired, hist, msg)
	return nil
}

// olderThan orders WeirRoutes by creation, then by name.
func olderThan(a, b *v1alpha1.WeirRoute) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

// metricFlag names the flag that says which gateway metric a policy reads.
func metricFlag(metric string) string {
	if metric == "inflight" {
		return "--inflight-metric"
	}
	return "--requests-metric"
}

// scaleTo sets the Deployment's replicas through its scale subresource and
// says so in an Event on the WeirRoute whose policy decided it.
func (a *Autoscaler) scaleTo(ctx context.Context, deploy *appsv1.Deployment, scale *autoscalingv1.Scale, owner *v1alpha1.WeirRoute, desired int32, msg string) error {
	scale.Spec.Replicas = desired
	if err := a.cfg.Client.SubResource("scale").Update(ctx, deploy, client.WithSubResourceBody(scale)); err != nil {
		return fmt.Errorf("scale Deployment %s/%s to %d: %w", a.cfg.Namespace, a.cfg.Deployment, desired, err)
	}
	a.cfg.Recorder.Eventf(owner, nil, corev1.EventTypeNormal, "Scaled", "Scale", "scaled Deployment %s: %s", a.cfg.Deployment, msg)
	return nil
}

// observe turns the pods' loads into the replica calculator's input. For
// RPS it needs two samples of a pod's counter (a pod with one is missing
// this time); a counter that went down (pod restart) restarts the rate.
func (a *Autoscaler) observe(loads []PodLoad, metric string) []PodMetric {
	out := make([]PodMetric, 0, len(loads))
	seen := map[string]bool{}
	for _, l := range loads {
		seen[l.Pod] = true
		m := PodMetric{Ready: !l.NotReady, Missing: l.Missing}
		switch {
		case l.NotReady || l.Missing:
		case metric == "inflight" && l.InFlightAbsent, metric == "rps" && l.RequestsAbsent:
			m.Missing = true
			delete(a.lastReq, l.Pod)
		case metric == "inflight":
			m.Value = l.InFlight
		default:
			prev, ok := a.lastReq[l.Pod]
			a.lastReq[l.Pod] = l
			if dt := l.At.Sub(prev.At).Seconds(); ok && dt > 0 && l.RequestsTotal >= prev.RequestsTotal {
				m.Value = (l.RequestsTotal - prev.RequestsTotal) / dt
			} else {
				m.Missing = true
			}
		}
		out = append(out, m)
	}
	for pod := range a.lastReq {
		if !seen[pod] {
			delete(a.lastReq, pod)
		}
	}
	return out
}

func (a *Autoscaler) setScaling(ctx context.Context, wr *v1alpha1.WeirRoute, current *int32, status metav1.ConditionStatus, reason, msg string) {
	before := wr.DeepCopy()
	if current != nil {
		wr.Status.CurrentReplicas = *current
	}
	meta.SetStatusCondition(&wr.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionScalingActive, Status: status, Reason: reason, Message: clip.String(msg, 1024), ObservedGeneration: wr.Generation,
	})
	if err := patchStatus(ctx, a.cfg.Client, before, wr); err != nil {
		logf.FromContext(ctx).Info("cannot write scaling status", "error", err.Error())
	}
}

func (a *Autoscaler) setScalingDesired(ctx context.Context, wr *v1alpha1.WeirRoute, current, desired int32, h History, msg string) {
	before := wr.DeepCopy()
	wr.Status.CurrentReplicas = current
	wr.Status.DesiredReplicas = desired
	wr.Status.Scaling = statusHistory(h)
	meta.SetStatusCondition(&wr.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionScalingActive, Status: metav1.ConditionTrue, Reason: "Active", Message: clip.String(msg, 1024), ObservedGeneration: wr.Generation,
	})
	if err := patchStatus(ctx, a.cfg.Client, before, wr); err != nil {
		logf.FromContext(ctx).Info("cannot write scaling status", "error", err.Error())
	}
}

// PodScraper is the LoadSource that lists the gateway pods by label and reads
// their Prometheus /metrics.
type PodScraper struct {
	Reader          client.Reader // an uncached reader: RBAC grants pods list only
	Namespace       string
	Selector        labels.Selector
	Port            int    // the gateway's HTTP port, default 8080
	InFlightMetric  string // default weir_inflight_requests
	RequestsMetric  string // default weir_requests_total
	HTTP            *http.Client
	MaxMetricsBytes int64 // default 4 MiB
}

// Load implements LoadSource.
func (s *PodScraper) Load(ctx context.Context) ([]PodLoad, error) {
	var pods corev1.PodList
	if err := s.Reader.List(ctx, &pods, client.InNamespace(s.Namespace), client.MatchingLabelsSelector{Selector: s.Selector}); err != nil {
		return nil, fmt.Errorf("list gateway pods %q: %w", s.Selector, err)
	}
	hc := s.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Second}
	}
	port := s.Port
	if port == 0 {
		port = 8080
	}
	var out []PodLoad
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded {
			continue // ignored, as the HPA ignores them
		}
		if pod.Status.PodIP == "" || !podReady(pod) {
			mu.Lock()
			out = append(out, PodLoad{Pod: pod.Name, NotReady: true})
			mu.Unlock()
			continue
		}
		wg.Go(func() {
			l, err := s.scrape(ctx, hc, fmt.Sprintf("http://%s:%d/metrics", pod.Status.PodIP, port))
			if err != nil {
				logf.FromContext(ctx).V(1).Info("cannot scrape gateway pod", "pod", pod.Name, "error", err.Error())
				l = PodLoad{Missing: true}
			}
			l.Pod = pod.Name
			mu.Lock()
			out = append(out, l)
			mu.Unlock()
		})
	}
	wg.Wait()
	return out, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (s *PodScraper) scrape(ctx context.Context, hc *http.Client, url string) (PodLoad, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return PodLoad{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return PodLoad{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return PodLoad{}, fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	limit := s.MaxMetricsBytes
	if limit <= 0 {
		limit = 4 << 20
	}
	body := &io.LimitedReader{R: resp.Body, N: limit + 1}
	inflight := cmpOr(s.InFlightMetric, "weir_inflight_requests")
	requests := cmpOr(s.RequestsMetric, "weir_requests_total")
	sums, err := SumMetrics(body, inflight, requests)
	if body.N == 0 {
		return PodLoad{}, fmt.Errorf("GET %s: more than %d bytes of metrics", url, limit)
	}
	if err != nil {
		return PodLoad{}, fmt.Errorf("GET %s: %w", url, err)
	}
	l := PodLoad{InFlight: sums[inflight], RequestsTotal: sums[requests], At: time.Now()}
	_, hasInFlight := sums[inflight]
	_, hasRequests := sums[requests]
	l.InFlightAbsent, l.RequestsAbsent = !hasInFlight, !hasRequests
	return l, nil
}

// SumMetrics adds up, per name, the samples of the named counters, gauges
// and untyped metrics in a Prometheus text exposition (all label sets of a
// name together), parsed with Prometheus's own expfmt. A name the exposition
// does not hold is absent from the map: it is Missing to the autoscaler, as
// to the HPA, never zero load.
func SumMetrics(r io.Reader, names ...string) (map[string]float64, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	out := make(map[string]float64, len(names))
	for _, name := range names {
		mf, ok := families[name]
		if !ok {
			continue
		}
		var sum float64
		var found bool
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Untyped != nil:
				sum += m.GetUntyped().GetValue()
			default:
				continue
			}
			found = true
		}
		if found {
			out[name] = sum
		}
	}
	return out, nil
}
