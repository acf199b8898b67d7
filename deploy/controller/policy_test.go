package controller

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

const saTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount"

// workloads returns the rendered Deployments and StatefulSets with their pod
// template's labels and spec.
func workloads(t *testing.T, objs []*unstructured.Unstructured) map[string]struct {
	labels map[string]string
	pod    map[string]any
} {
	t.Helper()
	out := map[string]struct {
		labels map[string]string
		pod    map[string]any
	}{}
	for _, o := range objs {
		if o.GetKind() != "Deployment" && o.GetKind() != "StatefulSet" {
			continue
		}
		labels, _, _ := unstructured.NestedStringMap(o.Object, "spec", "template", "metadata", "labels")
		pod, _, _ := unstructured.NestedMap(o.Object, "spec", "template", "spec")
		out[o.GetKind()+" "+o.GetName()] = struct {
			labels map[string]string
			pod    map[string]any
		}{labels, pod}
	}
	return out
}

// TestManifestsAPITokenOnlyInController: no pod mounts the ServiceAccount
// token automatically; the one container that calls the API server, the
// controller, gets it through a projected volume, and the gateway (which
// runs third-party Wasm plugins) has none.
func TestManifestsAPITokenOnlyInController(t *testing.T) {
	for what, w := range workloads(t, renderManifests(t)) {
		if auto, ok, _ := unstructured.NestedBool(w.pod, "automountServiceAccountToken"); !ok || auto {
			t.Errorf("%s: automountServiceAccountToken is not false: every container gets the API token", what)
		}
		projected := map[string]bool{}
		vols, _, _ := unstructured.NestedSlice(w.pod, "volumes")
		for _, v := range vols {
			v := v.(map[string]any)
			sources, _, _ := unstructured.NestedSlice(v, "projected", "sources")
			for _, s := range sources {
				if _, ok := s.(map[string]any)["serviceAccountToken"]; ok {
					projected[v["name"].(string)] = true
				}
			}
		}
		containers, _, _ := unstructured.NestedSlice(w.pod, "containers")
		for _, c := range containers {
			c := c.(map[string]any)
			var tokenMount string
			mounts, _, _ := unstructured.NestedSlice(c, "volumeMounts")
			for _, m := range mounts {
				m := m.(map[string]any)
				if projected[m["name"].(string)] {
					tokenMount = m["mountPath"].(string)
				}
			}
			wantToken := what == "Deployment weir" && c["name"] == "controller"
			switch {
			case wantToken && tokenMount != saTokenPath:
				t.Errorf("%s container %v: the API token is mounted at %q, want %s", what, c["name"], tokenMount, saTokenPath)
			case !wantToken && tokenMount != "":
				t.Errorf("%s container %v mounts a ServiceAccount token at %s: only the controller needs one", what, c["name"], tokenMount)
			}
		}
	}
}

// TestManifestsNetworkPolicies: every pod is selected by an Ingress
// NetworkPolicy, and every port a Service sends it traffic on is allowed by
// one.
func TestManifestsNetworkPolicies(t *testing.T) {
	objs := renderManifests(t)
	type policy struct {
		selector map[string]string
		ports    map[string]bool // "8080"; "*" for a rule without ports
	}
	var policies []policy
	for _, o := range objs {
		if o.GetKind() != "NetworkPolicy" {
			continue
		}
		types, _, _ := unstructured.NestedStringSlice(o.Object, "spec", "policyTypes")
		ingress := false
		for _, typ := range types {
			ingress = ingress || typ == "Ingress"
		}
		if !ingress {
			continue
		}
		sel, _, _ := unstructured.NestedStringMap(o.Object, "spec", "podSelector", "matchLabels")
		p := policy{selector: sel, ports: map[string]bool{}}
		rules, _, _ := unstructured.NestedSlice(o.Object, "spec", "ingress")
		for _, r := range rules {
			ports, ok, _ := unstructured.NestedSlice(r.(map[string]any), "ports")
			if !ok {
				p.ports["*"] = true
			}
			for _, port := range ports {
				p.ports[fmt.Sprint(port.(map[string]any)["port"])] = true
			}
		}
		policies = append(policies, p)
	}
	matches := func(sel, labels map[string]string) bool {
		for k, v := range sel {
			if labels[k] != v {
				return false
			}
		}
		return true
	}
	wls := workloads(t, objs)
	for what, w := range wls {
		selected := false
		for _, p := range policies {
			selected = selected || matches(p.selector, w.labels)
		}
		if !selected {
			t.Errorf("%s: no Ingress NetworkPolicy selects its pods (labels %v)", what, w.labels)
		}
	}
	for _, o := range objs {
		if o.GetKind() != "Service" {
			continue
		}
		sel, _, _ := unstructured.NestedStringMap(o.Object, "spec", "selector")
		ports, _, _ := unstructured.NestedSlice(o.Object, "spec", "ports")
		for what, w := range wls {
			if !matches(sel, w.labels) {
				continue
			}
			for _, sp := range ports {
				sp := sp.(map[string]any)
				port := containerPort(w.pod, sp["targetPort"])
				if sp["targetPort"] == nil {
					port = fmt.Sprint(sp["port"])
				}
				allowed := false
				for _, p := range policies {
					allowed = allowed || (matches(p.selector, w.labels) && (p.ports[port] || p.ports["*"]))
				}
				if !allowed {
					t.Errorf("Service %s port %v -> %s port %s: no NetworkPolicy lets it in", o.GetName(), sp["name"], what, port)
				}
			}
		}
	}
}

// containerPort resolves a Service targetPort (a number or a port name) in
// a pod spec.
func containerPort(pod map[string]any, target any) string {
	name, ok := target.(string)
	if !ok {
		return fmt.Sprint(target)
	}
	containers, _, _ := unstructured.NestedSlice(pod, "containers")
	for _, c := range containers {
		ports, _, _ := unstructured.NestedSlice(c.(map[string]any), "ports")
		for _, p := range ports {
			p := p.(map[string]any)
			if p["name"] == name {
				return fmt.Sprint(p["containerPort"])
			}
		}
	}
	return name
}

// TestManifestsControllerMetricsNamespaceOnly: the controller serves its
// metrics over plain HTTP without auth (deploy/README.md says why), so the
// NetworkPolicies must admit its --metrics-addr port from pods of the
// namespace only: a policy selects the controller's pods, and every rule
// that admits the port names `from` peers that are podSelectors alone (no
// namespaceSelector, no ipBlock, never "from anywhere").
func TestManifestsControllerMetricsNamespaceOnly(t *testing.T) {
	objs := renderManifests(t)
	var port string
	var podLabels map[string]string
	for what, w := range workloads(t, objs) {
		containers, _, _ := unstructured.NestedSlice(w.pod, "containers")
		for _, c := range containers {
			args, _, _ := unstructured.NestedStringSlice(c.(map[string]any), "args")
			for _, a := range args {
				if addr, ok := strings.CutPrefix(a, "--metrics-addr="); ok {
					_, port, _ = strings.Cut(addr, ":")
					podLabels = w.labels
					t.Logf("%s: controller metrics on port %s", what, port)
				}
			}
		}
	}
	if port == "" {
		t.Fatal("no container runs with --metrics-addr: the port the check is about is unknown")
	}
	selected := false
	for _, o := range objs {
		if o.GetKind() != "NetworkPolicy" {
			continue
		}
		sel, _, _ := unstructured.NestedStringMap(o.Object, "spec", "podSelector", "matchLabels")
		matches := true
		for k, v := range sel {
			matches = matches && podLabels[k] == v
		}
		if !matches {
			continue
		}
		selected = true
		rules, _, _ := unstructured.NestedSlice(o.Object, "spec", "ingress")
		for i, r := range rules {
			r := r.(map[string]any)
			ports, hasPorts, _ := unstructured.NestedSlice(r, "ports")
			admits := !hasPorts
			for _, p := range ports {
				admits = admits || fmt.Sprint(p.(map[string]any)["port"]) == port
			}
			if !admits {
				continue
			}
			from, _, _ := unstructured.NestedSlice(r, "from")
			if len(from) == 0 {
				t.Errorf("NetworkPolicy %s ingress rule %d admits the controller's metrics port %s from anywhere", o.GetName(), i, port)
			}
			for _, peer := range from {
				peer := peer.(map[string]any)
				if _, ok := peer["podSelector"]; !ok || len(peer) != 1 {
					t.Errorf("NetworkPolicy %s ingress rule %d admits the controller's metrics port %s from %v: only this namespace's pods may reach it", o.GetName(), i, port, peer)
				}
			}
		}
	}
	if !selected {
		t.Errorf("no NetworkPolicy selects the controller's pods (labels %v): its metrics port %s is open to the cluster", podLabels, port)
	}
}
