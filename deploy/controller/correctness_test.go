package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/weirhq/weir/deploy/api/v1alpha1"
	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/internal/testpoll"
)

// The tests of issue 13's controller defects, each against the real API
// server and a real gateway.

// reconcilePasses is controller-runtime's count of finished WeirRoute
// reconciles (every manager of the test process together).
func reconcilePasses(t *testing.T) float64 {
	t.Helper()
	mfs, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			n += m.GetCounter().GetValue()
		}
	}
	return n
}

// readyRoute reports whether wr is Ready=True for its current generation,
// with every condition written for that generation.
func readyRoute(wr *v1alpha1.WeirRoute) bool {
	return condition(wr, v1alpha1.ConditionReady, metav1.ConditionTrue, "Ready") && allCurrent(wr)
}

// allCurrent reports whether every condition of wr describes its current
// generation.
func allCurrent(wr *v1alpha1.WeirRoute) bool {
	for _, c := range wr.Status.Conditions {
		if c.ObservedGeneration != wr.Generation {
			return false
		}
	}
	return wr.Status.ObservedGeneration == wr.Generation
}

func conditionsOf(wr *v1alpha1.WeirRoute) string {
	var b strings.Builder
	fmt.Fprintf(&b, "generation %d:", wr.Generation)
	for _, c := range wr.Status.Conditions {
		fmt.Fprintf(&b, " %s=%s/%s(gen %d: %s)", c.Type, c.Status, c.Reason, c.ObservedGeneration, c.Message)
	}
	return b.String()
}

// waitRoute polls WeirRoute name until ok (testpoll.For), failing with its
// last conditions.
func waitRoute(t *testing.T, e env, name string, timeout time.Duration, ok func(*v1alpha1.WeirRoute) bool, what string, args ...any) *v1alpha1.WeirRoute {
	t.Helper()
	var last *v1alpha1.WeirRoute
	testpoll.For(t, timeout, fmt.Sprintf(what, args...), func() error {
		if last = getRoute(t, e.c, e.ns, name); !ok(last) {
			return errors.New(conditionsOf(last))
		}
		return nil
	})
	return last
}

func simpleRoute(e env, t *testing.T, name, model string) *v1alpha1.WeirRoute {
	return &v1alpha1.WeirRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec: v1alpha1.WeirRouteSpec{
			Models: []v1alpha1.ModelArtifact{e.urlModel(model, "1", logReg(t, model, []string{"a", "b"}, 1, 2))},
			Route:  v1alpha1.RouteSpec{Variants: []v1alpha1.Variant{variant("stable", model, "1", 100)}},
		},
	}
}

// Item 1: a free-form duration is refused by the schema; and an object
// stored before the schema checked (here: stored while the check is lifted)
// neither stops the controller's cache nor the other WeirRoutes.
func TestBadDurationRefusedAndIsolated(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	badRoute := func(name string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "weir.dev/v1alpha1", "kind": "WeirRoute",
			"metadata": map[string]any{"namespace": e.ns, "name": name},
			"spec": map[string]any{
				"route":   map[string]any{"variants": []any{map[string]any{"name": "stable", "model": "m", "version": "1", "weight": int64(100)}}},
				"rollout": map[string]any{"model": "m", "version": "2", "steps": []any{int64(50), int64(100)}, "interval": "soon"},
			},
		}}
		return u
	}
	err := e.c.Create(ctx, badRoute("refused"))
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "interval") {
		t.Fatalf("creating a WeirRoute with interval \"soon\": %v, want Invalid naming spec.rollout.interval", err)
	}

	liftIntervalPattern(t, func() {
		testpoll.For(t, 30*time.Second, "the API server storing a WeirRoute with interval \"soon\" while its schema does not check it", func() error {
			return e.c.Create(ctx, badRoute("stored-bad"))
		})
	})

	e.start(t, nil)
	if err := e.c.Create(ctx, simpleRoute(e, t, "good", "good")); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, e, "good", 30*time.Second, readyRoute, "the good WeirRoute Ready beside a stored bad one")
	servedBy(t, e.gw, "good", `{"a":1,"b":2}`, "good", "1")
	bad := waitRoute(t, e, "stored-bad", 20*time.Second, func(wr *v1alpha1.WeirRoute) bool {
		return condition(wr, v1alpha1.ConditionReady, metav1.ConditionFalse, "InvalidSpec")
	}, "the stored bad WeirRoute reported InvalidSpec")
	if msg := meta.FindStatusCondition(bad.Status.Conditions, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "spec.rollout.interval") {
		t.Fatalf("InvalidSpec message %q does not name spec.rollout.interval", msg)
	}
}

// liftIntervalPattern removes the pattern of spec.rollout.interval from the
// installed CRD while fn runs, then puts the CRD back and waits until the
// API server checks durations again (other tests share the API server).
func liftIntervalPattern(t *testing.T, fn func()) {
	t.Helper()
	ctx := context.Background()
	s := runtime.NewScheme()
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(envCfg, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	key := types.NamespacedName{Name: "weirroutes.weir.dev"}
	update := func(mutate func(*apiextensionsv1.JSONSchemaProps)) {
		testpoll.For(t, 20*time.Second, "updating the CRD without conflict", func() error {
			var crd apiextensionsv1.CustomResourceDefinition
			if err := c.Get(ctx, key, &crd); err != nil {
				t.Fatal(err)
			}
			interval := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["rollout"].Properties["interval"]
			mutate(&interval)
			crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["rollout"].Properties["interval"] = interval
			return c.Update(ctx, &crd)
		})
	}
	var pattern string
	update(func(p *apiextensionsv1.JSONSchemaProps) { pattern, p.Pattern = p.Pattern, "" })
	defer func() {
		update(func(p *apiextensionsv1.JSONSchemaProps) { p.Pattern = pattern })
		probe := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "weir.dev/v1alpha1", "kind": "WeirRoute",
			"metadata": map[string]any{"namespace": "default", "name": "schema-probe"},
			"spec": map[string]any{
				"route":   map[string]any{"variants": []any{map[string]any{"name": "s", "model": "m", "version": "1", "weight": int64(100)}}},
				"rollout": map[string]any{"model": "m", "version": "2", "steps": []any{int64(100)}, "interval": "soon"},
			},
		}}
		testpoll.For(t, 30*time.Second, "the API server checking durations again", func() error {
			switch err := envC.Create(ctx, probe.DeepCopy(), client.DryRunAll); {
			case err == nil:
				return errors.New("a WeirRoute with interval \"soon\" passes a dry-run create")
			case !apierrors.IsInvalid(err):
				return fmt.Errorf("dry-run create of a WeirRoute with interval \"soon\": %w, want Invalid", err)
			}
			return nil
		})
	}()
	fn()
}

// Item 2: an artifact URL that never answers holds up neither the other
// WeirRoutes (concurrent reconciles) nor itself for long (connect/header
// timeout), and it is retried with backoff.
func TestHangingArtifactDoesNotBlockOthers(t *testing.T) {
	e := newEnv(t)
	var hits atomic.Int64
	done := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case <-done:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(done) })
	e.start(t, func(o *Options) { o.FetchConnectTimeout = time.Second; o.FetchStallTimeout = time.Second })
	ctx := context.Background()

	slow := simpleRoute(e, t, "slow", "slow")
	slow.Spec.Models[0].Source.URL = hang.URL + "/model.onnx"
	if err := e.c.Create(ctx, slow); err != nil {
		t.Fatal(err)
	}
	testpoll.For(t, 20*time.Second, "the slow artifact being fetched", func() error {
		if n := hits.Load(); n == 0 {
			return errors.New("the slow artifact's URL was not asked for")
		}
		return nil
	})
	if err := e.c.Create(ctx, simpleRoute(e, t, "fast", "fast")); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, e, "fast", 30*time.Second, readyRoute, "the fast WeirRoute Ready while the slow one's URL hangs")
	wr := waitRoute(t, e, "slow", 30*time.Second, func(wr *v1alpha1.WeirRoute) bool {
		return condition(wr, v1alpha1.ConditionArtifactsReady, metav1.ConditionFalse, "Unavailable") && hits.Load() >= 2
	}, "the slow artifact timed out and retried")
	t.Logf("slow: %s (after %d fetches)", conditionsOf(wr), hits.Load())
}

// rolloutRoute declares fraud@1 serving and a rollout to fraud@2 that never
// advances by itself (1h interval).
func rolloutRoute(e env, t *testing.T) *v1alpha1.WeirRoute {
	features := []string{"a", "b"}
	hour := v1alpha1.Duration("1h")
	return &v1alpha1.WeirRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "fraud"},
		Spec: v1alpha1.WeirRouteSpec{
			Models: []v1alpha1.ModelArtifact{
				e.urlModel("fraud", "1", logReg(t, "fraud", features, 1, 2)),
				e.urlModel("fraud", "2", logReg(t, "fraud", features, 2, 1)),
			},
			Route:   v1alpha1.RouteSpec{Variants: []v1alpha1.Variant{variant("stable", "fraud", "1", 100)}},
			Rollout: &v1alpha1.RolloutSpec{Model: "fraud", Version: "2", Steps: []int32{20, 50, 100}, Interval: &hour},
		},
	}
}

// Item 3: removing spec.rollout aborts the running rollout on the gateway.
func TestRemovingRolloutAborts(t *testing.T) {
	e := setup(t)
	if err := e.c.Create(context.Background(), rolloutRoute(e, t)); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, e, "fraud", 30*time.Second, func(wr *v1alpha1.WeirRoute) bool {
		return wr.Status.Rollout != nil && wr.Status.Rollout.State == "progressing" && wr.Status.Rollout.Weight == 20
	}, "the rollout progressing at 20%%")

	updateSpec(t, e.c, e.ns, "fraud", func(s *v1alpha1.WeirRouteSpec) { s.Rollout = nil })
	waitRoute(t, e, "fraud", 30*time.Second, func(wr *v1alpha1.WeirRoute) bool {
		return readyRoute(wr) && wr.Status.Rollout == nil &&
			meta.FindStatusCondition(wr.Status.Conditions, v1alpha1.ConditionRolloutProgressing) == nil
	}, "Ready without a rollout in status")
	if st := rollout(t, e.gw, "fraud"); st.State != "rolled_back" {
		t.Fatalf("gateway rollout state %q after spec.rollout was removed, want rolled_back (aborted)", st.State)
	}
	testpoll.For(t, 20*time.Second, "the gateway's route back to fraud@1 alone", func() error {
		if r := route(t, e.gw, "fraud"); !r.onlyVariant("fraud", "1") {
			return fmt.Errorf("gateway route %v", r)
		}
		return nil
	})
	for range 20 {
		servedBy(t, e.gw, "fraud", `{"a":1,"b":2}`, "fraud", "1")
	}
	if seen := events(t, e.c, e.ns, "fraud"); seen["RolloutAborted"] == nil {
		t.Fatalf("no RolloutAborted Event; Events: %v", seen)
	}
}

// Item 4: after a promotion, an unrelated edit keeps the promoted version;
// status says so; editing the variants ends it.
func TestPromotionIsNotRolledBack(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	if err := e.c.Create(ctx, rolloutRoute(e, t)); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, e, "fraud", 30*time.Second, func(wr *v1alpha1.WeirRoute) bool {
		return wr.Status.Rollout != nil && wr.Status.Rollout.State == "progressing"
	}, "the rollout progressing")
	if _, err := e.gw.Client.RolloutAction(ctx, "fraud", "promote"); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, e, "fraud", 30*time.Second, func(wr *v1alpha1.WeirRoute) bool {
		p := wr.Status.Promoted
		return p != nil && p.Model == "fraud" && p.Version == "2" && p.StableVariant == "stable" && readyRoute(wr)
	}, "the promotion in status.promoted and Ready")

	// An unrelated edit (sticky) of a spec whose variants still name fraud@1.
	updateSpec(t, e.c, e.ns, "fraud", func(s *v1alpha1.WeirRouteSpec) { s.Route.Sticky = &v1alpha1.Sticky{Header: "X-User"} })
	wr := waitRoute(t, e, "fraud", 30*time.Second, readyRoute, "Ready after the sticky edit")
	if msg := meta.FindStatusCondition(wr.Status.Conditions, v1alpha1.ConditionRouteApplied).Message; !strings.Contains(msg, "promoted fraud@2") {
		t.Errorf("RouteApplied message %q does not say the promotion is kept", msg)
	}
	testpoll.For(t, 20*time.Second, "the sticky edit on the gateway", func() error {
		if r := route(t, e.gw, "fraud"); r == nil || r.Sticky == nil || r.Sticky.Header != "X-User" {
			return fmt.Errorf("gateway route %v, want sticky header X-User", r)
		}
		return nil
	})
	if r := route(t, e.gw, "fraud"); !r.onlyVariant("fraud", "2") {
		t.Fatalf("after an unrelated edit the gateway route is %+v: production rolled back from the promoted fraud@2", r)
	}
	servedBy(t, e.gw, "fraud", `{"a":1,"b":2}`, "fraud", "2")

	// Editing the variants is the user's word again.
	updateSpec(t, e.c, e.ns, "fraud", func(s *v1alpha1.WeirRouteSpec) {
		s.Route.Variants = []v1alpha1.Variant{variant("stable", "fraud", "2", 100)}
		s.Rollout = nil
	})
	waitRoute(t, e, "fraud", 30*time.Second, func(wr *v1alpha1.WeirRoute) bool {
		return readyRoute(wr) && wr.Status.Promoted == nil
	}, "Ready with the promotion settled into the spec")
	if r := route(t, e.gw, "fraud"); !r.onlyVariant("fraud", "2") {
		t.Fatalf("gateway route %+v, want fraud@2", r)
	}
}

// Item 5: a route deleted or changed by hand on the gateway is set back,
// on the gateway's change (the route watch), not at the next resync: the
// resync period here is an hour.
func TestRouteDriftIsCorrected(t *testing.T) {
	e := newEnv(t)
	e.start(t, func(o *Options) { o.ResyncInterval = time.Hour })
	ctx := context.Background()
	wr := simpleRoute(e, t, "drift", "drift")
	wr.Spec.Route.Sticky = &v1alpha1.Sticky{Header: "X-User"}
	if err := e.c.Create(ctx, wr); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, e, "drift", 30*time.Second, readyRoute, "Ready")

	if err := e.gw.Client.DeleteRoute(ctx, "drift"); err != nil {
		t.Fatal(err)
	}
	testpoll.For(t, 30*time.Second, "the deleted route set again (long before the hourly resync)", func() error {
		if route(t, e.gw, "drift") == nil {
			return errors.New("the gateway has no route drift")
		}
		return nil
	})

	// Same variants, sticky gone: only a whole-route comparison sees it.
	if err := e.gw.Client.SetRoute(ctx, "drift", []byte(`{"variants":[{"name":"stable","model":"drift","version":"1","weight":100}]}`)); err != nil {
		t.Fatal(err)
	}
	testpoll.For(t, 30*time.Second, "the hand-edited route set back to the declaration (long before the hourly resync)", func() error {
		if r := route(t, e.gw, "drift"); r == nil || r.Sticky == nil || r.Sticky.Header != "X-User" {
			return fmt.Errorf("gateway route %v, want sticky header X-User", r)
		}
		return nil
	})
	// Events are recorded asynchronously: wait for it too.
	testpoll.For(t, 30*time.Second, "a RouteRestored Event after the gateway's route drifted", func() error {
		if seen := events(t, e.c, e.ns, "drift"); len(seen["RouteRestored"]) == 0 {
			return fmt.Errorf("Events with reasons %v, none RouteRestored", reasons(seen))
		}
		return nil
	})
}

// variantPostprocess is the postprocess field of the gateway's variant
// variant on route name as JSON, "absent" when it has none.
func variantPostprocess(t *testing.T, g *testgw.Gateway, name, variant string) string {
	t.Helper()
	raw, err := g.Client.GetRoute(context.Background(), name)
	if err != nil {
		t.Fatalf("get route %s: %v", name, err)
	}
	var r struct {
		Variants []struct {
			Name        string          `json:"name"`
			Postprocess json.RawMessage `json:"postprocess"`
		} `json:"variants"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("decode route %s: %v\n%s", name, err, raw)
	}
	for _, v := range r.Variants {
		if v.Name == variant {
			if v.Postprocess == nil {
				return "absent"
			}
			return string(v.Postprocess)
		}
	}
	t.Fatalf("route %s on the gateway has no variant %s: %s", name, variant, raw)
	return ""
}

// editVariant changes variant of route name on the gateway by hand, as
// someone with `weir route` would.
func editVariant(t *testing.T, g *testgw.Gateway, name, variant string, edit func(map[string]any)) {
	t.Helper()
	ctx := context.Background()
	raw, err := g.Client.GetRoute(ctx, name)
	if err != nil {
		t.Fatalf("get route %s: %v", name, err)
	}
	var r map[string]any
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("decode route %s: %v\n%s", name, err, raw)
	}
	for _, v := range r["variants"].([]any) {
		if v := v.(map[string]any); v["name"] == variant {
			edit(v)
		}
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Client.SetRoute(ctx, name, b); err != nil {
		t.Fatalf("set route %s by hand: %v", name, err)
	}
}

// A variant's explicit empty chain ([]: none) and an absent one (the
// route's) are different routes: a gateway holding the other one has
// drifted and is set back, either way round.
func TestVariantEmptyChainDriftIsCorrected(t *testing.T) {
	e := newEnv(t)
	e.start(t, func(o *Options) { o.ResyncInterval = time.Hour })
	ctx := context.Background()
	wr := simpleRoute(e, t, "chains", "chains")
	echoURL, echoSum := e.files.add("wat-echo.wasm", testgw.Plugin(t, "wat-echo"))
	wr.Spec.Plugins = []v1alpha1.PluginArtifact{{Name: "echo", Version: "1", Source: v1alpha1.ArtifactSource{URL: echoURL, SHA256: echoSum}}}
	wr.Spec.Route.Postprocess = []v1alpha1.PluginStep{{Name: "echo", Version: "1"}}
	none := []v1alpha1.PluginStep{}
	wr.Spec.Route.Variants[0].Postprocess = &none
	if err := e.c.Create(ctx, wr); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, e, "chains", 30*time.Second, readyRoute, "Ready")
	if got := variantPostprocess(t, e.gw, "chains", "stable"); got != "[]" {
		t.Fatalf("variant stable's postprocess on the gateway is %s, want [] (declared: none)", got)
	}

	// By hand, the variant gets the route's postprocess: drift.
	editVariant(t, e.gw, "chains", "stable", func(v map[string]any) { delete(v, "postprocess") })
	testpoll.For(t, 30*time.Second, "the variant's explicit empty postprocess set back", func() error {
		if got := variantPostprocess(t, e.gw, "chains", "stable"); got != "[]" {
			return fmt.Errorf("variant stable's postprocess on the gateway is %s, want [] (declared: none)", got)
		}
		return nil
	})

	// The other way round: the route's chain declared, none on the gateway.
	updateSpec(t, e.c, e.ns, "chains", func(s *v1alpha1.WeirRouteSpec) { s.Route.Variants[0].Postprocess = nil })
	testpoll.For(t, 30*time.Second, "the variant's postprocess removed as declared", func() error {
		if got := variantPostprocess(t, e.gw, "chains", "stable"); got != "absent" {
			return fmt.Errorf("variant stable's postprocess on the gateway is %s, want absent (declared: the route's)", got)
		}
		return nil
	})
	waitRoute(t, e, "chains", 30*time.Second, func(wr *v1alpha1.WeirRoute) bool { return readyRoute(wr) && wr.Generation == 2 }, "Ready at generation 2")
	editVariant(t, e.gw, "chains", "stable", func(v map[string]any) { v["postprocess"] = []any{} })
	testpoll.For(t, 30*time.Second, "the variant's absent postprocess set back", func() error {
		if got := variantPostprocess(t, e.gw, "chains", "stable"); got != "absent" {
			return fmt.Errorf("variant stable's postprocess on the gateway is %s, want absent (declared: the route's)", got)
		}
		return nil
	})
	testpoll.For(t, 30*time.Second, "a RouteRestored Event for each correction", func() error {
		if n := len(events(t, e.c, e.ns, "chains")["RouteRestored"]); n < 2 {
			return fmt.Errorf("%d RouteRestored Events, want 2", n)
		}
		return nil
	})
}

// Item 6: a bad artifact the route does not need blocks nothing else; every
// condition is for the current generation; Ready aggregates them.
func TestBadArtifactDoesNotBlockRouteEdits(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	wr := simpleRoute(e, t, "scoring", "score")
	url, _ := e.files.add("p.wasm", []byte("not the declared bytes"))
	wr.Spec.Plugins = []v1alpha1.PluginArtifact{{Name: "p", Version: "1", Source: v1alpha1.ArtifactSource{URL: url, SHA256: strings.Repeat("a", 64)}}}
	if err := e.c.Create(ctx, wr); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, e, "scoring", 30*time.Second, func(wr *v1alpha1.WeirRoute) bool {
		return condition(wr, v1alpha1.ConditionArtifactsReady, metav1.ConditionFalse, "ChecksumMismatch") &&
			condition(wr, v1alpha1.ConditionRouteApplied, metav1.ConditionTrue, "Applied") &&
			condition(wr, v1alpha1.ConditionReady, metav1.ConditionFalse, "ChecksumMismatch") && allCurrent(wr)
	}, "the route applied beside the bad plugin, Ready=False naming it")
	servedBy(t, e.gw, "scoring", `{"a":1,"b":2}`, "score", "1")

	updateSpec(t, e.c, e.ns, "scoring", func(s *v1alpha1.WeirRouteSpec) { s.Route.Sticky = &v1alpha1.Sticky{Header: "X-User"} })
	waitRoute(t, e, "scoring", 30*time.Second, func(wr *v1alpha1.WeirRoute) bool {
		return condition(wr, v1alpha1.ConditionRouteApplied, metav1.ConditionTrue, "Applied") && wr.Generation == 2 && allCurrent(wr)
	}, "the route edit of generation 2 applied despite the bad plugin")
	if r := route(t, e.gw, "scoring"); r.Sticky == nil || r.Sticky.Header != "X-User" {
		t.Fatalf("gateway route %+v lacks the sticky edit", r)
	}

	updateSpec(t, e.c, e.ns, "scoring", func(s *v1alpha1.WeirRouteSpec) { s.Plugins = nil })
	waitRoute(t, e, "scoring", 30*time.Second, readyRoute, "Ready once the bad plugin is no longer declared")
}

// Item 7: artifacts are streamed through a temporary file that is removed,
// one too large for the controller or the gateway (413) is not downloaded
// again and again, and the condition says which limit to raise.
func TestLargeArtifactLimits(t *testing.T) {
	e := newEnvWith(t, testgw.WithOptions(func(o *gateway.Options) { o.MaxUploadBytes = 4 << 10 }))
	tmp := t.TempDir()
	e.start(t, func(o *Options) { o.MaxArtifactSize = 64 << 10; o.TempDir = tmp })
	ctx := context.Background()
	var gets atomic.Int64
	e.files.setOnGet(func(string) { gets.Add(1) })
	fetched := metricValue(t, "weir_controller_artifact_fetch_bytes_total")

	small := simpleRoute(e, t, "small", "small")
	if err := e.c.Create(ctx, small); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, e, "small", 30*time.Second, readyRoute, "a small model pushed")
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Fatalf("temporary downloads left behind: %v", entries)
	}
	if got := metricValue(t, "weir_controller_artifact_fetch_bytes_total") - fetched; got <= 0 {
		t.Fatalf("weir_controller_artifact_fetch_bytes_total grew by %v after a download", got)
	}

	tests := []struct {
		name, reason, want string
		size               int
	}{
		{"over the gateway's --max-upload", "TooLargeForGateway", "--max-upload", 16 << 10},
		{"over the controller's limit", "TooLarge", "--max-artifact-size", 128 << 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			big := make([]byte, tc.size)
			copy(big, logReg(t, "big", []string{"a", "b"}, 1, 2))
			url, sum := e.files.add(tc.reason+".onnx", big)
			gets.Store(0)
			name := strings.ToLower(tc.reason)
			wr := simpleRoute(e, t, name, name)
			wr.Spec.Models[0].Source = v1alpha1.ArtifactSource{URL: url, SHA256: sum}
			if err := e.c.Create(ctx, wr); err != nil {
				t.Fatal(err)
			}
			got := waitRoute(t, e, name, 30*time.Second, func(wr *v1alpha1.WeirRoute) bool {
				return condition(wr, v1alpha1.ConditionArtifactsReady, metav1.ConditionFalse, tc.reason)
			}, "ArtifactsReady=False %s", tc.reason)
			if msg := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionArtifactsReady).Message; !strings.Contains(msg, tc.want) {
				t.Errorf("condition message %q does not name %s", msg, tc.want)
			}
			// Several resyncs (every 300ms) later, still one download.
			passes := reconcilePasses(t)
			testpoll.For(t, 20*time.Second, "six more reconcile passes", func() error {
				if n := reconcilePasses(t) - passes; n < 6 {
					return fmt.Errorf("%v more reconcile passes", n)
				}
				return nil
			})
			if n := gets.Load(); n != 1 {
				t.Fatalf("the too-large artifact was downloaded %d times, want once per generation", n)
			}
		})
	}
}

// metricValue sums the samples of a metric in the controller's registry.
func metricValue(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return v
}

// Item 8: the controller logs JSON at the chosen level, and its metrics are
// registered with controller-runtime's (served on --metrics-addr).
func TestLoggerLevelsAndMetrics(t *testing.T) {
	for _, tc := range []struct {
		level        string
		info, debugV bool
	}{{"info", true, false}, {"debug", true, true}, {"error", false, false}} {
		var buf strings.Builder
		log, err := NewLogger(&buf, tc.level)
		if err != nil {
			t.Fatal(err)
		}
		log.Info("hello", "route", "fraud")
		log.V(1).Info("details")
		out := buf.String()
		if strings.Contains(out, `"msg":"hello"`) != tc.info || strings.Contains(out, `"msg":"details"`) != tc.debugV {
			t.Errorf("level %s logged %q", tc.level, out)
		}
		if tc.info && !strings.Contains(out, `"route":"fraud"`) {
			t.Errorf("level %s: no structured key in %q", tc.level, out)
		}
	}
	if _, err := NewLogger(os.Stderr, "loud"); err == nil || !strings.Contains(err.Error(), "loud") {
		t.Errorf("--log-level loud: %v, want an error naming it", err)
	}
	mfs, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"weir_controller_artifact_fetch_bytes_total", "weir_controller_route_corrections_total", "weir_controller_desired_replicas"} {
		if !names[n] {
			t.Errorf("metric %s is not registered", n)
		}
	}
}

// Every field of the gateway's route can be declared in a WeirRoute and
// reaches the gateway as declared: per-plugin on_error, timeout and memory,
// a variant's own chains, header match rules and feature joins.
func TestEveryRouteFieldReachesTheGateway(t *testing.T) {
	e := newEnv(t)
	e.start(t, nil)
	ctx := context.Background()
	wr := simpleRoute(e, t, "full", "full")
	echoURL, echoSum := e.files.add("wat-echo.wasm", testgw.Plugin(t, "wat-echo"))
	wr.Spec.Plugins = []v1alpha1.PluginArtifact{{Name: "echo", Version: "1", Source: v1alpha1.ArtifactSource{URL: echoURL, SHA256: echoSum}}}
	rs := &wr.Spec.Route
	rs.Plugins = []v1alpha1.PluginStep{{Name: "echo", Version: "1",
		OnError: &apiextensionsv1.JSON{Raw: []byte(`{"default":{"a":0}}`)}, Timeout: "50ms", MemoryMB: 32}}
	none := []v1alpha1.PluginStep{}
	rs.Variants[0].Plugins = &[]v1alpha1.PluginStep{{Name: "echo", OnError: &apiextensionsv1.JSON{Raw: []byte(`"skip"`)}}}
	rs.Variants[0].Postprocess = &none
	rs.Match = []v1alpha1.MatchRule{{Header: "X-Variant", Value: "s", Variant: "stable"}}
	rs.Features = &v1alpha1.FeatureJoin{Sets: []v1alpha1.Name{"accounts"}, KeyField: "account_id"}
	if err := e.c.Create(ctx, wr); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, e, "full", 30*time.Second, readyRoute, "Ready")
	raw, err := e.gw.Client.GetRoute(ctx, "full")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Plugins []struct {
			Name     string          `json:"name"`
			OnError  json.RawMessage `json:"on_error"`
			Timeout  string          `json:"timeout"`
			MemoryMB int             `json:"memory_mb"`
		} `json:"plugins"`
		Variants []struct {
			Plugins *[]struct {
				OnError json.RawMessage `json:"on_error"`
			} `json:"plugins"`
			Postprocess *[]json.RawMessage `json:"postprocess"`
		} `json:"variants"`
		Match    []struct{ Header, Value, Variant string } `json:"match"`
		Features *struct {
			Sets     []string `json:"sets"`
			KeyField string   `json:"key_field"`
		} `json:"features"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	var problems []string
	if len(got.Plugins) != 1 || string(got.Plugins[0].OnError) != `{"default":{"a":0}}` || got.Plugins[0].Timeout != "50ms" || got.Plugins[0].MemoryMB != 32 {
		problems = append(problems, "the route's plugin step lost on_error, timeout or memory_mb")
	}
	if v := got.Variants; len(v) != 1 || v[0].Plugins == nil || len(*v[0].Plugins) != 1 || string((*v[0].Plugins)[0].OnError) != `"skip"` ||
		v[0].Postprocess == nil || len(*v[0].Postprocess) != 0 {
		problems = append(problems, "the variant's own chains (one plugin, explicitly no postprocess) are not as declared")
	}
	if len(got.Match) != 1 || got.Match[0].Header != "X-Variant" || got.Match[0].Variant != "stable" {
		problems = append(problems, "the match rule is missing")
	}
	if got.Features == nil || got.Features.KeyField != "account_id" || len(got.Features.Sets) != 1 {
		problems = append(problems, "the feature join is missing")
	}
	if len(problems) > 0 {
		t.Fatalf("%s\ngateway route: %s", strings.Join(problems, "; "), raw)
	}
}
