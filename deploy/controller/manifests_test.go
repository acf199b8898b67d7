package controller

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
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
		"PodDisruptionBudget": 2, "Role": 1, "RoleBinding": 1, "ServiceAccount": 1, "Namespace": 1,
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
