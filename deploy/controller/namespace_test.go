package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/weirhq/weir/deploy/api/v1alpha1"
	"github.com/weirhq/weir/internal/testpoll"
)

// Issue 29 item 9: a WeirRoute in a namespace no controller manages is told
// so (Ready=False, OtherNamespace, and an Event) instead of being silently
// ignored, and nothing of it reaches this controller's gateway. A WeirRoute
// whose own namespace's controller handles it is left alone.
func TestOtherNamespaceWeirRouteIsToldSo(t *testing.T) {
	e := newEnv(t)
	e.start(t, func(o *Options) { o.otherNamespaceGrace = 3 * time.Second })
	ctx := context.Background()

	// A namespace with its own controller and gateway.
	managed := newEnv(t)
	managed.start(t, func(o *Options) { o.otherNamespaceGrace = 3 * time.Second })
	if err := managed.c.Create(ctx, simpleRoute(managed, t, "theirs", "n")); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, managed, "theirs", 30*time.Second, readyRoute, "the WeirRoute of the namespace with its own controller Ready")

	orphan := e
	orphan.ns = newNamespace(t, e.c)
	if err := e.c.Create(ctx, simpleRoute(orphan, t, "stray", "m")); err != nil {
		t.Fatal(err)
	}
	wr := waitRoute(t, orphan, "stray", 30*time.Second, func(wr *v1alpha1.WeirRoute) bool {
		return condition(wr, v1alpha1.ConditionReady, metav1.ConditionFalse, "OtherNamespace")
	}, "the WeirRoute in an unmanaged namespace Ready=False OtherNamespace")
	if msg := meta.FindStatusCondition(wr.Status.Conditions, v1alpha1.ConditionReady).Message; !strings.Contains(msg, orphan.ns) || !strings.Contains(msg, e.ns) && !strings.Contains(msg, managed.ns) {
		t.Errorf("condition message %q does not name its namespace %s and the one a controller manages (%s or %s)", msg, orphan.ns, e.ns, managed.ns)
	}
	testpoll.For(t, 20*time.Second, "an OtherNamespace Event", func() error {
		if seen := events(t, e.c, orphan.ns, "stray"); len(seen["OtherNamespace"]) == 0 {
			return fmt.Errorf("Events %v", reasons(seen))
		}
		return nil
	})
	if hasModel(t, e.gw, "m", "1") || hasModel(t, managed.gw, "m", "1") {
		t.Fatal("the WeirRoute of an unmanaged namespace pushed m@1 to a gateway")
	}
	if r := route(t, e.gw, "stray"); r != nil {
		t.Fatalf("the WeirRoute of an unmanaged namespace set route stray: %v", r)
	}

	// The other controller's WeirRoute, looked at by this one as long as
	// the stray one, keeps its own controller's status.
	if wr := getRoute(t, managed.c, managed.ns, "theirs"); !readyRoute(wr) {
		t.Fatalf("the managed namespace's WeirRoute: %s", conditionsOf(wr))
	}
	if seen := events(t, managed.c, managed.ns, "theirs"); len(seen["OtherNamespace"]) != 0 {
		t.Fatalf("the managed namespace's WeirRoute got OtherNamespace Events: %v", seen["OtherNamespace"])
	}
}

// Item 9 under the manifests' own RBAC (rbac.yaml, applied as rendered): the
// controller, impersonating the weir ServiceAccount, reconciles the
// WeirRoutes of its namespace and sees, marks and reports one in another
// namespace; the ClusterRole gives it that and nothing else.
func TestManifestRBACRunsTheControllerAcrossNamespaces(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, o := range renderManifests(t) {
		switch o.GetKind() {
		case "Namespace", "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding":
			if err := e.c.Patch(ctx, o, client.Apply, client.FieldOwner("weir-rbac-test"), client.ForceOwnership); err != nil {
				t.Fatalf("apply %s %s: %v", o.GetKind(), o.GetName(), err)
			}
			if o.GetKind() == "ClusterRole" {
				for _, r := range o.Object["rules"].([]any) {
					res := fmt.Sprint(r.(map[string]any)["resources"])
					if res != "[weirroutes]" && res != "[weirroutes/status]" && res != "[events]" {
						t.Errorf("ClusterRole %s grants %s cluster-wide: only WeirRoutes, their status and Events need it", o.GetName(), res)
					}
				}
			}
		}
	}
	stray := e
	stray.ns = newNamespace(t, e.c)
	e.ns = "weir" // the manifests' namespace, where their Role applies

	cfg, _ := startEnv(t)
	sa := rest.CopyConfig(cfg)
	sa.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:weir:weir"}
	e.startAs(t, sa, func(o *Options) { o.otherNamespaceGrace = time.Second })

	if err := e.c.Create(ctx, simpleRoute(e, t, "rbac-own", "o")); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Create(ctx, simpleRoute(stray, t, "rbac-stray", "s")); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, e, "rbac-own", 60*time.Second, readyRoute, "the WeirRoute in the controller's namespace Ready under the manifests' RBAC")
	waitRoute(t, stray, "rbac-stray", 30*time.Second, func(wr *v1alpha1.WeirRoute) bool {
		return condition(wr, v1alpha1.ConditionReady, metav1.ConditionFalse, "OtherNamespace")
	}, "the WeirRoute in another namespace Ready=False OtherNamespace under the manifests' RBAC")
	testpoll.For(t, 20*time.Second, "an OtherNamespace Event in the other namespace", func() error {
		if seen := events(t, e.c, stray.ns, "rbac-stray"); len(seen["OtherNamespace"]) == 0 {
			return fmt.Errorf("Events %v", reasons(seen))
		}
		return nil
	})
	if hasModel(t, e.gw, "s", "1") {
		t.Fatal("the other namespace's WeirRoute pushed s@1")
	}
}
