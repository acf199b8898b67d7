package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/weirhq/weir/deploy/api/v1alpha1"
	"github.com/weirhq/weir/internal/clip"
	"github.com/weirhq/weir/router"
	sdk "github.com/weirhq/weir/sdk/client"
)

// Gateway is the part of the weir admin API the reconciler uses;
// *sdk/client.Client implements it.
type Gateway interface {
	PushModel(ctx context.Context, name, version string, onnx io.Reader, features []string) error
	PushReference(ctx context.Context, name, version string, body io.Reader, contentType string) error
	DeleteModel(ctx context.Context, name, version string) error
	ListModels(ctx context.Context) ([]sdk.ModelInfo, error)
	PushPlugin(ctx context.Context, name, version string, wasm io.Reader) error
	DeletePlugin(ctx context.Context, name, version string) error
	ListPlugins(ctx context.Context) ([]sdk.PluginInfo, error)
	SetRoute(ctx context.Context, name string, route json.RawMessage) error
	GetRoute(ctx context.Context, name string) (json.RawMessage, error)
	StartRollout(ctx context.Context, route string, spec json.RawMessage) (json.RawMessage, error)
	Rollout(ctx context.Context, route string) (json.RawMessage, error)
	RolloutAction(ctx context.Context, route, action string) (json.RawMessage, error)
}

// EventRecorder records Kubernetes Events (events.k8s.io/v1 style); the
// manager's GetEventRecorder implements it.
type EventRecorder interface {
	Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

// ReconcilerConfig configures a Reconciler. Zero durations and sizes take the
// defaults noted.
type ReconcilerConfig struct {
	Gateway  Gateway
	Client   client.Client // reads WeirRoutes and ConfigMaps, patches status
	Recorder EventRecorder

	// Namespace is the one namespace whose WeirRoutes are reconciled. A
	// WeirRoute elsewhere that no controller has taken up within
	// OtherNamespaceGrace (default 30s) is told so (Ready=False,
	// OtherNamespace, and an Event) and changes nothing. Empty: every
	// WeirRoute the client sees is reconciled.
	Namespace           string
	OtherNamespaceGrace time.Duration

	// ConnectTimeout bounds connecting to an artifact URL, its TLS handshake
	// and its response headers; default 15s.
	ConnectTimeout time.Duration
	// StallTimeout aborts a download that sends no byte for this long;
	// default 30s.
	StallTimeout time.Duration
	// FetchTimeout bounds one artifact download in total; default 30m.
	FetchTimeout    time.Duration
	MaxArtifactSize int64  // bytes; default 2 GiB (the gateway's --max-upload)
	TempDir         string // downloads are streamed here; default os.TempDir()

	FollowInterval time.Duration // rollout polling and deferred deletes; default 10s
	// ResyncInterval is how often a WeirRoute is compared with the gateway
	// again when nothing changed (a route deleted or edited by hand is set
	// back); default 1m.
	ResyncInterval time.Duration
	// RouteWatchInterval is how often the gateway's routes are listed to
	// see changes made outside the controller: the WeirRoute of a route
	// edited or deleted by hand is reconciled at once, without waiting for
	// the resync. Default 2s; negative turns the watch off. (Needs a
	// Gateway that is also a RouteLister, as *sdk/client.Client is.)
	RouteWatchInterval time.Duration
	// MaxConcurrentReconciles WeirRoutes are reconciled at once; default 4.
	MaxConcurrentReconciles int
	// RetryBase and RetryMax bound the per-WeirRoute exponential backoff
	// after a failed pass; defaults 1s and 5m.
	RetryBase, RetryMax time.Duration
}

// Reconciler makes one WeirRoute true on the gateway. It is level-based: each
// pass compares the declaration with what the gateway reports and does only
// what is missing, so running it again changes nothing.
type Reconciler struct {
	cfg   ReconcilerConfig
	fetch fetcher

	// bad remembers, per WeirRoute generation, the artifacts that failed
	// for good (checksum, rejected, too large), so that a resync does not
	// download them again: only a new generation can fix them.
	mu  sync.Mutex
	bad map[types.NamespacedName]badMemo
	// foreign remembers when a WeirRoute generation of another namespace
	// was first seen untaken, for OtherNamespaceGrace.
	foreign map[types.NamespacedName]foreignSeen
}

type foreignSeen struct {
	uid        types.UID
	generation int64
	at         time.Time
}

type badMemo struct {
	uid        types.UID
	generation int64
	errs       map[string]*badArtifactError
}

// NewReconciler validates cfg and returns a Reconciler.
func NewReconciler(cfg ReconcilerConfig) (*Reconciler, error) {
	if cfg.Gateway == nil || cfg.Client == nil || cfg.Recorder == nil {
		return nil, errors.New("controller: ReconcilerConfig needs Gateway, Client and Recorder")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.ConnectTimeout, 15*time.Second)
	def(&cfg.StallTimeout, 30*time.Second)
	def(&cfg.FetchTimeout, 30*time.Minute)
	def(&cfg.FollowInterval, 10*time.Second)
	def(&cfg.ResyncInterval, time.Minute)
	if cfg.RouteWatchInterval == 0 {
		cfg.RouteWatchInterval = 2 * time.Second
	}
	def(&cfg.RetryBase, time.Second)
	def(&cfg.RetryMax, 5*time.Minute)
	def(&cfg.OtherNamespaceGrace, 30*time.Second)
	if cfg.MaxArtifactSize <= 0 {
		cfg.MaxArtifactSize = 2 << 30
	}
	if cfg.MaxConcurrentReconciles <= 0 {
		cfg.MaxConcurrentReconciles = 4
	}
	return &Reconciler{
		cfg: cfg,
		fetch: fetcher{
			reader: cfg.Client, http: newHTTPClient(cfg.ConnectTimeout), maxSize: cfg.MaxArtifactSize,
			idle: cfg.StallTimeout, total: cfg.FetchTimeout, tmpDir: cfg.TempDir,
		},
		bad:     map[types.NamespacedName]badMemo{},
		foreign: map[types.NamespacedName]foreignSeen{},
	}, nil
}

// SetupWithManager registers the Reconciler with mgr. Status-only changes do
// not trigger a pass (the reconciler writes status itself); it polls what it
// follows with RequeueAfter, compares every WeirRoute with the gateway
// again each ResyncInterval, and reconciles a WeirRoute as soon as the route
// watch sees its gateway route change or disappear. WeirRoutes are
// reconciled concurrently, and a failing one backs off on its own (per-key
// exponential backoff) without holding up the others.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.WeirRoute{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("weirroute").
		WithOptions(controller.Options{
			MaxConcurrentReconciles: r.cfg.MaxConcurrentReconciles,
			RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](r.cfg.RetryBase, r.cfg.RetryMax),
		})
	if rl, ok := r.cfg.Gateway.(RouteLister); ok && r.cfg.RouteWatchInterval > 0 {
		b = b.WatchesRawSource(r.routeWatch(rl, r.cfg.RouteWatchInterval))
	}
	return b.Complete(r)
}

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var wr v1alpha1.WeirRoute
	if err := r.cfg.Client.Get(ctx, req.NamespacedName, &wr); err != nil {
		// Deleted: the gateway keeps serving what it has. Cutting production
		// traffic because a resource went away is left to an explicit
		// `weir route` call.
		if apierrors.IsNotFound(err) {
			r.forgetBad(req.NamespacedName)
			r.forgetForeign(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := wr.DeepCopy()
	if r.cfg.Namespace != "" && wr.Namespace != r.cfg.Namespace {
		return r.otherNamespace(ctx, before, &wr)
	}
	res, err := r.reconcile(ctx, &wr)
	wr.Status.ObservedGeneration = wr.Generation
	if perr := patchStatus(ctx, r.cfg.Client, before, &wr); perr != nil {
		return ctrl.Result{}, errors.Join(err, perr)
	}
	return res, err
}

// otherNamespace tells a WeirRoute outside this controller's namespace that
// nothing manages it, once its generation has gone OtherNamespaceGrace
// without a controller of its own namespace writing its observedGeneration
// (one that does is left alone: every weir install sees every WeirRoute).
// Nothing of it reaches the gateway.
func (r *Reconciler) otherNamespace(ctx context.Context, before, wr *v1alpha1.WeirRoute) (ctrl.Result, error) {
	nn := nameOf(wr)
	ready := meta.FindStatusCondition(wr.Status.Conditions, v1alpha1.ConditionReady)
	told := ready != nil && ready.Reason == "OtherNamespace" && ready.ObservedGeneration == wr.Generation
	if told || wr.Status.ObservedGeneration == wr.Generation {
		r.forgetForeign(nn)
		return ctrl.Result{}, nil
	}
	r.mu.Lock()
	seen, ok := r.foreign[nn]
	if !ok || seen.uid != wr.UID || seen.generation != wr.Generation {
		seen = foreignSeen{uid: wr.UID, generation: wr.Generation, at: time.Now()}
		r.foreign[nn] = seen
	}
	r.mu.Unlock()
	if wait := r.cfg.OtherNamespaceGrace - time.Since(seen.at); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	msg := fmt.Sprintf("no weir controller manages namespace %s: this one manages namespace %s only. Deploy weir in %s (kubectl apply -k deploy/kubernetes, with its namespace set to %s) or create this WeirRoute in %s",
		wr.Namespace, r.cfg.Namespace, wr.Namespace, wr.Namespace, r.cfg.Namespace)
	r.setCondition(wr, v1alpha1.ConditionReady, metav1.ConditionFalse, "OtherNamespace", msg)
	// Guarded by resourceVersion: a controller of that namespace writing
	// status meanwhile wins, and the retry leaves its status alone.
	if err := patchStatus(ctx, r.cfg.Client, before, wr); err != nil {
		return ctrl.Result{}, err
	}
	r.cfg.Recorder.Eventf(wr, nil, corev1.EventTypeWarning, "OtherNamespace", "Validate", "%s", msg)
	r.forgetForeign(nn)
	return ctrl.Result{}, nil
}

func (r *Reconciler) forgetForeign(nn types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.foreign, nn)
}

// patchStatus writes status with a merge patch guarded by resourceVersion, so
// the reconciler and the autoscaler never overwrite each other's conditions:
// a conflict fails and the pass is retried.
func patchStatus(ctx context.Context, c client.Client, before, after *v1alpha1.WeirRoute) error {
	if equalStatus(before.Status, after.Status) {
		return nil
	}
	patch := client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})
	if err := c.Status().Patch(ctx, after, patch); err != nil {
		return fmt.Errorf("patch status of WeirRoute %s/%s: %w", after.Namespace, after.Name, err)
	}
	return nil
}

func equalStatus(a, b v1alpha1.WeirRouteStatus) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// validateSpec checks what the schema cannot have checked for an object
// stored before the schema did: the durations.
func validateSpec(wr *v1alpha1.WeirRoute) error {
	var errs []error
	check := func(field string, d *v1alpha1.Duration) {
		if d == nil {
			return
		}
		if _, err := d.Parse(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
		}
	}
	if rs := wr.Spec.Rollout; rs != nil {
		check("spec.rollout.interval", rs.Interval)
	}
	if s := wr.Spec.Scaling; s != nil {
		check("spec.scaling.scaleUpStabilization", s.ScaleUpStabilization)
		check("spec.scaling.scaleDownStabilization", s.ScaleDownStabilization)
		for i := range s.ScaleUpRules {
			check(fmt.Sprintf("spec.scaling.scaleUpRules[%d].period", i), &s.ScaleUpRules[i].Period)
		}
		for i := range s.ScaleDownRules {
			check(fmt.Sprintf("spec.scaling.scaleDownRules[%d].period", i), &s.ScaleDownRules[i].Period)
		}
	}
	return errors.Join(errs...)
}

// reconcile is one pass. It applies what can be applied: a bad artifact
// stops only what needs it (the route waits only when it names a version the
// gateway lacks), and every condition is written for the current generation
// on every pass, so none tells what an older generation was. Retryable
// failures are joined into the returned error, which backs this WeirRoute
// off on its own.
func (r *Reconciler) reconcile(ctx context.Context, wr *v1alpha1.WeirRoute) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	if err := validateSpec(wr); err != nil {
		msg := "invalid spec: " + err.Error()
		for _, typ := range []string{v1alpha1.ConditionArtifactsReady, v1alpha1.ConditionRouteApplied, v1alpha1.ConditionReady} {
			r.setCondition(wr, typ, metav1.ConditionFalse, "InvalidSpec", msg)
		}
		r.cfg.Recorder.Eventf(wr, nil, corev1.EventTypeWarning, "InvalidSpec", "Validate", "%s", msg)
		return ctrl.Result{}, reconcile.TerminalError(err)
	}
	if owner, err := r.routeOwner(ctx, wr); err != nil {
		return ctrl.Result{}, err
	} else if owner != nil {
		// Another WeirRoute owns the gateway route: touch nothing, or the
		// two would set it in turn.
		msg := fmt.Sprintf("WeirRoute %s (created %s) already manages route %s; this one changes nothing on the gateway until it names another routeName or %s is deleted",
			owner.Name, owner.CreationTimestamp.UTC().Format(time.RFC3339), wr.GatewayRouteName(), owner.Name)
		if c := meta.FindStatusCondition(wr.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Reason != "RouteConflict" {
			r.cfg.Recorder.Eventf(wr, owner, corev1.EventTypeWarning, "RouteConflict", "Validate", "%s", msg)
		}
		for _, typ := range []string{v1alpha1.ConditionArtifactsReady, v1alpha1.ConditionRouteApplied, v1alpha1.ConditionReady} {
			r.setCondition(wr, typ, metav1.ConditionFalse, "RouteConflict", msg)
		}
		meta.RemoveStatusCondition(&wr.Status.Conditions, v1alpha1.ConditionRolloutProgressing)
		return ctrl.Result{RequeueAfter: r.cfg.ResyncInterval}, nil
	}
	var retry []error
	r.applyPromotion(wr)

	// 1. Artifacts: push what the gateway lacks.
	inv, err := r.inventory(ctx, len(wr.Spec.Plugins) > 0 || len(routePlugins(wr)) > 0)
	if err != nil {
		for _, typ := range []string{v1alpha1.ConditionArtifactsReady, v1alpha1.ConditionRouteApplied, v1alpha1.ConditionReady} {
			r.setCondition(wr, typ, metav1.ConditionUnknown, "GatewayUnavailable", err.Error())
		}
		return ctrl.Result{}, err
	}
	bad, err := r.syncArtifacts(ctx, wr, inv)
	switch {
	case len(bad) > 0:
		r.setCondition(wr, v1alpha1.ConditionArtifactsReady, metav1.ConditionFalse, bad[0].Reason, joinMessages(bad))
	case err != nil:
		r.setCondition(wr, v1alpha1.ConditionArtifactsReady, metav1.ConditionFalse, "Unavailable", err.Error())
	default:
		r.setCondition(wr, v1alpha1.ConditionArtifactsReady, metav1.ConditionTrue, "Present", "every declared model and plugin version is on the gateway")
	}
	if err != nil {
		retry = append(retry, err)
	}

	// 2. The route, once everything it names is on the gateway. What the
	// gateway says of the route's rollout decides, not status (whose last
	// write may have been lost): a running rollout that spec.rollout does
	// not declare is aborted first, so that the route set next is the
	// declared one.
	gwr, gwrErr := r.gatewayRollout(ctx, wr.GatewayRouteName())
	if gwrErr != nil {
		retry = append(retry, gwrErr)
	}
	// A rollout running now, or one of this resource's, may have moved the
	// route's weights: setting the route back then is not drift.
	rolloutMoved := gwr.active() || rolloutActive(wr) || (wr.Status.Rollout != nil && wr.Status.Rollout.State == "rolled_back")
	if gwr.active() {
		why := ""
		switch {
		case wr.Spec.Rollout == nil:
			why = "spec.rollout is not set"
		case !gwr.matches(wr.Spec.Rollout):
			why = fmt.Sprintf("it is not the declared rollout (the gateway runs %s@%s, steps %v)", gwr.Spec.Model, gwr.Spec.Version, gwr.Spec.Steps)
		}
		if why != "" {
			if err := r.abortRollout(ctx, wr, why); err != nil {
				retry = append(retry, err)
			} else {
				gwr = nil
			}
		}
	}
	if wr.Spec.Rollout == nil && gwrErr == nil && !gwr.active() {
		wr.Status.Rollout = nil
		meta.RemoveStatusCondition(&wr.Status.Conditions, v1alpha1.ConditionRolloutProgressing)
	}
	routeOK := false
	if missing := inv.missing(wr); len(missing) > 0 {
		r.setCondition(wr, v1alpha1.ConditionRouteApplied, metav1.ConditionFalse, "WaitingForArtifacts",
			fmt.Sprintf("route %s names %s, not on the gateway: the gateway keeps serving its current route", wr.GatewayRouteName(), strings.Join(missing, ", ")))
	} else if err := r.syncRoute(ctx, wr, rolloutMoved, gwr.active()); err != nil {
		var ge *sdk.Error
		var ir *invalidRouteError
		if errors.As(err, &ir) {
			r.setCondition(wr, v1alpha1.ConditionRouteApplied, metav1.ConditionFalse, "InvalidRoute", ir.Error())
			r.cfg.Recorder.Eventf(wr, nil, corev1.EventTypeWarning, "InvalidRoute", "SetRoute", "route %s not set: %s", wr.GatewayRouteName(), ir.Error())
		} else if errors.As(err, &ge) && ge.Status == http.StatusBadRequest {
			r.setCondition(wr, v1alpha1.ConditionRouteApplied, metav1.ConditionFalse, "RouteRejected", ge.Message)
			r.cfg.Recorder.Eventf(wr, nil, corev1.EventTypeWarning, "RouteRejected", "SetRoute", "gateway rejected route %s: %s", wr.GatewayRouteName(), ge.Message)
		} else {
			r.setCondition(wr, v1alpha1.ConditionRouteApplied, metav1.ConditionFalse, "Unavailable", err.Error())
			retry = append(retry, err)
		}
	} else {
		routeOK = true
		msg := fmt.Sprintf("route %s is set on the gateway", wr.GatewayRouteName())
		if p := wr.Status.Promoted; p != nil {
			msg += fmt.Sprintf("; variant %s keeps the promoted %s@%s until spec.route.variants is edited", p.StableVariant, p.Model, p.Version)
		}
		r.setCondition(wr, v1alpha1.ConditionRouteApplied, metav1.ConditionTrue, "Applied", msg)
	}

	// 3. The rollout.
	var res ctrl.Result
	follow := false
	if gwrErr != nil {
		if wr.Spec.Rollout != nil {
			r.setCondition(wr, v1alpha1.ConditionRolloutProgressing, metav1.ConditionUnknown, "Unavailable", gwrErr.Error())
		}
	} else if follow, err = r.syncRollout(ctx, wr, routeOK, gwr); err != nil {
		retry = append(retry, err)
	}
	if follow {
		res.RequeueAfter = r.cfg.FollowInterval
	}

	// 4. Versions no longer declared, once no route sends them traffic.
	pending, err := r.deleteUndeclared(ctx, wr)
	if err != nil {
		retry = append(retry, err)
	}
	if pending {
		res.RequeueAfter = r.cfg.FollowInterval
	}
	r.refreshLoaded(ctx, wr)
	r.setReady(wr)
	if res.RequeueAfter == 0 || res.RequeueAfter > r.cfg.ResyncInterval {
		res.RequeueAfter = r.cfg.ResyncInterval
	}
	if err := errors.Join(retry...); err != nil {
		return ctrl.Result{}, err
	}
	log.V(1).Info("reconciled", "generation", wr.Generation, "requeueAfter", res.RequeueAfter)
	return res, nil
}

// routeOwner returns the WeirRoute that owns wr's gateway route when it is
// not wr: of those in the namespace naming the same route, the oldest
// (then the first by name) owns it.
func (r *Reconciler) routeOwner(ctx context.Context, wr *v1alpha1.WeirRoute) (*v1alpha1.WeirRoute, error) {
	var list v1alpha1.WeirRouteList
	if err := r.cfg.Client.List(ctx, &list, client.InNamespace(wr.Namespace)); err != nil {
		return nil, fmt.Errorf("list WeirRoutes: %w", err)
	}
	var owner *v1alpha1.WeirRoute
	for i := range list.Items {
		o := &list.Items[i]
		if o.UID == wr.UID || o.DeletionTimestamp != nil || o.GatewayRouteName() != wr.GatewayRouteName() || !olderThan(o, wr) {
			continue
		}
		if owner == nil || olderThan(o, owner) {
			owner = o
		}
	}
	return owner, nil
}

// setReady writes the aggregate Ready condition from the others: True when
// the artifacts are present, the route applied and no declared rollout is
// running or failed.
func (r *Reconciler) setReady(wr *v1alpha1.WeirRoute) {
	for _, typ := range []string{v1alpha1.ConditionArtifactsReady, v1alpha1.ConditionRouteApplied} {
		c := meta.FindStatusCondition(wr.Status.Conditions, typ)
		if c == nil || c.Status != metav1.ConditionTrue {
			reason, msg := "Unknown", typ+" is not known yet"
			if c != nil {
				reason, msg = c.Reason, typ+": "+c.Message
			}
			r.setCondition(wr, v1alpha1.ConditionReady, metav1.ConditionFalse, reason, msg)
			return
		}
	}
	if c := meta.FindStatusCondition(wr.Status.Conditions, v1alpha1.ConditionRolloutProgressing); c != nil && wr.Spec.Rollout != nil {
		switch {
		case c.Status == metav1.ConditionTrue:
			r.setCondition(wr, v1alpha1.ConditionReady, metav1.ConditionFalse, "RolloutProgressing", c.Message)
			return
		case c.Reason != "Promoted":
			r.setCondition(wr, v1alpha1.ConditionReady, metav1.ConditionFalse, c.Reason, "rollout: "+c.Message)
			return
		}
	}
	r.setCondition(wr, v1alpha1.ConditionReady, metav1.ConditionTrue, "Ready", "the declared artifacts, route and rollout are in effect on the gateway")
}

func joinMessages(bad []*badArtifactError) string {
	msgs := make([]string, len(bad))
	for i, b := range bad {
		msgs[i] = b.Error()
	}
	return strings.Join(msgs, "; ")
}

func (r *Reconciler) setCondition(wr *v1alpha1.WeirRoute, typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&wr.Status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: clip.String(msg, 1024), ObservedGeneration: wr.Generation,
	})
}

// eventAction names the artifact in an Event's action: the Event recorder
// folds Events of one action and reason into a series that keeps the first
// note, so two pushes of one pass must differ in their action to both be
// told (each naming its version).
func eventAction(action, key string) string {
	a := action + " " + key
	return a[:min(len(a), 128)] // the API's limit on an Event's action
}

func modelKey(name, version string) string  { return "model/" + name + "@" + version }
func pluginKey(name, version string) string { return "plugin/" + name + "@" + version }

// inventory is what the gateway has: model versions and plugin versions.
type inventory struct {
	models  map[string]sdk.VersionInfo // name@version
	plugins map[string]bool            // name@version, and name alone
}

func (r *Reconciler) inventory(ctx context.Context, plugins bool) (*inventory, error) {
	inv := &inventory{models: map[string]sdk.VersionInfo{}, plugins: map[string]bool{}}
	models, err := r.cfg.Gateway.ListModels(ctx)
	if err != nil {
		return nil, fmt.Errorf("list models on the gateway: %w", err)
	}
	for _, m := range models {
		for _, v := range m.Versions {
			inv.models[m.Name+"@"+v.Version] = v
		}
	}
	if !plugins {
		return inv, nil
	}
	ps, err := r.cfg.Gateway.ListPlugins(ctx)
	if err != nil {
		return nil, fmt.Errorf("list plugins on the gateway: %w", err)
	}
	for _, p := range ps {
		inv.plugins[p.Name] = true
		for _, v := range p.Versions {
			inv.plugins[p.Name+"@"+v] = true
		}
	}
	return inv, nil
}

// routePlugins is every plugin step the route of wr names: its chains and
// its variants' own.
func routePlugins(wr *v1alpha1.WeirRoute) []v1alpha1.PluginStep {
	rs := wr.Spec.Route
	out := append(slices.Clone(rs.Plugins), rs.Postprocess...)
	for _, v := range rs.Variants {
		for _, chain := range []*[]v1alpha1.PluginStep{v.Plugins, v.Postprocess} {
			if chain != nil {
				out = append(out, *chain...)
			}
		}
	}
	return out
}

// missing lists what the route of wr names that the gateway does not have.
func (inv *inventory) missing(wr *v1alpha1.WeirRoute) []string {
	var out []string
	model := func(m, v v1alpha1.Name) {
		if _, ok := inv.models[string(m)+"@"+string(v)]; !ok && v != "" && v != "latest" {
			out = append(out, fmt.Sprintf("model %s@%s", m, v))
		}
	}
	for _, v := range effectiveVariants(wr) {
		model(v.Model, v.Version)
	}
	if sh := wr.Spec.Route.Shadow; sh != nil {
		model(sh.Model, sh.Version)
	}
	for _, s := range routePlugins(wr) {
		key := string(s.Name)
		if s.Version != "" && s.Version != "latest" {
			key += "@" + string(s.Version)
		}
		if !inv.plugins[key] {
			out = append(out, "plugin "+key)
		}
	}
	return out
}

// knownBad returns the failure recorded for artifact key in this generation.
func (r *Reconciler) knownBad(wr *v1alpha1.WeirRoute, key string) *badArtifactError {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.bad[nameOf(wr)]
	if !ok || m.uid != wr.UID || m.generation != wr.Generation {
		return nil
	}
	return m.errs[key]
}

func (r *Reconciler) rememberBad(wr *v1alpha1.WeirRoute, key string, b *badArtifactError) {
	if b.Reason == "ConfigMapKeyMissing" {
		return // the ConfigMap may be filled in later: look again
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.bad[nameOf(wr)]
	if !ok || m.uid != wr.UID || m.generation != wr.Generation {
		m = badMemo{uid: wr.UID, generation: wr.Generation, errs: map[string]*badArtifactError{}}
		r.bad[nameOf(wr)] = m
	}
	m.errs[key] = b
}

func (r *Reconciler) forgetBad(nn types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.bad, nn)
}

func nameOf(wr *v1alpha1.WeirRoute) types.NamespacedName {
	return types.NamespacedName{Namespace: wr.Namespace, Name: wr.Name}
}

// push fetches src and hands it to send, classifying failures: a bad
// artifact is remembered for this generation and reported, anything else is
// returned to be retried.
func (r *Reconciler) push(ctx context.Context, wr *v1alpha1.WeirRoute, key, kind, what string, src v1alpha1.ArtifactSource,
	send func(body io.Reader) error) (bad *badArtifactError, err error) {
	if b := r.knownBad(wr, key); b != nil {
		return b, nil
	}
	defer func() {
		switch {
		case bad != nil:
			metricPushes.WithLabelValues(kind, "bad").Inc()
			r.rememberBad(wr, key, bad)
			r.cfg.Recorder.Eventf(wr, nil, corev1.EventTypeWarning, bad.Reason, eventAction("PushArtifact", key), "%s; serving versions are left as they are", bad.Error())
		case err != nil:
			metricPushes.WithLabelValues(kind, "error").Inc()
		default:
			metricPushes.WithLabelValues(kind, "ok").Inc()
		}
	}()
	a, err := r.fetch.fetch(ctx, wr.Namespace, what, src)
	if err != nil {
		if b, ok := isBadArtifact(err); ok {
			return b, nil
		}
		return nil, err
	}
	defer a.Close()
	body, err := a.body()
	if err != nil {
		return nil, fmt.Errorf("%s: rewind the download: %w", what, err)
	}
	if err := send(body); err != nil {
		err = rejected(what, err)
		if b, ok := isBadArtifact(err); ok {
			return b, nil
		}
		return nil, err
	}
	r.cfg.Recorder.Eventf(wr, nil, corev1.EventTypeNormal, cases(kind)+"Pushed", eventAction("Push"+cases(kind), key), "pushed %s (%d bytes) to the gateway", what, a.size)
	return nil, nil
}

// syncArtifacts pushes every declared model, reference and plugin version the
// gateway does not have, each on its own: one bad artifact does not keep the
// others from the gateway. Versions are immutable, so one present is done. It
// returns the bad artifacts and the retryable failures.
func (r *Reconciler) syncArtifacts(ctx context.Context, wr *v1alpha1.WeirRoute, inv *inventory) ([]*badArtifactError, error) {
	var bad []*badArtifactError
	var errs []error
	note := func(b *badArtifactError, err error) {
		if b != nil {
			bad = append(bad, b)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, m := range wr.Spec.Models {
		name, version := string(m.Name), string(m.Version)
		what := fmt.Sprintf("model %s@%s", name, version)
		key := modelKey(name, version)
		wr.Status.Managed = addSet(wr.Status.Managed, key)
		v, present := inv.models[name+"@"+version]
		if present && v.SHA256 != "" && m.Source.SHA256 != "" && !strings.EqualFold(v.SHA256, m.Source.SHA256) {
			note(&badArtifactError{Reason: "VersionConflict", Err: fmt.Errorf(
				"%s is on the gateway with sha256 %s, the resource declares %s; versions are immutable: declare a new version", what, v.SHA256, m.Source.SHA256)}, nil)
			continue
		}
		if !present {
			b, err := r.push(ctx, wr, key, "model", what, m.Source, func(body io.Reader) error {
				return r.cfg.Gateway.PushModel(ctx, name, version, body, m.Features)
			})
			note(b, err)
			if b != nil || err != nil {
				continue
			}
			inv.models[name+"@"+version] = sdk.VersionInfo{Version: version}
		}
		if m.Reference != nil && (!present || !v.Reference) {
			ct := cmpOr(m.Reference.ContentType, "text/csv")
			note(r.push(ctx, wr, key+"/reference", "reference", "reference of "+what, m.Reference.ArtifactSource, func(body io.Reader) error {
				return r.cfg.Gateway.PushReference(ctx, name, version, body, ct)
			}))
		}
	}
	for _, p := range wr.Spec.Plugins {
		name, version := string(p.Name), string(p.Version)
		key := pluginKey(name, version)
		wr.Status.Managed = addSet(wr.Status.Managed, key)
		if inv.plugins[name+"@"+version] {
			continue
		}
		b, err := r.push(ctx, wr, key, "plugin", fmt.Sprintf("plugin %s@%s", name, version), p.Source, func(body io.Reader) error {
			return r.cfg.Gateway.PushPlugin(ctx, name, version, body)
		})
		note(b, err)
		if b == nil && err == nil {
			inv.plugins[name+"@"+version], inv.plugins[name] = true, true
		}
	}
	return bad, errors.Join(errs...)
}

// rejected turns the gateway's 400 (bytes not loadable) and 413 (larger
// than its --max-upload) into a bad artifact: sending the same bytes again
// cannot succeed. Any other failure stays retryable.
func rejected(what string, err error) error {
	var ge *sdk.Error
	if errors.As(err, &ge) {
		switch ge.Status {
		case http.StatusBadRequest:
			return &badArtifactError{Reason: "Rejected", Err: fmt.Errorf("gateway rejected %s: %s", what, ge.Message)}
		case http.StatusRequestEntityTooLarge:
			return &badArtifactError{Reason: "TooLargeForGateway", Err: fmt.Errorf(
				"gateway refused %s as too large (HTTP 413: %s): raise the gateway's --max-upload", what, ge.Message)}
		}
	}
	return fmt.Errorf("push %s: %w", what, err)
}

// declaredRoute is the route wr declares, with a standing promotion applied
// (effectiveVariants), as the gateway takes it (router.Config is the one
// definition of the route's wire shape). An on_error that is neither a
// string nor an object is an error naming its field: the gateway could not
// read it either.
func declaredRoute(wr *v1alpha1.WeirRoute) (router.Config, error) {
	var errs []error
	steps := func(field string, in []v1alpha1.PluginStep) []router.PluginRef {
		out := make([]router.PluginRef, 0, len(in))
		for i, s := range in {
			p := router.PluginRef{Name: string(s.Name), Version: string(s.Version), Timeout: string(s.Timeout), MemoryMB: int(s.MemoryMB)}
			if s.Config != nil {
				p.Config = json.RawMessage(s.Config.Raw)
			}
			if s.OnError != nil && len(s.OnError.Raw) > 0 {
				if err := json.Unmarshal(s.OnError.Raw, &p.OnError); err != nil {
					errs = append(errs, fmt.Errorf("%s[%d].on_error: %w", field, i, err))
				}
			}
			out = append(out, p)
		}
		return out
	}
	variantSteps := func(field string, in *[]v1alpha1.PluginStep) *[]router.PluginRef {
		if in == nil {
			return nil // the route's chain
		}
		out := steps(field, *in)
		return &out
	}
	rs := wr.Spec.Route
	cfg := router.Config{Plugins: steps("spec.route.plugins", rs.Plugins), Postprocess: steps("spec.route.postprocess", rs.Postprocess)}
	for _, v := range effectiveVariants(wr) {
		field := fmt.Sprintf("spec.route.variants[name=%s]", v.Name)
		cfg.Variants = append(cfg.Variants, router.Variant{Name: string(v.Name), Model: string(v.Model), Version: string(v.Version), Weight: int(v.Weight),
			Plugins: variantSteps(field+".plugins", v.Plugins), Postprocess: variantSteps(field+".postprocess", v.Postprocess)})
	}
	for _, m := range rs.Match {
		cfg.Match = append(cfg.Match, router.MatchRule{Header: m.Header, Value: m.Value, Variant: string(m.Variant)})
	}
	if f := rs.Features; f != nil {
		cfg.Features = &router.Features{KeyField: f.KeyField}
		for _, s := range f.Sets {
			cfg.Features.Sets = append(cfg.Features.Sets, string(s))
		}
	}
	if rs.Sticky != nil {
		cfg.Sticky = &router.Sticky{Header: rs.Sticky.Header, Field: rs.Sticky.Field}
	}
	if rs.Shadow != nil {
		cfg.Shadow = &router.Shadow{Model: string(rs.Shadow.Model), Version: string(rs.Shadow.Version), Percent: float64(rs.Shadow.Percent)}
	}
	return cfg, errors.Join(errs...)
}

// routeJSON is the gateway's route body for wr.
func routeJSON(wr *v1alpha1.WeirRoute) (json.RawMessage, error) {
	cfg, err := declaredRoute(wr)
	if err != nil {
		return nil, err
	}
	return json.Marshal(cfg)
}

func hashOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

func variantsHash(vs []v1alpha1.Variant) string {
	b, _ := json.Marshal(vs)
	return hashOf(b)
}

// effectiveVariants is spec.route.variants, unless a rollout of this
// resource promoted a version and the variants were not edited since: then
// the stable variant carries the promoted version and the canary is gone, as
// the gateway's promotion left them (canary/rollout.go). Sending the stale
// spec again would silently roll production back.
func effectiveVariants(wr *v1alpha1.WeirRoute) []v1alpha1.Variant {
	vs := wr.Spec.Route.Variants
	p := wr.Status.Promoted
	if p == nil || variantsHash(vs) != p.VariantsHash {
		return vs
	}
	out := make([]v1alpha1.Variant, 0, len(vs))
	stable, others := -1, int32(0)
	for _, v := range vs {
		switch string(v.Name) {
		case p.CanaryVariant:
			continue
		case p.StableVariant:
			v.Model, v.Version = v1alpha1.Name(p.Model), v1alpha1.Name(p.Version)
			stable = len(out)
		default:
			others += v.Weight
		}
		out = append(out, v)
	}
	if stable < 0 {
		return vs // the stable variant is gone from the spec: nothing to keep
	}
	out[stable].Weight = 100 - others
	return out
}

// applyPromotion ends a standing promotion once spec.route.variants was
// edited: the new variants are the user's word.
func (r *Reconciler) applyPromotion(wr *v1alpha1.WeirRoute) {
	if p := wr.Status.Promoted; p != nil && variantsHash(wr.Spec.Route.Variants) != p.VariantsHash {
		r.cfg.Recorder.Eventf(wr, nil, corev1.EventTypeNormal, "PromotionSettled", "SetRoute",
			"spec.route.variants was edited after the promotion of %s@%s: the route now follows the spec", p.Model, p.Version)
		wr.Status.Promoted = nil
	}
}

// stateRejected marks in status a rollout spec the gateway refused (400):
// it is not sent again until it changes.
const stateRejected = "rejected"

// rolloutActive reports whether status says the declared rollout may still
// be moving the route's weights on the gateway.
func rolloutActive(wr *v1alpha1.WeirRoute) bool {
	st := wr.Status.Rollout
	return st != nil && st.State != "promoted" && st.State != "rolled_back" && st.State != "aborted" && st.State != stateRejected
}

// invalidRouteError is a declared route that cannot be written as the
// gateway's route JSON: like the gateway's 400, sending it again cannot
// succeed until the spec changes.
type invalidRouteError struct{ err error }

func (e *invalidRouteError) Error() string { return "invalid route: " + e.err.Error() }
func (e *invalidRouteError) Unwrap() error { return e.err }

// syncRoute makes the gateway's route equal to the declared one, comparing
// the whole route (not only its existence), so a route deleted or edited by
// hand is set back. While a rollout runs, the gateway owns the variants'
// weights: they are taken from the gateway instead of compared. rolloutMoved
// says a rollout of this resource may have changed the route (a finished
// one leaves its canary at weight 0): setting it then is not drift.
// rolloutRunning says the gateway runs the declared rollout now.
func (r *Reconciler) syncRoute(ctx context.Context, wr *v1alpha1.WeirRoute, rolloutMoved, rolloutRunning bool) error {
	name := wr.GatewayRouteName()
	want, err := declaredRoute(wr)
	if err != nil {
		return &invalidRouteError{err: err}
	}
	specJSON, err := json.Marshal(want)
	if err != nil {
		return fmt.Errorf("encode route: %w", err)
	}
	h := hashOf(specJSON)
	current, err := r.cfg.Gateway.GetRoute(ctx, name)
	var ge *sdk.Error
	switch {
	case err == nil:
	case errors.As(err, &ge) && ge.Status == http.StatusNotFound:
		current = nil
	default:
		return fmt.Errorf("get route %s: %w", name, err)
	}
	if current != nil && rolloutRunning {
		var gw struct {
			Variants []router.Variant `json:"variants"`
		}
		if err := json.Unmarshal(current, &gw); err == nil && len(gw.Variants) > 0 {
			want.Variants = gw.Variants
		}
	}
	body, err := json.Marshal(want)
	if err != nil {
		return fmt.Errorf("encode route: %w", err)
	}
	if current != nil && sameRoute(current, body) {
		wr.Status.AppliedRouteHash = h
		return nil
	}
	if err := r.cfg.Gateway.SetRoute(ctx, name, body); err != nil {
		return fmt.Errorf("set route %s: %w", name, err)
	}
	if wr.Status.AppliedRouteHash == h && !rolloutMoved {
		// Nothing was declared anew: the gateway's route drifted.
		metricRouteCorrections.Inc()
		what := "was deleted"
		if current != nil {
			what = "differed from the declaration"
		}
		r.cfg.Recorder.Eventf(wr, nil, corev1.EventTypeWarning, "RouteRestored", "SetRoute",
			"route %s on the gateway %s (changed outside this resource); set it again", name, what)
	} else {
		r.cfg.Recorder.Eventf(wr, nil, corev1.EventTypeNormal, "RouteApplied", "SetRoute", "set route %s: %s", name, clip.String(string(body), 512))
	}
	wr.Status.AppliedRouteHash = h
	return nil
}

// sameRoute compares the gateway's route (GET, with its read-only fields)
// with a body to PUT, as JSON values: empty lists, empty objects and nulls
// count as absent, and name, revision and updated_at are ignored. The one
// exception is a variant's chain: an empty list there is "none", which
// differs from absent ("the route's", router.Variant), so it is kept.
func sameRoute(gateway, body []byte) bool {
	var a, b any
	if json.Unmarshal(gateway, &a) != nil || json.Unmarshal(body, &b) != nil {
		return false
	}
	if m, ok := a.(map[string]any); ok {
		delete(m, "name")
		delete(m, "revision")
		delete(m, "updated_at")
	}
	markNoChains(a)
	markNoChains(b)
	return reflect.DeepEqual(prune(a), prune(b))
}

// noChain stands, in a decoded route, for a variant's explicit empty chain,
// which prune must not drop.
type noChain struct{}

// markNoChains replaces each variant's empty plugins or postprocess list
// of a decoded route with noChain.
func markNoChains(route any) {
	m, _ := route.(map[string]any)
	vs, _ := m["variants"].([]any)
	for _, v := range vs {
		v, _ := v.(map[string]any)
		for _, k := range []string{"plugins", "postprocess"} {
			if l, ok := v[k].([]any); ok && len(l) == 0 {
				v[k] = noChain{}
			}
		}
	}
}

// prune drops null, empty-list and empty-object values (and the "latest"
// the gateway may spell out for an empty version) from a decoded JSON value.
func prune(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			e = prune(e)
			if e == nil || (k == "version" && e == "") {
				continue
			}
			out[k] = e
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case []any:
		var out []any
		for _, e := range x {
			out = append(out, prune(e))
		}
		if len(out) == 0 {
			return nil
		}
		return out
	default:
		return v
	}
}

// rolloutJSON is the gateway's rollout body (docs/api.md, POST .../rollout).
func rolloutJSON(rs *v1alpha1.RolloutSpec) (json.RawMessage, error) {
	body := map[string]any{
		"variant": cmpOr(string(rs.Variant), "canary"),
		"model":   string(rs.Model),
		"version": string(rs.Version),
		"steps":   rs.Steps,
	}
	if rs.Interval != nil {
		d, err := rs.Interval.Parse()
		if err != nil {
			return nil, err
		}
		body["interval"] = d.String()
	}
	for key, d := range map[string]v1alpha1.Decimal{"max_error_rate": rs.MaxErrorRate, "max_drift": rs.MaxDrift} {
		if d != "" {
			body[key] = json.Number(d)
		}
	}
	if rs.MaxP99Ms != nil {
		body["max_p99_ms"] = *rs.MaxP99Ms
	}
	if rs.MinRequests != nil {
		body["min_requests"] = *rs.MinRequests
	}
	return json.Marshal(body)
}

// abortRollout aborts the rollout status describes, if the gateway still
// runs it. A 409 (nothing active) or 404 is already the wanted end.
func (r *Reconciler) abortRollout(ctx context.Context, wr *v1alpha1.WeirRoute, why string) error {
	route := wr.GatewayRouteName()
	_, err := r.cfg.Gateway.RolloutAction(ctx, route, "abort")
	var ge *sdk.Error
	switch {
	case err == nil:
		r.cfg.Recorder.Eventf(wr, nil, corev1.EventTypeNormal, "RolloutAborted", "AbortRollout",
			"aborted the rollout on %s (%s): all traffic back on the stable variant", route, why)
		return nil
	case errors.As(err, &ge) && (ge.Status == http.StatusConflict || ge.Status == http.StatusNotFound):
		return nil
	default:
		return fmt.Errorf("abort rollout on %s: %w", route, err)
	}
}

// gatewayRollout is the part of the gateway's GET /v1/routes/{r}/rollout
// the reconciler reads; nil is no rollout on the route.
type gatewayRollout struct {
	State         string      `json:"state"`
	Weight        float64     `json:"weight"`
	CurrentWeight float64     `json:"current_weight"`
	Reason        string      `json:"reason"`
	Stable        string      `json:"stable_variant"`
	Spec          rolloutBody `json:"spec"`
	raw           json.RawMessage
}

// rolloutBody is a rollout spec as the gateway's JSON spells it (docs/api.md,
// POST .../rollout).
type rolloutBody struct {
	Variant      string   `json:"variant"`
	Model        string   `json:"model"`
	Version      string   `json:"version"`
	Steps        []int32  `json:"steps"`
	Interval     string   `json:"interval,omitempty"`
	MaxErrorRate *float64 `json:"max_error_rate,omitempty"`
	MaxP99Ms     *float64 `json:"max_p99_ms,omitempty"`
	MaxDrift     *float64 `json:"max_drift,omitempty"`
	MinRequests  *int64   `json:"min_requests,omitempty"`
}

// active reports whether the gateway is moving the route's weights.
func (g *gatewayRollout) active() bool {
	return g != nil && (g.State == "progressing" || g.State == "paused")
}

// matches reports whether the gateway's rollout is the one rs declares:
// the same canary, version and steps, and every threshold rs sets (the
// gateway fills defaults for those rs leaves out).
func (g *gatewayRollout) matches(rs *v1alpha1.RolloutSpec) bool {
	if g == nil || rs == nil {
		return false
	}
	body, err := rolloutJSON(rs)
	if err != nil {
		return false
	}
	var want rolloutBody
	if json.Unmarshal(body, &want) != nil {
		return false
	}
	have := g.Spec
	if have.Variant != want.Variant || have.Model != want.Model || have.Version != want.Version || !slices.Equal(have.Steps, want.Steps) {
		return false
	}
	if want.Interval != "" {
		w, _ := time.ParseDuration(want.Interval)
		h, err := time.ParseDuration(have.Interval)
		if err != nil || h != w {
			return false
		}
	}
	sameF := func(w, h *float64) bool { return w == nil || (h != nil && *w == *h) }
	return sameF(want.MaxErrorRate, have.MaxErrorRate) && sameF(want.MaxP99Ms, have.MaxP99Ms) && sameF(want.MaxDrift, have.MaxDrift) &&
		(want.MinRequests == nil || (have.MinRequests != nil && *want.MinRequests == *have.MinRequests))
}

// gatewayRollout asks the gateway for the route's rollout; nil when it has
// none (404).
func (r *Reconciler) gatewayRollout(ctx context.Context, route string) (*gatewayRollout, error) {
	raw, err := r.cfg.Gateway.Rollout(ctx, route)
	var ge *sdk.Error
	switch {
	case errors.As(err, &ge) && ge.Status == http.StatusNotFound:
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("get rollout of %s: %w", route, err)
	}
	return decodeRollout(route, raw)
}

func decodeRollout(route string, raw json.RawMessage) (*gatewayRollout, error) {
	g := &gatewayRollout{raw: raw}
	if err := json.Unmarshal(raw, g); err != nil {
		return nil, fmt.Errorf("decode rollout of %s: %w", route, err)
	}
	return g, nil
}

// syncRollout makes the gateway run the declared rollout, from what the
// gateway says (gwr, read this pass; a running rollout that does not match
// was aborted before): one that matches spec.rollout is adopted, whether or
// not status recorded starting it; otherwise it is started, unless status
// already saw this spec end. It copies the gateway's state into status and
// reports whether to keep following it.
func (r *Reconciler) syncRollout(ctx context.Context, wr *v1alpha1.WeirRoute, routeOK bool, gwr *gatewayRollout) (bool, error) {
	rs := wr.Spec.Rollout
	if rs == nil {
		return false, nil
	}
	body, err := rolloutJSON(rs)
	if err != nil {
		return false, fmt.Errorf("encode rollout: %w", err)
	}
	route := wr.GatewayRouteName()
	h := hashOf(body)
	recorded := wr.Status.Rollout != nil && wr.Status.Rollout.SpecHash == h
	switch {
	case gwr.matches(rs) && (gwr.active() || gwr.State == "promoted" || recorded):
		// A rolled-back rollout of this spec that status did not record is
		// started again (the spec was removed and declared anew: a retry).
		if !recorded {
			// Started by an earlier pass whose status write was lost (or by
			// hand, as declared): follow it instead of starting it again.
			wr.Status.Rollout = &v1alpha1.RolloutStatus{SpecHash: h}
			r.cfg.Recorder.Eventf(wr, nil, corev1.EventTypeNormal, "RolloutAdopted", "FollowRollout",
				"the gateway already runs the declared rollout on %s to %s@%s (%s): following it", route, rs.Model, rs.Version, gwr.State)
		}
	case recorded && wr.Status.Rollout.State == stateRejected:
		r.setCondition(wr, v1alpha1.ConditionRolloutProgressing, metav1.ConditionFalse, "RolloutRejected", wr.Status.Rollout.Reason)
		return false, nil
	case recorded && !rolloutActive(wr) && wr.Status.Rollout.State != "":
		// This spec's rollout was seen to end (and the gateway has moved
		// on): it is not run again until spec.rollout changes; its end
		// stays reported.
		ro := wr.Status.Rollout
		gwr = &gatewayRollout{State: ro.State, Weight: float64(ro.Weight), Reason: ro.Reason}
		if ro.Raw != nil {
			gwr.raw = ro.Raw.Raw
		}
	case !routeOK:
		r.setCondition(wr, v1alpha1.ConditionRolloutProgressing, metav1.ConditionFalse, "WaitingForRoute",
			"the rollout starts once the route is applied")
		return false, nil
	default:
		raw, err := r.cfg.Gateway.StartRollout(ctx, route, body)
		var ge *sdk.Error
		switch {
		case errors.As(err, &ge) && ge.Status == http.StatusBadRequest:
			r.setCondition(wr, v1alpha1.ConditionRolloutProgressing, metav1.ConditionFalse, "RolloutRejected", ge.Message)
			r.cfg.Recorder.Eventf(wr, nil, corev1.EventTypeWarning, "RolloutRejected", "StartRollout", "gateway rejected the rollout on %s: %s", route, ge.Message)
			wr.Status.Rollout = &v1alpha1.RolloutStatus{SpecHash: h, State: stateRejected, Reason: ge.Message}
			return false, nil
		case err != nil:
			// A 409 (another rollout started since this pass read the
			// gateway) is settled by the next pass, from the gateway's word.
			r.setCondition(wr, v1alpha1.ConditionRolloutProgressing, metav1.ConditionUnknown, "Unavailable", err.Error())
			return false, fmt.Errorf("start rollout on %s: %w", route, err)
		}
		wr.Status.Rollout = &v1alpha1.RolloutStatus{SpecHash: h}
		r.cfg.Recorder.Eventf(wr, nil, corev1.EventTypeNormal, "RolloutStarted", "StartRollout",
			"started rollout on %s to %s@%s, steps %v", route, rs.Model, rs.Version, rs.Steps)
		if gwr, err = decodeRollout(route, raw); err != nil || gwr.State == "" {
			gwr, err = r.gatewayRollout(ctx, route)
		}
	}
	if err == nil && gwr == nil {
		err = fmt.Errorf("get rollout of %s: the gateway reports none", route)
	}
	if err != nil {
		r.setCondition(wr, v1alpha1.ConditionRolloutProgressing, metav1.ConditionUnknown, "Unavailable", err.Error())
		return false, err
	}
	st, raw := gwr, gwr.raw
	prev := wr.Status.Rollout.State
	wr.Status.Rollout.State = st.State
	wr.Status.Rollout.Weight = int32(max(st.Weight, st.CurrentWeight))
	wr.Status.Rollout.Reason = st.Reason
	if raw != nil {
		wr.Status.Rollout.Raw = &apiextensionsv1.JSON{Raw: raw}
	}

	follow := false
	switch st.State {
	case "progressing":
		follow = true
		r.setCondition(wr, v1alpha1.ConditionRolloutProgressing, metav1.ConditionTrue, "Progressing",
			fmt.Sprintf("canary %s@%s at %d%%", rs.Model, rs.Version, wr.Status.Rollout.Weight))
	case "paused":
		follow = true
		r.setCondition(wr, v1alpha1.ConditionRolloutProgressing, metav1.ConditionTrue, "Paused", cmpOr(st.Reason, "paused"))
	case "promoted":
		r.setCondition(wr, v1alpha1.ConditionRolloutProgressing, metav1.ConditionFalse, "Promoted",
			fmt.Sprintf("%s@%s takes all traffic", rs.Model, rs.Version))
		if prev != "promoted" && st.Stable != "" {
			// Keep the promotion over the stale spec.route from now on.
			wr.Status.Promoted = &v1alpha1.PromotedStatus{
				Model: string(rs.Model), Version: string(rs.Version),
				StableVariant: st.Stable, CanaryVariant: cmpOr(st.Spec.Variant, cmpOr(string(rs.Variant), "canary")),
				VariantsHash: variantsHash(wr.Spec.Route.Variants),
			}
		}
	case "rolled_back":
		r.setCondition(wr, v1alpha1.ConditionRolloutProgressing, metav1.ConditionFalse, "RolledBack", cmpOr(st.Reason, "rolled back"))
	default:
		follow = true
		r.setCondition(wr, v1alpha1.ConditionRolloutProgressing, metav1.ConditionUnknown, "UnknownState", fmt.Sprintf("gateway reports state %q", st.State))
	}
	if prev != st.State && prev != "" {
		typ := corev1.EventTypeNormal
		if st.State == "rolled_back" {
			typ = corev1.EventTypeWarning
		}
		r.cfg.Recorder.Eventf(wr, nil, typ, "Rollout"+strings.ReplaceAll(cases(st.State), "_", ""), "FollowRollout",
			"rollout on %s: %s -> %s %s", route, prev, st.State, st.Reason)
	}
	return follow, nil
}

// deleteUndeclared deletes the versions this resource pushed earlier and no
// longer declares. The gateway answers 409 while a route sends a model version
// traffic; that is "not yet", tried again later. It reports whether any
// deletion is still pending.
func (r *Reconciler) deleteUndeclared(ctx context.Context, wr *v1alpha1.WeirRoute) (bool, error) {
	declared := map[string]bool{}
	for _, m := range wr.Spec.Models {
		declared[modelKey(string(m.Name), string(m.Version))] = true
	}
	for _, p := range wr.Spec.Plugins {
		declared[pluginKey(string(p.Name), string(p.Version))] = true
	}
	pending := false
	var keep []string
	for _, key := range wr.Status.Managed {
		if declared[key] {
			keep = append(keep, key)
			continue
		}
		kind, nv, _ := strings.Cut(key, "/")
		name, version, _ := strings.Cut(nv, "@")
		var err error
		if kind == "model" {
			err = r.cfg.Gateway.DeleteModel(ctx, name, version)
		} else {
			err = r.cfg.Gateway.DeletePlugin(ctx, name, version)
		}
		var ge *sdk.Error
		switch {
		case err == nil:
			r.cfg.Recorder.Eventf(wr, nil, corev1.EventTypeNormal, "Deleted", eventAction("Delete", key), "deleted %s %s@%s, no longer declared", kind, name, version)
		case errors.As(err, &ge) && ge.Status == http.StatusNotFound:
			// Already gone: nothing to do.
		case errors.As(err, &ge) && ge.Status == http.StatusConflict:
			pending = true
			keep = append(keep, key)
			r.cfg.Recorder.Eventf(wr, nil, corev1.EventTypeNormal, "DeleteDeferred", eventAction("Delete", key), "%s %s@%s is still in use (%s); deleting it later", kind, name, version, ge.Message)
		default:
			wr.Status.Managed = append(keep, remaining(wr.Status.Managed, key)...)
			return false, fmt.Errorf("delete %s %s@%s: %w", kind, name, version, err)
		}
	}
	wr.Status.Managed = keep
	return pending, nil
}

// remaining returns the keys of list from key on.
func remaining(list []string, key string) []string {
	i := slices.Index(list, key)
	if i < 0 {
		return nil
	}
	return list[i:]
}

// refreshLoaded copies the gateway's versions of the declared models into
// status. A failure only leaves the previous list; the next pass retries.
func (r *Reconciler) refreshLoaded(ctx context.Context, wr *v1alpha1.WeirRoute) {
	models, err := r.cfg.Gateway.ListModels(ctx)
	if err != nil {
		logf.FromContext(ctx).Info("cannot list models for status", "error", err.Error())
		return
	}
	wanted := map[string]bool{}
	for _, m := range wr.Spec.Models {
		wanted[string(m.Name)] = true
	}
	var out []v1alpha1.LoadedModel
	for _, m := range models {
		if !wanted[m.Name] {
			continue
		}
		for _, v := range m.Versions {
			out = append(out, v1alpha1.LoadedModel{Name: m.Name, Version: v.Version, State: v.State})
		}
	}
	slices.SortFunc(out, func(a, b v1alpha1.LoadedModel) int {
		return strings.Compare(a.Name+"@"+a.Version, b.Name+"@"+b.Version)
	})
	wr.Status.Models = out
}

func addSet(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// cases turns "rolled_back" into "Rolled_Back" for an Event reason.
func cases(s string) string {
	parts := strings.Split(s, "_")
	for i, p := range parts {
		if p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "_")
}
