package controller

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/weirhq/weir/deploy/api/v1alpha1"
)

// setup starts a test gateway and a controller manager for a new namespace.
func setup(t *testing.T) (*testGateway, client.Client, string) {
	t.Helper()
	cfg, c := startEnv(t)
	ns := newNamespace(t, c)
	gw := newTestGateway(t)
	startReconciler(t, cfg, gw, ns)
	return gw, c, ns
}

func startReconciler(t *testing.T, cfg *rest.Config, gw *testGateway, ns string) {
	t.Helper()
	startManager(t, cfg, Options{GatewayURL: gw.srv.URL, Token: "test-token", Namespace: ns, FollowInterval: 200 * time.Millisecond})
}

func variant(name, model, version string, weight int32) v1alpha1.Variant {
	return v1alpha1.Variant{Name: v1alpha1.Name(name), Model: v1alpha1.Name(model), Version: v1alpha1.Name(version), Weight: weight}
}

func urlModel(gw *testGateway, name, version, content string) v1alpha1.ModelArtifact {
	url, sum := gw.addFile(name+"-"+version+".onnx", []byte(content))
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
	eventually(t, 10*time.Second, "spec update without conflict", func() bool {
		wr := getRoute(t, c, ns, name)
		mutate(&wr.Spec)
		return c.Update(context.Background(), wr) == nil
	})
}

func TestReconcileVersionChange(t *testing.T) {
	gw, c, ns := setup(t)
	ctx := context.Background()

	// The reference comes from a ConfigMap, the model from HTTP.
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "fraud-ref"},
		Data:       map[string]string{"ref.csv": "amount,age\n1,2\n"},
	}
	if err := c.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	m1 := urlModel(gw, "fraud", "1", "onnx-bytes-v1")
	m1.Features = []string{"amount", "age"}
	m1.Reference = &v1alpha1.ReferenceSource{ArtifactSource: v1alpha1.ArtifactSource{
		ConfigMapRef: &v1alpha1.ConfigMapKeyRef{Name: "fraud-ref", Key: "ref.csv"},
	}}
	wr := &v1alpha1.WeirRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "fraud"},
		Spec: v1alpha1.WeirRouteSpec{
			Models: []v1alpha1.ModelArtifact{m1},
			Route: v1alpha1.RouteSpec{
				Variants: []v1alpha1.Variant{variant("stable", "fraud", "1", 100)},
				Sticky:   &v1alpha1.Sticky{Header: "X-User-Id"},
			},
		},
	}
	if err := c.Create(ctx, wr); err != nil {
		t.Fatal(err)
	}

	eventually(t, 20*time.Second, "fraud@1 pushed with its reference and the route applied", func() bool {
		got := getRoute(t, c, ns, "fraud")
		return gw.hasModel("fraud", "1") && gw.hasReference("fraud", "1") &&
			condition(got, v1alpha1.ConditionArtifactsReady, metav1.ConditionTrue, "Present") &&
			condition(got, v1alpha1.ConditionRouteApplied, metav1.ConditionTrue, "Applied") &&
			got.Status.ObservedGeneration == got.Generation &&
			len(got.Status.Models) == 1 && got.Status.Models[0].Version == "1"
	})
	if r := gw.route("fraud"); r == nil || r["sticky"].(map[string]any)["header"] != "X-User-Id" {
		t.Fatalf("gateway route = %v, want sticky header X-User-Id", r)
	}
	eventually(t, 10*time.Second, "Events ModelPushed and RouteApplied on the WeirRoute", func() bool {
		var evs eventsv1.EventList
		if err := c.List(ctx, &evs, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, e := range evs.Items {
			if e.Regarding.Kind == "WeirRoute" && e.Regarding.Name == "fraud" {
				seen[e.Reason] = true
			}
		}
		return seen["ModelPushed"] && seen["ReferencePushed"] && seen["RouteApplied"]
	})
	if n := gw.count("PUT /v1/models/fraud/versions/1"); n != 1 {
		t.Fatalf("fraud@1 pushed %d times, want once", n)
	}

	// Declare version 2 while the route still sends traffic to 1: 2 is pushed,
	// deleting 1 is refused (409) and deferred.
	m2 := urlModel(gw, "fraud", "2", "onnx-bytes-v2")
	updateSpec(t, c, ns, "fraud", func(s *v1alpha1.WeirRouteSpec) { s.Models = []v1alpha1.ModelArtifact{m2} })
	eventually(t, 20*time.Second, "fraud@2 pushed and the delete of fraud@1 deferred", func() bool {
		return gw.hasModel("fraud", "2") && gw.count("DELETE /v1/models/fraud/versions/1") >= 1
	})
	if !gw.hasModel("fraud", "1") {
		t.Fatal("fraud@1 was deleted while the route still used it")
	}

	// Move the route to 2: now 1 goes.
	updateSpec(t, c, ns, "fraud", func(s *v1alpha1.WeirRouteSpec) {
		s.Route.Variants = []v1alpha1.Variant{variant("stable", "fraud", "2", 100)}
	})
	eventually(t, 20*time.Second, "route on fraud@2 and fraud@1 deleted", func() bool {
		got := getRoute(t, c, ns, "fraud")
		r := gw.route("fraud")
		v := r["variants"].([]any)[0].(map[string]any)
		return v["version"] == "2" && !gw.hasModel("fraud", "1") &&
			len(got.Status.Managed) == 1 && got.Status.Managed[0] == "model/fraud@2"
	})
}

func TestReconcileBadArtifactLeavesServingAlone(t *testing.T) {
	gw, c, ns := setup(t)
	ctx := context.Background()
	wr := &v1alpha1.WeirRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "scoring"},
		Spec: v1alpha1.WeirRouteSpec{
			Models: []v1alpha1.ModelArtifact{urlModel(gw, "score", "1", "onnx-v1")},
			Route:  v1alpha1.RouteSpec{Variants: []v1alpha1.Variant{variant("stable", "score", "1", 100)}},
		},
	}
	if err := c.Create(ctx, wr); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "score@1 served", func() bool {
		return condition(getRoute(t, c, ns, "scoring"), v1alpha1.ConditionRouteApplied, metav1.ConditionTrue, "Applied")
	})

	tests := []struct {
		name   string
		model  func() v1alpha1.ModelArtifact
		reason string
	}{
		{"checksum mismatch", func() v1alpha1.ModelArtifact {
			m := urlModel(gw, "score", "2", "onnx-v2")
			m.Source.SHA256 = "0000000000000000000000000000000000000000000000000000000000000000"
			return m
		}, "ChecksumMismatch"},
		{"gateway rejects the bytes", func() v1alpha1.ModelArtifact {
			return urlModel(gw, "score", "3", "bad onnx")
		}, "Rejected"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.model()
			updateSpec(t, c, ns, "scoring", func(s *v1alpha1.WeirRouteSpec) {
				s.Models = append(s.Models[:1], m)
				s.Route.Variants = []v1alpha1.Variant{variant("stable", "score", "1", 90), variant("canary", "score", string(m.Version), 10)}
			})
			eventually(t, 20*time.Second, "ArtifactsReady=False reason "+tc.reason, func() bool {
				return condition(getRoute(t, c, ns, "scoring"), v1alpha1.ConditionArtifactsReady, metav1.ConditionFalse, tc.reason)
			})
			got := getRoute(t, c, ns, "scoring")
			if c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionArtifactsReady); c.Message == "" {
				t.Error("condition has no message")
			}
			if gw.hasModel("score", string(m.Version)) {
				t.Fatalf("score@%s is on the gateway", m.Version)
			}
			if !gw.hasModel("score", "1") {
				t.Fatal("score@1 was removed")
			}
			r := gw.route("scoring")
			if vs := r["variants"].([]any); len(vs) != 1 || vs[0].(map[string]any)["version"] != "1" {
				t.Fatalf("route changed to %v despite the bad artifact", r)
			}
		})
	}
}

func TestReconcileRollout(t *testing.T) {
	gw, c, ns := setup(t)
	ctx := context.Background()
	p99 := int32(50)
	wr := &v1alpha1.WeirRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "fraud"},
		Spec: v1alpha1.WeirRouteSpec{
			Models: []v1alpha1.ModelArtifact{urlModel(gw, "fraud", "1", "v1"), urlModel(gw, "fraud", "2", "v2")},
			Route:  v1alpha1.RouteSpec{Variants: []v1alpha1.Variant{variant("stable", "fraud", "1", 100)}},
			Rollout: &v1alpha1.RolloutSpec{
				Model: "fraud", Version: "2", Steps: []int32{5, 25, 50, 100},
				Interval: &metav1.Duration{Duration: 30 * time.Second}, MaxErrorRate: "0.01", MaxP99Ms: &p99,
			},
		},
	}
	if err := c.Create(ctx, wr); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "rollout started and progressing in status", func() bool {
		got := getRoute(t, c, ns, "fraud")
		return got.Status.Rollout != nil && got.Status.Rollout.State == "progressing" && got.Status.Rollout.Weight == 5 &&
			condition(got, v1alpha1.ConditionRolloutProgressing, metav1.ConditionTrue, "Progressing")
	})
	spec := gw.rollout("fraud")["spec"].(map[string]any)
	if spec["variant"] != "canary" || spec["version"] != "2" || spec["interval"] != "30s" || spec["max_error_rate"] != 0.01 || spec["max_p99_ms"] != 50.0 {
		t.Fatalf("gateway got rollout spec %v", spec)
	}

	// The gateway moves on; the controller follows without a spec change.
	gw.setRollout("fraud", map[string]any{"state": "promoted", "weight": 100})
	eventually(t, 30*time.Second, "rollout promoted in status", func() bool {
		got := getRoute(t, c, ns, "fraud")
		return got.Status.Rollout != nil && got.Status.Rollout.State == "promoted" &&
			condition(got, v1alpha1.ConditionRolloutProgressing, metav1.ConditionFalse, "Promoted")
	})
	if n := gw.count("POST /v1/routes/fraud/rollout"); n != 1 {
		t.Fatalf("rollout started %d times, want once", n)
	}
}
