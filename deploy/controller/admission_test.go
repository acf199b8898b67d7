package controller

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// admissionBase is a valid WeirRoute every admission case starts from: two
// declared versions, a route on one, a rollout to the other, a plugin with
// on_error, and a scaling policy with every bounded field.
func admissionBase(ns string) map[string]any {
	model := func(v string) any {
		return map[string]any{"name": "m", "version": v, "source": map[string]any{"url": "https://example.com/m-" + v + ".onnx", "sha256": strings.Repeat("a", 64)}}
	}
	return map[string]any{
		"apiVersion": "weir.dev/v1alpha1", "kind": "WeirRoute",
		"metadata": map[string]any{"namespace": ns, "name": "admission"},
		"spec": map[string]any{
			"models": []any{model("1"), model("2")},
			"route": map[string]any{
				"variants": []any{map[string]any{"name": "stable", "model": "m", "version": "1", "weight": int64(100)}},
				"plugins":  []any{map[string]any{"name": "p", "on_error": "skip"}},
			},
			"rollout": map[string]any{"model": "m", "version": "2", "steps": []any{int64(5), int64(50), int64(100)}, "interval": "30s"},
			"scaling": map[string]any{
				"deployment": "weir", "targetInFlight": int64(10), "tolerance": "0.1",
				"scaleUpStabilization": "0s", "scaleDownStabilization": "5m",
				"scaleDownRules": []any{map[string]any{"type": "Pods", "value": int64(1), "period": "30m"}},
			},
		},
	}
}

// set replaces the value at a dotted path of obj ("spec.rollout.steps").
func set(t *testing.T, obj map[string]any, path string, v any) {
	t.Helper()
	if err := unstructured.SetNestedField(obj, v, strings.Split(path, ".")...); err != nil {
		t.Fatalf("set %s: %v", path, err)
	}
}

// TestAdmissionRefusesWhatWouldFailLater: the CRD's CEL rules refuse, at
// kubectl apply, each spec that one object shows to be wrong and that the
// controller or the gateway would otherwise refuse later; the valid base and
// the other allowed forms pass.
func TestAdmissionRefusesWhatWouldFailLater(t *testing.T) {
	_, c := startEnv(t)
	ns := newNamespace(t, c)
	cases := []struct {
		name   string
		mutate func(map[string]any)
		want   string // "" = accepted; else a part of the refusal
	}{
		{"valid", func(map[string]any) {}, ""},
		{"on_error fail", func(o map[string]any) {
			set(t, o, "spec.route.plugins", []any{map[string]any{"name": "p", "on_error": "fail"}})
		}, ""},
		{"on_error default", func(o map[string]any) {
			set(t, o, "spec.route.plugins", []any{map[string]any{"name": "p", "on_error": map[string]any{"default": map[string]any{"score": int64(0)}}}})
		}, ""},
		{"no models: versions pushed elsewhere", func(o map[string]any) {
			unstructured.RemoveNestedField(o, "spec", "models")
			set(t, o, "spec.route.variants", []any{map[string]any{"name": "stable", "model": "other", "version": "7", "weight": int64(100)}})
		}, ""},
		{"variant names an undeclared model", func(o map[string]any) {
			set(t, o, "spec.route.variants", []any{map[string]any{"name": "stable", "model": "typo", "version": "1", "weight": int64(100)}})
		}, "every variant's model and version must be declared in spec.models"},
		{"variant names an undeclared version", func(o map[string]any) {
			set(t, o, "spec.route.variants", []any{map[string]any{"name": "stable", "model": "m", "version": "3", "weight": int64(100)}})
		}, "every variant's model and version must be declared in spec.models"},
		{"rollout version not declared", func(o map[string]any) {
			set(t, o, "spec.rollout.version", "9")
		}, "the rollout's model and version must be declared in spec.models"},
		{"steps not rising", func(o map[string]any) {
			set(t, o, "spec.rollout.steps", []any{int64(50), int64(20), int64(100)})
		}, "steps must rise strictly"},
		{"steps repeat", func(o map[string]any) {
			set(t, o, "spec.rollout.steps", []any{int64(50), int64(50), int64(100)})
		}, "steps must rise strictly"},
		{"step above 100", func(o map[string]any) {
			set(t, o, "spec.rollout.steps", []any{int64(50), int64(101)})
		}, "should be less than or equal to 100"},
		{"step at 0 and below", func(o map[string]any) {
			set(t, o, "spec.rollout.steps", []any{int64(0), int64(-5)})
		}, "should be greater than or equal to 1"},
		{"tolerance 5", func(o map[string]any) {
			set(t, o, "spec.scaling.tolerance", "5")
		}, "tolerance must be a fraction below 1"},
		{"scale-down stabilization 99999h", func(o map[string]any) {
			set(t, o, "spec.scaling.scaleDownStabilization", "99999h")
		}, "scaleDownStabilization must be at most 1h"},
		{"scale-up stabilization 2h", func(o map[string]any) {
			set(t, o, "spec.scaling.scaleUpStabilization", "2h")
		}, "scaleUpStabilization must be at most 1h"},
		{"rate period over 30m", func(o map[string]any) {
			set(t, o, "spec.scaling.scaleDownRules", []any{map[string]any{"type": "Pods", "value": int64(1), "period": "31m"}})
		}, "period must be above 0s and at most 30m"},
		{"rate period 0", func(o map[string]any) {
			set(t, o, "spec.scaling.scaleUpRules", []any{map[string]any{"type": "Percent", "value": int64(100), "period": "0s"}})
		}, "period must be above 0s and at most 30m"},
		{"scaling target without a deployment", func(o map[string]any) {
			unstructured.RemoveNestedField(o, "spec", "scaling", "deployment")
		}, "a scaling target needs deployment"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := admissionBase(ns)
			tc.mutate(obj)
			err := c.Create(context.Background(), &unstructured.Unstructured{Object: obj}, client.DryRunAll)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want == "":
			case err == nil:
				t.Fatalf("accepted; want a refusal saying %q", tc.want)
			case !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want):
				t.Fatalf("refused with %v; want Invalid saying %q", err, tc.want)
			}
		})
	}
}
