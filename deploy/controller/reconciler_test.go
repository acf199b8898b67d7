package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/weirhq/weir/deploy/api/v1alpha1"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/internal/testpoll"
)

// env is one reconciler test's world: a real gateway, the artifact file
// server, the API server's client and the test's namespace.
type env struct {
	gw    *testgw.Gateway
	files *fileServer
	c     client.Client
	ns    string
}

// setup starts a real gateway, an artifact file server and a controller
// manager for a new namespace.
func setup(t *testing.T) env {
	t.Helper()
	e := newEnv(t)
	e.start(t, nil)
	return e
}

// newEnv starts the gateway (with opts) and the file server, and makes the
// namespace, without a controller yet.
func newEnv(t *testing.T) env { return newEnvWith(t) }

func newEnvWith(t *testing.T, opts ...testgw.Option) env {
	t.Helper()
	_, c := startEnv(t)
	return env{gw: startGateway(t, opts...), files: newFileServer(t), c: c, ns: newNamespace(t, c)}
}

// start runs a controller manager for e's namespace and gateway, with short
// follow, resync and retry intervals; mutate changes its options.
func (e env) start(t *testing.T, mutate func(*Options)) {
	t.Helper()
	cfg, _ := startEnv(t)
	e.startAs(t, cfg, mutate)
}

// startAs is start with the API server config cfg (an impersonating one
// runs the controller under that identity's RBAC).
func (e env) startAs(t *testing.T, cfg *rest.Config, mutate func(*Options)) {
	t.Helper()
	o := Options{
		GatewayURL: e.gw.URL, Token: e.gw.Token, Namespace: e.ns,
		FollowInterval: 200 * time.Millisecond, ResyncInterval: 300 * time.Millisecond,
		retryBase: 100 * time.Millisecond, retryMax: 2 * time.Second,
	}
	if mutate != nil {
		mutate(&o)
	}
	startManager(t, cfg, o)
}

func variant(name, model, version string, weight int32) v1alpha1.Variant {
	return v1alpha1.Variant{Name: v1alpha1.Name(name), Model: v1alpha1.Name(model), Version: v1alpha1.Name(version), Weight: weight}
}

// urlModel serves b from the file server and declares it as name@version.
func (e env) urlModel(name, version string, b []byte) v1alpha1.ModelArtifact {
	url, sum := e.files.add(name+"-"+version+".onnx", b)
	return v1alpha1.ModelArtifact{
		Name: v1alpha1.Name(name), Version: v1alpha1.Name(version),
		Source: v1alpha1.ArtifactSource{URL: url, SHA256: sum},
	}
}

func getRoute(t *testing.T, c client.Client, ns, name string) *v1alpha1.WeirRoute {
	t.Helper()
	var wr v1alpha1.WeirRoute
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &wr); err != nil {
		t.Fatalf("get WeirRoute %s/%s: %v", ns, name, err)
	}
	return &wr
}

// condition reports whether wr has condition typ with status and reason for
// its current generation.
func condition(wr *v1alpha1.WeirRoute, typ string, status metav1.ConditionStatus, reason string) bool {
	c := meta.FindStatusCondition(wr.Status.Conditions, typ)
	return c != nil && c.Status == status && c.Reason == reason && c.ObservedGeneration == wr.Generation
}

func updateSpec(t *testing.T, c client.Client, ns, name string, mutate func(*v1alpha1.WeirRouteSpec)) {
	t.Helper()
	testpoll.For(t, 10*time.Second, "spec update without conflict", func() error {
		wr := getRoute(t, c, ns, name)
		mutate(&wr.Spec)
		return c.Update(context.Background(), wr)
	})
}

// events returns the Events about WeirRoute name: reason -> notes.
func events(t *testing.T, c client.Client, ns, name string) map[string][]string {
	t.Helper()
	var evs eventsv1.EventList
	if err := c.List(context.Background(), &evs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, e := range evs.Items {
		if e.Regarding.Kind == "WeirRoute" && e.Regarding.Name == name {
			out[e.Reason] = append(out[e.Reason], e.Note)
		}
	}
	return out
}

// reasons lists the reasons of events(...) for a failure message.
func reasons(seen map[string][]string) []string { return slices.Sorted(maps.Keys(seen)) }

// loaded returns status.models as "name@version" strings.
func loaded(wr *v1alpha1.WeirRoute) []string {
	var out []string
	for _, m := range wr.Status.Models {
		out = append(out, m.Name+"@"+m.Version)
	}
	return out
}

func TestReconcileVersionChange(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	features := []string{"amount", "age"}
	const event = `{"amount":1,"age":2}`

	// The reference comes from a ConfigMap, the model and the plugin from
	// HTTP; the route runs the event through the plugin before the model.
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "fraud-ref"},
		Data:       map[string]string{"ref.csv": "amount,age\n1,2\n3,4\n"},
	}
	if err := e.c.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	m1 := e.urlModel("fraud", "1", logReg(t, "fraud", features, 1, 2))
	m1.Features = features
	m1.Reference = &v1alpha1.ReferenceSource{ArtifactSource: v1alpha1.ArtifactSource{
		ConfigMapRef: &v1alpha1.ConfigMapKeyRef{Name: "fraud-ref", Key: "ref.csv"},
	}}
	echoURL, echoSum := e.files.add("wat-echo.wasm", testgw.Plugin(t, "wat-echo"))
	wr := &v1alpha1.WeirRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "fraud"},
		Spec: v1alpha1.WeirRouteSpec{
			Models:  []v1alpha1.ModelArtifact{m1},
			Plugins: []v1alpha1.PluginArtifact{{Name: "echo", Version: "1", Source: v1alpha1.ArtifactSource{URL: echoURL, SHA256: echoSum}}},
			Route: v1alpha1.RouteSpec{
				Plugins:  []v1alpha1.PluginStep{{Name: "echo", Version: "1"}},
				Variants: []v1alpha1.Variant{variant("stable", "fraud", "1", 100)},
				Sticky:   &v1alpha1.Sticky{Header: "X-User-Id"},
			},
		},
	}
	if err := e.c.Create(ctx, wr); err != nil {
		t.Fatal(err)
	}

	testpoll.For(t, 20*time.Second, "fraud@1 on the gateway with its reference, the route applied and status saying so", func() error {
		got := getRoute(t, e.c, e.ns, "fraud")
		v, ok := modelVersion(t, e.gw, "fraud", "1")
		if ok && v.Reference && v.State == "ready" &&
			condition(got, v1alpha1.ConditionArtifactsReady, metav1.ConditionTrue, "Present") &&
			condition(got, v1alpha1.ConditionRouteApplied, metav1.ConditionTrue, "Applied") &&
			got.Status.ObservedGeneration == got.Generation &&
			slices.Equal(loaded(got), []string{"fraud@1"}) && got.Status.Models[0].State == "ready" {
			return nil
		}
		return fmt.Errorf("gateway fraud@1 %+v (present %v); status.models %+v, observed generation %d; %s",
			v, ok, got.Status.Models, got.Status.ObservedGeneration, conditionsOf(got))
	})
	if !hasPlugin(t, e.gw, "echo", "1") {
		t.Fatal("plugin echo@1 is not on the gateway")
	}
	r := route(t, e.gw, "fraud")
	if !r.onlyVariant("fraud", "1") || r.Sticky == nil || r.Sticky.Header != "X-User-Id" ||
		len(r.Plugins) != 1 || r.Plugins[0].Name != "echo" {
		t.Fatalf("gateway route = %+v, want fraud@1 at 100, plugin echo and sticky header X-User-Id", r)
	}
	servedBy(t, e.gw, "fraud", event, "fraud", "1")
	testpoll.For(t, 10*time.Second, "Events ModelPushed, ReferencePushed, PluginPushed and RouteApplied on the WeirRoute", func() error {
		seen := events(t, e.c, e.ns, "fraud")
		if seen["ModelPushed"] != nil && seen["ReferencePushed"] != nil && seen["PluginPushed"] != nil && seen["RouteApplied"] != nil {
			return nil
		}
		return fmt.Errorf("Events %v", reasons(seen))
	})
	v1, _ := modelVersion(t, e.gw, "fraud", "1")

	// Declare version 2 while the route still sends traffic to 1: 2 is pushed,
	// deleting 1 is refused (409) and deferred, and 1 keeps serving.
	m2 := e.urlModel("fraud", "2", logReg(t, "fraud", features, 2, 1))
	m2.Features = features
	updateSpec(t, e.c, e.ns, "fraud", func(s *v1alpha1.WeirRouteSpec) { s.Models = []v1alpha1.ModelArtifact{m2} })
	testpoll.For(t, 20*time.Second, "fraud@2 on the gateway and the delete of fraud@1 deferred", func() error {
		has, seen := hasModel(t, e.gw, "fraud", "2"), events(t, e.c, e.ns, "fraud")
		if has && seen["DeleteDeferred"] != nil {
			return nil
		}
		return fmt.Errorf("fraud@2 on the gateway: %v; Events %v", has, reasons(seen))
	})
	if v, ok := modelVersion(t, e.gw, "fraud", "1"); !ok || !v.Uploaded.Equal(v1.Uploaded) {
		t.Fatalf("fraud@1 after declaring 2: %+v (present %v), want it untouched since %v", v, ok, v1.Uploaded)
	}
	servedBy(t, e.gw, "fraud", event, "fraud", "1")

	// Move the route to 2: 2 serves, and 1 goes now that nothing uses it.
	updateSpec(t, e.c, e.ns, "fraud", func(s *v1alpha1.WeirRouteSpec) {
		s.Route.Variants = []v1alpha1.Variant{variant("stable", "fraud", "2", 100)}
	})
	testpoll.For(t, 20*time.Second, "route on fraud@2, fraud@1 deleted and status saying so", func() error {
		got := getRoute(t, e.c, e.ns, "fraud")
		managed := slices.Sorted(slices.Values(got.Status.Managed))
		r, has1 := route(t, e.gw, "fraud"), hasModel(t, e.gw, "fraud", "1")
		if r.onlyVariant("fraud", "2") && !has1 &&
			slices.Equal(managed, []string{"model/fraud@2", "plugin/echo@1"}) &&
			slices.Equal(loaded(got), []string{"fraud@2"}) {
			return nil
		}
		return fmt.Errorf("gateway route %v, fraud@1 on the gateway: %v; status.managed %v, status.models %v", r, has1, managed, loaded(got))
	})
	servedBy(t, e.gw, "fraud", event, "fraud", "2")
	if seen := events(t, e.c, e.ns, "fraud"); seen["Deleted"] == nil {
		t.Fatalf("no Deleted Event after fraud@1 went; Events: %v", seen)
	}
}

func TestReconcileBadArtifactLeavesServingAlone(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	features := []string{"a", "b"}
	const event = `{"a":1,"b":2}`
	wr := &v1alpha1.WeirRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "scoring"},
		Spec: v1alpha1.WeirRouteSpec{
			Models: []v1alpha1.ModelArtifact{e.urlModel("score", "1", logReg(t, "score", features, 1, 2))},
			Route:  v1alpha1.RouteSpec{Variants: []v1alpha1.Variant{variant("stable", "score", "1", 100)}},
		},
	}
	if err := e.c.Create(ctx, wr); err != nil {
		t.Fatal(err)
	}
	testpoll.For(t, 20*time.Second, "score@1 served", func() error {
		if got := getRoute(t, e.c, e.ns, "scoring"); !condition(got, v1alpha1.ConditionRouteApplied, metav1.ConditionTrue, "Applied") {
			return errors.New(conditionsOf(got))
		}
		return nil
	})
	servedBy(t, e.gw, "scoring", event, "score", "1")

	// What the gateway itself says about bytes that are not a model: the
	// condition must carry that reason.
	const notAModel = "not a model"
	probeErr := e.gw.Client.PushModel(ctx, "probe", "1", strings.NewReader(notAModel), nil)
	if probeErr == nil {
		t.Fatal("the gateway accepted bytes that are not a model")
	}

	tests := []struct {
		name   string
		model  func() v1alpha1.ModelArtifact
		reason string
		want   string // in the condition's message
	}{
		{"checksum mismatch", func() v1alpha1.ModelArtifact {
			m := e.urlModel("score", "2", logReg(t, "score", features, 3, 4))
			m.Source.SHA256 = strings.Repeat("0", 64)
			return m
		}, "ChecksumMismatch", "the resource declares " + strings.Repeat("0", 64)},
		{"gateway rejects the bytes", func() v1alpha1.ModelArtifact {
			return e.urlModel("score", "3", []byte(notAModel))
		}, "Rejected", "gateway rejected model score@3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.model()
			updateSpec(t, e.c, e.ns, "scoring", func(s *v1alpha1.WeirRouteSpec) {
				s.Models = append(s.Models[:1], m)
				s.Route.Variants = []v1alpha1.Variant{variant("stable", "score", "1", 90), variant("canary", "score", string(m.Version), 10)}
			})
			testpoll.For(t, 20*time.Second, "ArtifactsReady=False reason "+tc.reason, func() error {
				if got := getRoute(t, e.c, e.ns, "scoring"); !condition(got, v1alpha1.ConditionArtifactsReady, metav1.ConditionFalse, tc.reason) {
					return errors.New(conditionsOf(got))
				}
				return nil
			})
			got := getRoute(t, e.c, e.ns, "scoring")
			msg := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionArtifactsReady).Message
			t.Logf("condition %s: %s", tc.reason, msg)
			if !strings.Contains(msg, tc.want) {
				t.Errorf("condition message %q does not contain %q", msg, tc.want)
			}
			testpoll.For(t, 10*time.Second, "a Warning Event "+tc.reason, func() error {
				if seen := events(t, e.c, e.ns, "scoring"); seen[tc.reason] == nil {
					return fmt.Errorf("Events %v", reasons(seen))
				}
				return nil
			})
			if hasModel(t, e.gw, "score", string(m.Version)) {
				t.Fatalf("score@%s is on the gateway", m.Version)
			}
			if !hasModel(t, e.gw, "score", "1") {
				t.Fatal("score@1 was removed")
			}
			if r := route(t, e.gw, "scoring"); !r.onlyVariant("score", "1") {
				t.Fatalf("route changed to %+v despite the bad artifact", r)
			}
			servedBy(t, e.gw, "scoring", event, "score", "1")
		})
	}
	// The gateway's own reason reaches the condition (the probe's message
	// names the probe; compare what follows the name).
	got := getRoute(t, e.c, e.ns, "scoring")
	msg := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionArtifactsReady).Message
	if reason := gatewayReason(probeErr, "probe@1"); reason == "" || !strings.Contains(msg, reason) {
		t.Errorf("condition message %q lacks the gateway's reason %q (from %v)", msg, reason, probeErr)
	}
}

func TestReconcileRollout(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	features := []string{"a", "b"}
	p99 := int32(2000)
	minRequests := int32(5)
	wr := &v1alpha1.WeirRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "fraud"},
		Spec: v1alpha1.WeirRouteSpec{
			Models: []v1alpha1.ModelArtifact{
				e.urlModel("fraud", "1", logReg(t, "fraud", features, 1, 2)),
				e.urlModel("fraud", "2", logReg(t, "fraud", features, 2, 1)),
			},
			Route: v1alpha1.RouteSpec{Variants: []v1alpha1.Variant{variant("stable", "fraud", "1", 100)}},
			Rollout: &v1alpha1.RolloutSpec{
				Model: "fraud", Version: "2", Steps: []int32{20, 50, 100},
				Interval: ptr.To(v1alpha1.Duration("200ms")), MaxErrorRate: "0.05", MaxP99Ms: &p99,
				MinRequests: &minRequests,
			},
		},
	}
	if err := e.c.Create(ctx, wr); err != nil {
		t.Fatal(err)
	}

	// No traffic yet: the canary waits at its first step.
	testpoll.For(t, 20*time.Second, "rollout started and progressing at 20% in status", func() error {
		got := getRoute(t, e.c, e.ns, "fraud")
		ro := got.Status.Rollout
		if ro == nil {
			return fmt.Errorf("no status.rollout; %s", conditionsOf(got))
		}
		if ro.State != "progressing" || ro.Weight != 20 || !condition(got, v1alpha1.ConditionRolloutProgressing, metav1.ConditionTrue, "Progressing") {
			return fmt.Errorf("status.rollout %s at %d%%; %s", ro.State, ro.Weight, conditionsOf(got))
		}
		return nil
	})
	st := rollout(t, e.gw, "fraud")
	if s := st.Spec; s.Variant != "canary" || s.Model != "fraud" || s.Version != "2" || !slices.Equal(s.Steps, []int{20, 50, 100}) ||
		s.Interval != "200ms" || s.MaxErrorRate == nil || *s.MaxErrorRate != 0.05 || s.MaxP99Ms == nil || *s.MaxP99Ms != 2000 || s.MinRequests != 5 {
		t.Fatalf("gateway runs rollout spec %+v", s)
	}
	startedAt := st.StartedAt

	// Traffic lets the canary pass each step; the controller follows the
	// gateway's rollout without a spec change.
	promoted := func() bool {
		got := getRoute(t, e.c, e.ns, "fraud")
		return got.Status.Rollout != nil && got.Status.Rollout.State == "promoted" && got.Status.Rollout.Weight == 100 &&
			condition(got, v1alpha1.ConditionRolloutProgressing, metav1.ConditionFalse, "Promoted")
	}
	sent := 0
	for ; sent < 20000 && !promoted(); sent++ {
		if p := predict(t, e.gw, "fraud", `{"a":1,"b":2}`); p.Status != http.StatusOK {
			t.Fatalf("predict during the rollout: HTTP %d %s", p.Status, p.Body)
		}
	}
	if !promoted() {
		t.Fatalf("rollout not promoted in status after %d requests; gateway: %+v", sent, rollout(t, e.gw, "fraud"))
	}
	testpoll.For(t, 10*time.Second, "the promotion on the gateway's route", func() error {
		if r := route(t, e.gw, "fraud"); !r.onlyVariant("fraud", "2") {
			return fmt.Errorf("gateway route %v", r)
		}
		return nil
	})
	servedBy(t, e.gw, "fraud", `{"a":1,"b":2}`, "fraud", "2")
	if st := rollout(t, e.gw, "fraud"); !st.StartedAt.Equal(startedAt) {
		t.Fatalf("rollout restarted at %v (first started %v): want it started once", st.StartedAt, startedAt)
	}
	seen := events(t, e.c, e.ns, "fraud")
	if len(seen["RolloutStarted"]) != 1 || seen["RolloutPromoted"] == nil {
		t.Fatalf("Events %v, want one RolloutStarted and a RolloutPromoted", seen)
	}
}

// gatewayReason is what the gateway's 400 says after naming the artifact.
func gatewayReason(err error, name string) string {
	msg := err.Error()
	if i := strings.Index(msg, name); i >= 0 {
		msg = msg[i+len(name):]
	}
	msg = strings.TrimSuffix(msg, " (HTTP 400)")
	return strings.TrimLeft(msg, ": ")
}

// The route body the controller PUTs is the gateway's route JSON exactly:
// every field spelled as docs/api.md spells it, a variant's absent chain left
// out (the route's) and an empty one sent as [] (none).
func TestRouteJSONWireShape(t *testing.T) {
	none := []v1alpha1.PluginStep{}
	own := []v1alpha1.PluginStep{{Name: "echo", OnError: &apiextensionsv1.JSON{Raw: []byte(`"skip"`)}}}
	wr := &v1alpha1.WeirRoute{Spec: v1alpha1.WeirRouteSpec{Route: v1alpha1.RouteSpec{
		Plugins: []v1alpha1.PluginStep{{Name: "echo", Version: "1", Config: &apiextensionsv1.JSON{Raw: []byte(`{"k": [1, 2]}`)},
			OnError: &apiextensionsv1.JSON{Raw: []byte(`{"default": {"a": 0}}`)}, Timeout: "50ms", MemoryMB: 32}},
		Variants: []v1alpha1.Variant{
			{Name: "stable", Model: "m", Version: "1", Weight: 90, Plugins: &own, Postprocess: &none},
			{Name: "canary", Model: "m", Version: "2", Weight: 10},
		},
		Sticky:   &v1alpha1.Sticky{Header: "X-User"},
		Shadow:   &v1alpha1.Shadow{Model: "m", Version: "3", Percent: 5},
		Match:    []v1alpha1.MatchRule{{Header: "X-Variant", Value: "c", Variant: "canary"}},
		Features: &v1alpha1.FeatureJoin{Sets: []v1alpha1.Name{"accounts"}, KeyField: "account_id"},
	}}}
	got, err := routeJSON(wr)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"plugins":[{"name":"echo","version":"1","config":{"k":[1,2]},"on_error":{"default":{"a":0}},"timeout":"50ms","memory_mb":32}],` +
		`"postprocess":[],` +
		`"variants":[{"name":"stable","model":"m","version":"1","weight":90,"plugins":[{"name":"echo","on_error":"skip"}],"postprocess":[]},` +
		`{"name":"canary","model":"m","version":"2","weight":10}],` +
		`"sticky":{"header":"X-User"},"shadow":{"model":"m","version":"3","percent":5},` +
		`"match":[{"header":"X-Variant","value":"c","variant":"canary"}],"features":{"sets":["accounts"],"key_field":"account_id"}}`
	if string(got) != want {
		t.Fatalf("route body\n got %s\nwant %s", got, want)
	}

	// A route without chains still sends both lists, empty.
	bare := &v1alpha1.WeirRoute{Spec: v1alpha1.WeirRouteSpec{Route: v1alpha1.RouteSpec{
		Variants: []v1alpha1.Variant{{Name: "stable", Model: "m", Version: "1", Weight: 100}}}}}
	got, err = routeJSON(bare)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"plugins":[],"postprocess":[],"variants":[{"name":"stable","model":"m","version":"1","weight":100}]}`; string(got) != want {
		t.Fatalf("bare route body\n got %s\nwant %s", got, want)
	}
}

// An on_error the gateway could not read (neither a string nor an object)
// is refused before anything is sent, naming its field.
func TestDeclaredRouteNamesBadOnError(t *testing.T) {
	bad := []v1alpha1.PluginStep{{Name: "echo", OnError: &apiextensionsv1.JSON{Raw: []byte(`5`)}}}
	wr := &v1alpha1.WeirRoute{Spec: v1alpha1.WeirRouteSpec{Route: v1alpha1.RouteSpec{
		Variants: []v1alpha1.Variant{{Name: "stable", Model: "m", Version: "1", Weight: 100, Postprocess: &bad}}}}}
	_, err := routeJSON(wr)
	if err == nil || !strings.Contains(err.Error(), "spec.route.variants[name=stable].postprocess[0].on_error") {
		t.Fatalf("routeJSON with on_error 5: %v, want an error naming spec.route.variants[name=stable].postprocess[0].on_error", err)
	}
}

func TestSameRoute(t *testing.T) {
	const v = `{"name":"stable","model":"m","version":"1","weight":100`
	for _, c := range []struct {
		gateway, body string
		same          bool
	}{
		{`{"name":"r","revision":3,"updated_at":"2026-01-02T03:04:05Z","plugins":null,"postprocess":null,"variants":[` + v + `}]}`,
			`{"plugins":[],"postprocess":[],"variants":[` + v + `}]}`, true},
		{`{"variants":[` + v + `,"postprocess":null}]}`, `{"variants":[` + v + `}]}`, true},
		{`{"variants":[` + v + `,"postprocess":[]}]}`, `{"variants":[` + v + `,"postprocess":[]}]}`, true},
		{`{"variants":[` + v + `}]}`, `{"variants":[` + v + `,"postprocess":[]}]}`, false},
		{`{"variants":[` + v + `,"plugins":[]}]}`, `{"variants":[` + v + `}]}`, false},
		{`{"variants":[` + v + `}],"sticky":{"header":"X-User"}}`, `{"variants":[` + v + `}]}`, false},
	} {
		if got := sameRoute([]byte(c.gateway), []byte(c.body)); got != c.same {
			t.Errorf("sameRoute(%s, %s) = %v, want %v", c.gateway, c.body, got, c.same)
		}
	}
}
