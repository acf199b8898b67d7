package controller

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/weirhq/weir/deploy/api/v1alpha1"
	"github.com/weirhq/weir/internal/testpoll"
)

// fakeLoad is a LoadSource the test drives: every replica reports inflight.
type fakeLoad struct {
	mu       sync.Mutex
	pods     int
	notReady int // more pods, pending or not ready
	inflight float64
	calls    atomic.Int64
}

func (f *fakeLoad) set(pods int, inflight float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pods, f.inflight, f.notReady = pods, inflight, 0
}

func (f *fakeLoad) Load(context.Context) ([]PodLoad, error) {
	f.calls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]PodLoad, f.pods)
	for i := range out {
		out[i] = PodLoad{Pod: fmt.Sprintf("weir-%d", i), InFlight: f.inflight, At: time.Now()}
	}
	for i := range f.notReady {
		out = append(out, PodLoad{Pod: fmt.Sprintf("weir-pending-%d", i), NotReady: true})
	}
	return out, nil
}

// nopRecorder drops Events; the envtest suite checks Events elsewhere.
type nopRecorder struct{}

func (nopRecorder) Eventf(runtime.Object, runtime.Object, string, string, string, string, ...any) {}

func createDeployment(t *testing.T, c client.Client, ns, name string, replicas int32) {
	t.Helper()
	labels := map[string]string{"app.kubernetes.io/name": "weir"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "weir", Image: "weir:test"}}},
			},
		},
	}
	if err := c.Create(context.Background(), d); err != nil {
		t.Fatal(err)
	}
}

func replicasOf(t *testing.T, c client.Client, ns, name string) int32 {
	t.Helper()
	s := &autoscalingv1.Scale{}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := c.SubResource("scale").Get(context.Background(), d, s); err != nil {
		t.Fatal(err)
	}
	return s.Spec.Replicas
}

// scalingRoute declares policy s for Deployment weir (unless s names one).
func scalingRoute(ns, name string, s *v1alpha1.ScalingPolicy) *v1alpha1.WeirRoute {
	if s != nil && s.Deployment == "" {
		s = s.DeepCopy()
		s.Deployment = "weir"
	}
	return &v1alpha1.WeirRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.WeirRouteSpec{
			Route:   v1alpha1.RouteSpec{Variants: []v1alpha1.Variant{variant("stable", "m", "1", 100)}},
			Scaling: s,
		},
	}
}

func TestAutoscalerScalesWithinBoundsAndWindow(t *testing.T) {
	_, c := startEnv(t)
	ns := newNamespace(t, c)
	ctx := context.Background()
	createDeployment(t, c, ns, "weir", 2)
	policy := &v1alpha1.ScalingPolicy{
		MinReplicas: ptr.To[int32](1), MaxReplicas: ptr.To[int32](5), TargetInFlight: ptr.To[int32](10),
		ScaleDownStabilization: ptr.To(v1alpha1.Duration("1m")),
	}
	if err := c.Create(ctx, scalingRoute(ns, "a", policy)); err != nil {
		t.Fatal(err)
	}
	// A second route with a policy for the same Deployment: the older "a"
	// (or, created in the same second, the first by name: "a" again) wins.
	if err := c.Create(ctx, scalingRoute(ns, "b", policy)); err != nil {
		t.Fatal(err)
	}

	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	load := &fakeLoad{}
	as, err := NewAutoscaler(AutoscalerConfig{
		Client: c, Recorder: nopRecorder{}, Source: load, Namespace: ns, Deployment: "weir",
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	step := func(after time.Duration) int32 {
		t.Helper()
		now = now.Add(after)
		if err := as.Step(ctx); err != nil {
			t.Fatalf("step: %v", err)
		}
		return replicasOf(t, c, ns, "weir")
	}

	// 2 replicas at 30 in flight each, target 10: 6 wanted, capped at 5.
	load.set(2, 30)
	if got := step(0); got != 5 {
		t.Fatalf("replicas after high load = %d, want 5 (max)", got)
	}
	a := getRoute(t, c, ns, "a")
	if !condition(a, v1alpha1.ConditionScalingActive, metav1.ConditionTrue, "Active") || a.Status.DesiredReplicas != 5 {
		t.Fatalf("status of a: desired %d, conditions %v", a.Status.DesiredReplicas, a.Status.Conditions)
	}
	if !condition(getRoute(t, c, ns, "b"), v1alpha1.ConditionScalingActive, metav1.ConditionFalse, "PolicyConflict") {
		t.Fatal("b does not say its policy is overridden by a")
	}

	// Load drops: nothing moves inside the one-minute scale-down window.
	load.set(5, 2)
	for range 5 {
		if got := step(10 * time.Second); got != 5 {
			t.Fatalf("replicas fell to %d inside the stabilization window", got)
		}
	}
	// Past the window (the last high recommendation is older than 1m): down to
	// ceil(5 × 2/10) = 1.
	if got := step(20 * time.Second); got != 1 {
		t.Fatalf("replicas after the window = %d, want 1", got)
	}

	// Noisy load around the target: 2 replicas with ±30% swings stay at 2 or
	// rise once, but never go down and up again.
	load.set(1, 20)
	if got := step(10 * time.Second); got != 2 {
		t.Fatalf("replicas = %d, want 2", got)
	}
	changes := 0
	prev := int32(2)
	for i := range 12 {
		total := 26.0
		if i%2 == 1 {
			total = 14.0
		}
		load.set(int(prev), total/float64(prev))
		got := step(10 * time.Second)
		if got != prev {
			changes++
		}
		prev = got
	}
	if changes > 1 {
		t.Fatalf("replicas changed %d times under noisy load", changes)
	}
}

// The stabilization window outlives the leader: a new autoscaler (a new
// leader, fresh memory) reads the history from the WeirRoute's status and
// does not scale down inside the window. Pending pods count as idle on a
// scale-up instead of driving the count to max.
func TestAutoscalerHistorySurvivesLeaderChange(t *testing.T) {
	_, c := startEnv(t)
	ns := newNamespace(t, c)
	ctx := context.Background()
	createDeployment(t, c, ns, "weir", 2)
	policy := &v1alpha1.ScalingPolicy{
		MinReplicas: ptr.To[int32](1), MaxReplicas: ptr.To[int32](10), TargetInFlight: ptr.To[int32](10),
		ScaleDownStabilization: ptr.To(v1alpha1.Duration("5m")),
	}
	if err := c.Create(ctx, scalingRoute(ns, "r", policy)); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	load := &fakeLoad{}
	leader := func() *Autoscaler {
		as, err := NewAutoscaler(AutoscalerConfig{
			Client: c, Recorder: nopRecorder{}, Source: load, Namespace: ns, Deployment: "weir",
			Now: func() time.Time { return now },
		})
		if err != nil {
			t.Fatal(err)
		}
		return as
	}
	step := func(as *Autoscaler, after time.Duration) int32 {
		t.Helper()
		now = now.Add(after)
		if err := as.Step(ctx); err != nil {
			t.Fatalf("step: %v", err)
		}
		return replicasOf(t, c, ns, "weir")
	}

	first := leader()
	load.set(2, 30) // 3x the target: 6 wanted, within the default +4 pods per 15s
	if got := step(first, 0); got != 6 {
		t.Fatalf("replicas after high load = %d, want 6", got)
	}
	if h := getRoute(t, c, ns, "r").Status.Scaling; h == nil || len(h.Recommendations) == 0 || len(h.Changes) == 0 {
		t.Fatalf("status.scaling after a decision = %+v, want the recommendation and the change", h)
	}

	// The leader changes; the load drops at once.
	second := leader()
	load.set(6, 1)
	if got := step(second, 30*time.Second); got != 6 {
		t.Fatalf("a new leader scaled down to %d inside the 5m window of the old leader's recommendation", got)
	}

	// Two pods report 15 in flight, four more are still pending: the HPA
	// counts the pending ones as idle on a scale-up, so nothing moves.
	load.set(2, 15)
	load.mu.Lock()
	load.notReady = 4
	load.mu.Unlock()
	if got := step(second, 15*time.Second); got != 6 {
		t.Fatalf("replicas with 4 pending pods = %d, want 6 (pending pods count as 0 on a scale-up)", got)
	}

	// Past the window the new leader scales down, at most as fast as the
	// default rule allows.
	load.set(6, 1)
	if got := step(second, 5*time.Minute); got != 1 {
		t.Fatalf("replicas after the window = %d, want 1", got)
	}
}

func TestOnlyLeaseHolderScales(t *testing.T) {
	cfg, c := startEnv(t)
	ns := newNamespace(t, c)
	createDeployment(t, c, ns, "weir", 1)
	policy := &v1alpha1.ScalingPolicy{MinReplicas: ptr.To[int32](1), MaxReplicas: ptr.To[int32](4), TargetInFlight: ptr.To[int32](10)}
	if err := c.Create(context.Background(), scalingRoute(ns, "r", policy)); err != nil {
		t.Fatal(err)
	}
	// The reconciler's gateway is not under test here: it only answers its
	// liveness probe (a controller holds the lease only beside a live one).
	var up atomic.Bool
	up.Store(true)
	gw := healthGateway(t, &up)

	loads := []*fakeLoad{{}, {}}
	for _, l := range loads {
		l.set(1, 40)
		startManager(t, cfg, Options{
			GatewayURL: gw.URL, Namespace: ns, Deployment: "weir", Source: l, ScaleInterval: 50 * time.Millisecond,
			LeaderElection: true, LeaderElectionID: "weir-test-lease",
			LeaseDuration: 5 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond,
		})
	}
	testpoll.For(t, 30*time.Second, "the leader scaled the Deployment to its max", func() error {
		if n := replicasOf(t, c, ns, "weir"); n != 4 {
			return fmt.Errorf("the Deployment has %d replicas, want 4", n)
		}
		return nil
	})
	// Let the leader run several more steps, then check the other never ran one.
	leader := loads[0]
	if loads[1].calls.Load() > loads[0].calls.Load() {
		leader = loads[1]
	}
	seen := leader.calls.Load()
	testpoll.For(t, 10*time.Second, "more leader steps", func() error {
		if n := leader.calls.Load() - seen; n < 5 {
			return fmt.Errorf("%d more leader steps, want 5", n)
		}
		return nil
	})
	if loads[0].calls.Load() > 0 && loads[1].calls.Load() > 0 {
		t.Fatalf("both controllers read the load (%d and %d steps): no single lease holder", loads[0].calls.Load(), loads[1].calls.Load())
	}
}

func TestSumMetrics(t *testing.T) {
	text := `# HELP weir_inflight_requests Requests being served.
# TYPE weir_inflight_requests gauge
weir_inflight_requests{route="a"} 3
weir_inflight_requests{route="b",x="}"} 4.5
# TYPE weir_requests_total counter
weir_requests_total{route="a",code="200"} 1e3 1700000000000
weir_requests_total{route="b",code="200"} 7
weir_inflight_requests_other 100
`
	got, err := SumMetrics(strings.NewReader(text), "weir_inflight_requests", "weir_requests_total", "weir_renamed_total")
	if err != nil {
		t.Fatal(err)
	}
	if got["weir_inflight_requests"] != 7.5 || got["weir_requests_total"] != 1007 {
		t.Fatalf("SumMetrics = %v, want inflight 7.5 and requests 1007", got)
	}
	// An absent metric is absent, not zero.
	if v, ok := got["weir_renamed_total"]; ok {
		t.Fatalf("SumMetrics reports an absent metric as %v", v)
	}
	if _, err := SumMetrics(strings.NewReader("weir_requests_total{route=\"a\" 12\n"), "weir_requests_total"); err == nil {
		t.Fatal("SumMetrics accepted a malformed exposition")
	}
}

// createPods creates ready gateway pods whose /metrics is at 127.0.0.1
// (the PodScraper's port points them at one test server).
func createPods(t *testing.T, c client.Client, ns string, n int, ready corev1.ConditionStatus) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("weir-%s-%d", strings.ToLower(string(ready)), i), Labels: map[string]string{"app.kubernetes.io/name": "weir"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "weir", Image: "weir:test"}}},
		}
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		p.Status = corev1.PodStatus{PodIP: "127.0.0.1", Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}}}
		if err := c.Status().Update(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
}

// A renamed request metric is Missing, as the HPA treats it: the pods are
// not taken as idle and scaled down, and ScalingActive says why nothing is
// scaled. (Before, the absent counter read as zero load and 4 replicas went
// to 1 under any load.)
func TestAutoscalerAbsentMetricIsMissingNotZero(t *testing.T) {
	_, c := startEnv(t)
	ns := newNamespace(t, c)
	ctx := context.Background()
	var served atomic.Int64
	metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		// Heavy load, under a name the controller does not read.
		fmt.Fprintf(w, "# TYPE weir_http_requests_total counter\nweir_http_requests_total %d\nweir_inflight_requests 30\n", served.Add(3000))
	}))
	t.Cleanup(metrics.Close)
	var port int
	fmt.Sscanf(metrics.URL, "http://127.0.0.1:%d", &port)
	createDeployment(t, c, ns, "weir", 4)
	createPods(t, c, ns, 4, corev1.ConditionTrue)
	policy := &v1alpha1.ScalingPolicy{
		MinReplicas: ptr.To[int32](1), MaxReplicas: ptr.To[int32](10), TargetRequestsPerSecond: ptr.To[int32](10),
		ScaleDownStabilization: ptr.To(v1alpha1.Duration("0s")),
	}
	if err := c.Create(ctx, scalingRoute(ns, "r", policy)); err != nil {
		t.Fatal(err)
	}
	sel, _ := labels.Parse("app.kubernetes.io/name=weir")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	as, err := NewAutoscaler(AutoscalerConfig{
		Client: c, Recorder: nopRecorder{}, Namespace: ns, Deployment: "weir",
		Source: &PodScraper{Reader: c, Namespace: ns, Selector: sel, Port: port},
		Now:    func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		now = now.Add(15 * time.Second)
		if err := as.Step(ctx); err != nil {
			t.Fatalf("step: %v", err)
		}
		if got := replicasOf(t, c, ns, "weir"); got != 4 {
			t.Fatalf("replicas = %d with the request metric absent from every pod, want 4 (missing is not zero load)", got)
		}
	}
	if r := getRoute(t, c, ns, "r"); !condition(r, v1alpha1.ConditionScalingActive, metav1.ConditionFalse, "MetricsUnavailable") {
		t.Fatalf("conditions %s, want ScalingActive=False MetricsUnavailable", conditionsOf(r))
	}
}

// minReplicas and maxReplicas hold before any pod reports a metric: a fresh
// install below its minimum is raised, one above its maximum lowered.
func TestAutoscalerAppliesBoundsWithoutMetrics(t *testing.T) {
	_, c := startEnv(t)
	ns := newNamespace(t, c)
	ctx := context.Background()
	createDeployment(t, c, ns, "weir", 1)
	policy := &v1alpha1.ScalingPolicy{MinReplicas: ptr.To[int32](3), MaxReplicas: ptr.To[int32](5), TargetInFlight: ptr.To[int32](10)}
	if err := c.Create(ctx, scalingRoute(ns, "r", policy)); err != nil {
		t.Fatal(err)
	}
	load := &fakeLoad{} // no pod reports
	as, err := NewAutoscaler(AutoscalerConfig{Client: c, Recorder: nopRecorder{}, Source: load, Namespace: ns, Deployment: "weir"})
	if err != nil {
		t.Fatal(err)
	}
	if err := as.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if got := replicasOf(t, c, ns, "weir"); got != 3 {
		t.Fatalf("replicas = %d with no metrics and minReplicas 3, want 3", got)
	}
	// A hand edit above the maximum, still no metrics.
	s := &autoscalingv1.Scale{}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "weir"}}
	if err := c.SubResource("scale").Get(ctx, d, s); err != nil {
		t.Fatal(err)
	}
	s.Spec.Replicas = 9
	if err := c.SubResource("scale").Update(ctx, d, client.WithSubResourceBody(s)); err != nil {
		t.Fatal(err)
	}
	if err := as.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if got := replicasOf(t, c, ns, "weir"); got != 5 {
		t.Fatalf("replicas = %d with no metrics and maxReplicas 5, want 5", got)
	}
}

func TestPodScraperReadsReadyPodsOnly(t *testing.T) {
	_, c := startEnv(t)
	ns := newNamespace(t, c)
	ctx := context.Background()
	metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "weir_inflight_requests 6\nweir_requests_total 120")
	}))
	t.Cleanup(metrics.Close)
	var port int
	fmt.Sscanf(metrics.URL, "http://127.0.0.1:%d", &port)

	for i, ready := range []corev1.ConditionStatus{corev1.ConditionTrue, corev1.ConditionFalse} {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("weir-%d", i), Labels: map[string]string{"app.kubernetes.io/name": "weir"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "weir", Image: "weir:test"}}},
		}
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		p.Status = corev1.PodStatus{PodIP: "127.0.0.1", Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}}}
		if err := c.Status().Update(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	sel, _ := labels.Parse("app.kubernetes.io/name=weir")
	s := &PodScraper{Reader: c, Namespace: ns, Selector: sel, Port: port}
	loads, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The ready pod is read; the one not ready is reported as such, unread
	// (the autoscaler counts it as the HPA does, not as idle load).
	byPod := map[string]PodLoad{}
	for _, l := range loads {
		byPod[l.Pod] = l
	}
	ready, notReady := byPod["weir-0"], byPod["weir-1"]
	if len(loads) != 2 || ready.NotReady || ready.InFlight != 6 || ready.RequestsTotal != 120 ||
		!notReady.NotReady || notReady.RequestsTotal != 0 {
		t.Fatalf("loads = %+v, want weir-0 read (6 in flight, 120 requests) and weir-1 marked not ready", loads)
	}
}

func BenchmarkSumMetrics(b *testing.B) {
	var sb strings.Builder
	for i := range 200 {
		fmt.Fprintf(&sb, "# TYPE weir_other_%d counter\nweir_other_%d{route=\"r\"} %d\n", i, i, i)
	}
	sb.WriteString("weir_inflight_requests{route=\"a\"} 3\nweir_requests_total{route=\"a\",code=\"200\"} 1000\n")
	text := sb.String()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SumMetrics(strings.NewReader(text), "weir_inflight_requests", "weir_requests_total"); err != nil {
			b.Fatal(err)
		}
	}
}

// Item 8: the policy of a Deployment is the one naming it in
// spec.scaling.deployment, from the oldest WeirRoute: a newer WeirRoute whose
// name sorts first does not take scaling over (it reports PolicyConflict),
// and one naming another Deployment, or none, is left out and says why.
func TestScalingPolicyNamesItsDeployment(t *testing.T) {
	_, c := startEnv(t)
	ns := newNamespace(t, c)
	ctx := context.Background()
	createDeployment(t, c, ns, "weir", 2)
	owner := scalingRoute(ns, "zz-owner", &v1alpha1.ScalingPolicy{MaxReplicas: ptr.To[int32](3), TargetInFlight: ptr.To[int32](10)})
	if err := c.Create(ctx, owner); err != nil {
		t.Fatal(err)
	}
	// A newer WeirRoute (a later creation second) that sorts first by name.
	testpoll.For(t, 10*time.Second, "a WeirRoute created a second after the owner", func() error {
		newer := scalingRoute(ns, "aa-newer", &v1alpha1.ScalingPolicy{MaxReplicas: ptr.To[int32](7), TargetInFlight: ptr.To[int32](10)})
		if err := c.Create(ctx, newer); err != nil {
			t.Fatal(err)
		}
		if newer.CreationTimestamp.After(owner.CreationTimestamp.Time) {
			return nil
		}
		if err := c.Delete(ctx, newer); err != nil {
			t.Fatal(err)
		}
		testpoll.For(t, 10*time.Second, "the same-second WeirRoute gone", func() error {
			if err := c.Get(ctx, client.ObjectKeyFromObject(newer), &v1alpha1.WeirRoute{}); err == nil {
				return fmt.Errorf("still there")
			}
			return nil
		})
		return fmt.Errorf("created in the owner's second (%v)", newer.CreationTimestamp)
	})
	other := scalingRoute(ns, "bb-other", &v1alpha1.ScalingPolicy{Deployment: "other-pool", TargetInFlight: ptr.To[int32](10)})
	if err := c.Create(ctx, other); err != nil {
		t.Fatal(err)
	}

	load := &fakeLoad{}
	load.set(2, 40) // 8 wanted: the owner's max 3 holds, not the newer's 7
	as, err := NewAutoscaler(AutoscalerConfig{Client: c, Recorder: nopRecorder{}, Source: load, Namespace: ns, Deployment: "weir"})
	if err != nil {
		t.Fatal(err)
	}
	if err := as.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if got := replicasOf(t, c, ns, "weir"); got != 3 {
		t.Fatalf("replicas = %d, want 3 (the older zz-owner's maxReplicas, not aa-newer's 7)", got)
	}
	for name, reason := range map[string]string{"zz-owner": "Active", "aa-newer": "PolicyConflict", "bb-other": "OtherDeployment"} {
		status := metav1.ConditionFalse
		if reason == "Active" {
			status = metav1.ConditionTrue
		}
		if wr := getRoute(t, c, ns, name); !condition(wr, v1alpha1.ConditionScalingActive, status, reason) {
			t.Errorf("%s: %s, want ScalingActive=%s %s", name, conditionsOf(wr), status, reason)
		}
	}
}

// healthGateway is a stand-in for a gateway that answers only its liveness
// probe (the reconciler's calls get 404), alive while up is true.
func healthGateway(t *testing.T, up *atomic.Bool) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path != "/v2/health/live":
			http.NotFound(w, r)
		case up.Load():
			w.WriteHeader(http.StatusOK)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(s.Close)
	return s
}
