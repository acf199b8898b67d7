package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// renderManifests runs kustomize on deploy/kubernetes, as
// `kubectl kustomize deploy/kubernetes` would, offline.
func renderManifests(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resMap, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(repoRoot(), "deploy", "kubernetes"))
	if err != nil {
		t.Fatalf("kustomize build deploy/kubernetes: %v", err)
	}
	out, err := resMap.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	var objs []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("decode rendered manifests: %v", err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	return objs
}

func TestManifestsRenderAndApply(t *testing.T) {
	objs := renderManifests(t)
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
	}
	for kind, n := range map[string]int{
		"CustomResourceDefinition": 1, "Deployment": 1, "StatefulSet": 1, "Service": 2, "ConfigMap": 1,
		"PodDisruptionBudget": 2, "Role": 1, "RoleBinding": 1, "ClusterRole": 1, "ClusterRoleBinding": 1, "ServiceAccount": 1, "Namespace": 1,
	} {
		if kinds[kind] != n {
			t.Errorf("rendered %d %s, want %d (all: %v)", kinds[kind], kind, n, kinds)
		}
	}

	// Every object must be accepted by a real API server: server-side apply
	// in the manifests' own namespace (the workloads get no pods in envtest).
	_, c := startEnv(t)
	ctx := context.Background()
	for _, o := range objs {
		if err := c.Patch(ctx, o, client.Apply, client.FieldOwner("weir-manifest-test"), client.ForceOwnership); err != nil {
			t.Errorf("apply %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
}

// TestManifestsHardened checks the hardening of the rendered manifests:
// seccomp and non-root everywhere, pinned images, emptyDir size limits, a
// PDB that lets a drain through at one replica, no replicas field to fight
// the autoscaler, a startupProbe, GOMEMLIMIT and the ONNX Runtime path.
func TestManifestsHardened(t *testing.T) {
	for _, o := range renderManifests(t) {
		what := o.GetKind() + " " + o.GetName()
		switch o.GetKind() {
		case "Deployment", "StatefulSet":
		case "PodDisruptionBudget":
			if _, ok, _ := unstructured.NestedFieldNoCopy(o.Object, "spec", "minAvailable"); ok {
				t.Errorf("%s sets minAvailable: at 1 replica it blocks node drains; use maxUnavailable", what)
			}
			if _, ok, _ := unstructured.NestedFieldNoCopy(o.Object, "spec", "maxUnavailable"); !ok {
				t.Errorf("%s sets no maxUnavailable", what)
			}
			continue
		default:
			continue
		}
		if o.GetKind() == "Deployment" {
			if _, ok, _ := unstructured.NestedFieldNoCopy(o.Object, "spec", "replicas"); ok {
				t.Errorf("%s sets spec.replicas: every kubectl apply would undo the autoscaler", what)
			}
		}
		pod, _, _ := unstructured.NestedMap(o.Object, "spec", "template", "spec")
		if typ, _, _ := unstructured.NestedString(pod, "securityContext", "seccompProfile", "type"); typ != "RuntimeDefault" {
			t.Errorf("%s: pod seccompProfile %q, want RuntimeDefault", what, typ)
		}
		if nonRoot, _, _ := unstructured.NestedBool(pod, "securityContext", "runAsNonRoot"); !nonRoot {
			t.Errorf("%s: pod does not set runAsNonRoot", what)
		}
		vols, _, _ := unstructured.NestedSlice(pod, "volumes")
		for _, v := range vols {
			v := v.(map[string]any)
			if ed, ok := v["emptyDir"].(map[string]any); ok && ed["sizeLimit"] == nil {
				t.Errorf("%s: emptyDir %v has no sizeLimit", what, v["name"])
			}
		}
		containers, _, _ := unstructured.NestedSlice(pod, "containers")
		for _, c := range containers {
			c := c.(map[string]any)
			cwhat := fmt.Sprintf("%s container %v", what, c["name"])
			if img, _ := c["image"].(string); !strings.Contains(img[strings.LastIndex(img, "/")+1:], ":") || strings.HasSuffix(img, ":latest") {
				t.Errorf("%s: image %q is not pinned to a tag", cwhat, img)
			}
			if esc, _, _ := unstructured.NestedBool(c, "securityContext", "allowPrivilegeEscalation"); esc {
				t.Errorf("%s allows privilege escalation", cwhat)
			}
			if _, ok := c["securityContext"]; !ok {
				t.Errorf("%s has no securityContext", cwhat)
			}
			if o.GetKind() != "Deployment" {
				continue
			}
			if _, ok := c["startupProbe"]; !ok {
				t.Errorf("%s has no startupProbe (models load before the port listens)", cwhat)
			}
			env := map[string]map[string]any{}
			envs, _, _ := unstructured.NestedSlice(c, "env")
			for _, e := range envs {
				e := e.(map[string]any)
				env[e["name"].(string)] = e
			}
			ref, _, _ := unstructured.NestedString(env["GOMEMLIMIT"], "valueFrom", "resourceFieldRef", "resource")
			if ref != "limits.memory" {
				t.Errorf("%s: GOMEMLIMIT does not come from the memory limit (%v)", cwhat, env["GOMEMLIMIT"])
			}
			if c["name"] == "gateway" && env["ONNXRUNTIME_LIB"] == nil {
				t.Errorf("%s does not set ONNXRUNTIME_LIB", cwhat)
			}
		}
	}
}

// The README's commands run in an order that works as written: the
// namespace exists before the Secret is created in it, and the Secret
// before the Deployment that needs it.
func TestReadmeCommandOrder(t *testing.T) {
	var order []string
	for line := range strings.Lines(readFile(t, "deploy/README.md")) {
		line = strings.TrimSpace(line)
		switch {
		case strings.Contains(line, "kubectl apply -f deploy/kubernetes/namespace.yaml"), strings.Contains(line, "kubectl create namespace weir"):
			order = append(order, "namespace")
		case strings.Contains(line, "create secret generic weir-admin"):
			order = append(order, "secret")
		case strings.HasPrefix(line, "kubectl apply -k deploy/kubernetes"):
			order = append(order, "apply")
		}
	}
	first := func(s string) int { return slices.Index(order, s) }
	if first("namespace") < 0 || first("secret") < 0 || first("apply") < 0 ||
		first("namespace") > first("secret") || first("secret") > first("apply") {
		t.Fatalf("deploy/README.md runs %v; want the namespace, then the weir-admin Secret, then kubectl apply -k", order)
	}
}
