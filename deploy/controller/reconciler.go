package controller

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/weirhq/weir/deploy/api/v1alpha1"
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

	FetchTimeout    time.Duration // one artifact download; default 2m
	MaxArtifactSize int64         // bytes; default 512 MiB
	FollowInterval  time.Duration // rollout polling and deferred deletes; default 10s
}

// Reconciler makes one WeirRoute true on the gateway. It is level-based: each
// pass compares the declaration with what the gateway reports and does only
// what is missing, so running it again changes nothing.
type Reconciler struct {
	cfg   ReconcilerConfig
	fetch fetcher
}

// NewReconciler validates cfg and returns a Reconciler.
func NewReconciler(cfg ReconcilerConfig) (*Reconciler, error) {
	if cfg.Gateway == nil || cfg.Client == nil || cfg.Recorder == nil {
		return nil, errors.New("controller: ReconcilerConfig needs Gateway, Client and Recorder")
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = 2 * time.Minute
	}
	if cfg.MaxArtifactSize <= 0 {
		cfg.MaxArtifactSize = 512 << 20
	}
	if cfg.FollowInterval <= 0 {
		cfg.FollowInterval = 10 * time.Second
	}
	return &Reconciler{
		cfg:   cfg,
		fetch: fetcher{reader: cfg.Client, http: &http.Client{Timeout: cfg.FetchTimeout}, maxSize: cfg.MaxArtifactSize},
	}, nil
}

// SetupWithManager registers the Reconciler with mgr. Status-only changes do
// not trigger a pass (the reconciler writes status itself); it polls what it
// follows with RequeueAfter.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.WeirRoute{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("weirroute").
		Complete(r)
}

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var wr v1alpha1.WeirRoute
	if err := r.cfg.Client.Get(ctx, req.NamespacedName, &wr); err != nil {
		// Deleted: the gateway keeps serving what it has. Cutting production
		// traffic because a resource went away is left to an explicit
		// `weir route` call.
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := wr.DeepCopy()
	res, err := r.reconcile(ctx, &wr)
	wr.Status.ObservedGeneration = wr.Generation
	if perr := patchStatus(ctx, r.cfg.Client, before, &wr); perr != nil {
		return ctrl.Result{}, errors.Join(err, perr)
	}
	return res, err
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

func (r *Reconciler) reconcile(ctx context.Context, wr *v1alpha1.WeirRoute) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	gen := wr.Generation

	// 1. Artifacts: push what the gateway lacks.
	if err := r.syncArtifacts(ctx, wr); err != nil {
		if bad, ok := isBadArtifact(err); ok {
			r.setCondition(wr, v1alpha1.ConditionArtifactsReady, metav1.ConditionFalse, bad.Reason, err.Error())
			r.cfg.Recorder.Eventf(wr, nil, corev1.EventTypeWarning, bad.Reason, "PushArtifact", "%s; serving versions are left as they are", err.Error())
			r.refreshLoaded(ctx, wr)
			if bad.Reason == "ConfigMapKeyMissing" {
				// The ConfigMap may be filled in later: look again.
				return ctrl.Result{RequeueAfter: r.cfg.FollowInterval}, nil
			}
			// Only a new spec (a new generation) can fix this.
			return ctrl.Result{}, reconcile.TerminalError(err)
		}
		r.setCondition(wr, v1alpha1.ConditionArtifactsReady, metav1.ConditionFalse, "Unavailable", err.Error())
		return ctrl.Result{}, err
	}
	r.setCondition(wr, v1alpha1.ConditionArtifactsReady, metav1.ConditionTrue, "Present", "every declared model and plugin version is on the gateway")

	// 2. The route.
	if err := r.syncRoute(ctx, wr); err != nil {
		var ge *sdk.Error
		if errors.As(err, &ge) && ge.Status == http.StatusBadRequest {
			r.setCondition(wr, v1alpha1.ConditionRouteApplied, metav1.ConditionFalse, "RouteRejected", ge.Message)
			r.cfg.Recorder.Eventf(wr, nil, corev1.EventTypeWarning, "RouteRejected", "SetRoute", "gateway rejected route %s: %s", wr.GatewayRouteName(), ge.Message)
			return ctrl.Result{}, reconcile.TerminalError(err)
		}
		r.setCondition(wr, v1alpha1.ConditionRouteApplied, metav1.ConditionFalse, "Unavailable", err.Error())
		return ctrl.Result{}, err
	}
	r.setCondition(wr, v1alpha1.ConditionRouteApplied, metav1.ConditionTrue, "Applied", fmt.Sprintf("route %s is set on the gateway", wr.GatewayRouteName()))

	// 3. The rollout.
	var res ctrl.Result
	follow, err := r.syncRollout(ctx, wr)
	if err != nil {
		return ctrl.Result{}, err
	}
	if follow {
		res.RequeueAfter = r.cfg.FollowInterval
	}

	// 4. Versions no longer declared, once no route sends them traffic.
	pending, err := r.deleteUndeclared(ctx, wr)
	if err != nil {
		return ctrl.Result{}, err
	}
	if pending {
		res.RequeueAfter = r.cfg.FollowInterval
	}
	r.refreshLoaded(ctx, wr)
	log.V(1).Info("reconciled", "generation", gen, "requeueAfter", res.RequeueAfter)
	return res, nil
}

func (r *Reconciler) setCondition(wr *v1alpha1.WeirRoute, typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&wr.Status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: truncate(msg, 1024), ObservedGeneration: wr.Generation,
	})
}

func modelKey(name, version string) string  { return "model/" + name + "@" + version }
func pluginKey(name, version string) string { return "plugin/" + name + "@" + version }

// syncArtifacts pushes every declared model, reference and plugin version the
// gateway does not have. Versions are immutable, so one present is done.
func (r *Reconciler) syncArtifacts(ctx context.Context, wr *v1alpha1.WeirRoute) error {
	models, err := r.cfg.Gateway.ListModels(ctx)
	if err != nil {
		return fmt.Errorf("list models on the gateway: %w", err)
	}
	have := map[string]sdk.VersionInfo{}
	for _, m := range models {
		for _, v := range m.Versions {
			have[m.Name+"@"+v.Version] = v
		}
	}
	for _, m := range wr.Spec.Models {
		name, version := string(m.Name), string(m.Version)
		what := fmt.Sprintf("model %s@%s", name, version)
		wr.Status.Managed = addSet(wr.Status.Managed, modelKey(name, version))
		v, present := have[name+"@"+version]
		if present && v.SHA256 != "" && m.Source.SHA256 != "" && !strings.EqualFold(v.SHA256, m.Source.SHA256) {
			return &badArtifactError{Reason: "VersionConflict", Err: fmt.Errorf(
				"%s is on the gateway with sha256 %s, the resource declares %s; versions are immutable: declare a new version", what, v.SHA256, m.Source.SHA256)}
		}
		if !present {
			b, err := r.fetch.fetch(ctx, wr.Namespace, what, m.Source)
			if err != nil {
				return err
			}
			if err := r.cfg.Gateway.PushModel(ctx, name, version, bytes.NewReader(b), m.Features); err != nil {
				return rejected(what, err)
			}
			r.cfg.Recorder.Eventf(wr, nil, corev1.EventTypeNormal, "ModelPushed", "PushModel", "pushed %s (%d bytes) to the gateway", what, len(b))
		}
		if m.Reference != nil && (!present || !v.Reference) {
			ref := "reference of " + what
			b, err := r.fetch.fetch(ctx, wr.Namespace, ref, m.Reference.ArtifactSource)
			if err != nil {
				return err
			}
			ct := m.Reference.ContentType
			if ct == "" {
				ct = "text/csv"
			}
			if err := r.cfg.Gateway.PushReference(ctx, name, version, bytes.NewReader(b), ct); err != nil {
				return rejected(ref, err)
			}
			r.cfg.Recorder.Eventf(wr, nil, corev1.EventTypeNormal, "ReferencePushed", "PushReference", "pushed the %s (%d bytes)", ref, len(b))
		}
	}

	if len(wr.Spec.Plugins) == 0 {
		return nil
	}
	plugins, err := r.cfg.Gateway.ListPlugins(ctx)
	if err != nil {
		return fmt.Errorf("list plugins on the gateway: %w", err)
	}
	havePlugin := map[string]bool{}
	for _, p := range plugins {
		for _, v := range p.Versions {
			havePlugin[p.Name+"@"+v] = true
		}
	}
	for _, p := range wr.Spec.Plugins {
		name, version := string(p.Name), string(p.Version)
		what := fmt.Sprintf("plugin %s@%s", name, version)
		wr.Status.Managed = addSet(wr.Status.Managed, pluginKey(name, version))
		if havePlugin[name+"@"+version] {
			continue
		}
		b, err := r.fetch.fetch(ctx, wr.Namespace, what, p.Source)
		if err != nil {
			return err
		}
		if err := r.cfg.Gateway.PushPlugin(ctx, name, version, bytes.NewReader(b)); err != nil {
			return rejected(what, err)
		}
		r.cfg.Recorder.Eventf(wr, nil, corev1.EventTypeNormal, "PluginPushed", "PushPlugin", "pushed %s (%d bytes) to the gateway", what, len(b))
	}
	return nil
}

// rejected turns the gateway's 400 (bytes not loadable) into a bad artifact;
// any other failure stays retryable.
func rejected(what string, err error) error {
	var ge *sdk.Error
	if errors.As(err, &ge) && ge.Status == http.StatusBadRequest {
		return &badArtifactError{Reason: "Rejected", Err: fmt.Errorf("gateway rejected %s: %s", what, ge.Message)}
	}
	return fmt.Errorf("push %s: %w", what, err)
}

// routeJSON is the gateway's route body for wr (API.md, PUT /v1/routes/{route}).
func routeJSON(wr *v1alpha1.WeirRoute) (json.RawMessage, error) {
	type step struct {
		Name    string                `json:"name"`
		Version string                `json:"version,omitempty"`
		Config  *apiextensionsv1.JSON `json:"config,omitempty"`
	}
	type variant struct {
		Name    string `json:"name"`
		Model   string `json:"model"`
		Version string `json:"version"`
		Weight  int32  `json:"weight"`
	}
	type shadow struct {
		Model   string `json:"model"`
		Version string `json:"version"`
		Percent int32  `json:"percent"`
	}
	type sticky struct {
		Header string `json:"header,omitempty"`
		Field  string `json:"field,omitempty"`
	}
	steps := func(in []v1alpha1.PluginStep) []step {
		out := make([]step, 0, len(in))
		for _, s := range in {
			out = append(out, step{Name: string(s.Name), Version: string(s.Version), Config: s.Config})
		}
		return out
	}
	rs := wr.Spec.Route
	body := struct {
		Plugins     []step    `json:"plugins"`
		Postprocess []step    `json:"postprocess"`
		Variants    []variant `json:"variants"`
		Sticky      *sticky   `json:"sticky,omitempty"`
		Shadow      *shadow   `json:"shadow,omitempty"`
	}{Plugins: steps(rs.Plugins), Postprocess: steps(rs.Postprocess)}
	for _, v := range rs.Variants {
		body.Variants = append(body.Variants, variant{Name: string(v.Name), Model: string(v.Model), Version: string(v.Version), Weight: v.Weight})
	}
	if rs.Sticky != nil {
		body.Sticky = &sticky{Header: rs.Sticky.Header, Field: rs.Sticky.Field}
	}
	if rs.Shadow != nil {
		body.Shadow = &shadow{Model: string(rs.Shadow.Model), Version: string(rs.Shadow.Version), Percent: rs.Shadow.Percent}
	}
	return json.Marshal(body)
}

func hashOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// syncRoute sets the route when its declaration changed or the gateway lost
// it. It does not re-send an unchanged route: a running rollout moves the
// route's weights on the gateway, and re-sending would undo that.
func (r *Reconciler) syncRoute(ctx context.Context, wr *v1alpha1.WeirRoute) error {
	body, err := routeJSON(wr)
	if err != nil {
		return fmt.Errorf("encode route: %w", err)
	}
	name := wr.GatewayRouteName()
	h := hashOf(body)
	if wr.Status.AppliedRouteHash == h {
		_, err := r.cfg.Gateway.GetRoute(ctx, name)
		if err == nil {
			return nil
		}
		var ge *sdk.Error
		if !errors.As(err, &ge) || ge.Status != http.StatusNotFound {
			return fmt.Errorf("get route %s: %w", name, err)
		}
	}
	if err := r.cfg.Gateway.SetRoute(ctx, name, body); err != nil {
		return fmt.Errorf("set route %s: %w", name, err)
	}
	wr.Status.AppliedRouteHash = h
	r.cfg.Recorder.Eventf(wr, nil, corev1.EventTypeNormal, "RouteApplied", "SetRoute", "set route %s: %s", name, truncate(string(body), 512))
	return nil
}

// rolloutJSON is the gateway's rollout body (API.md, POST .../rollout).
func rolloutJSON(rs *v1alpha1.RolloutSpec) (json.RawMessage, error) {
	body := map[string]any{
		"variant": cmpOr(string(rs.Variant), "canary"),
		"model":   string(rs.Model),
		"version": string(rs.Version),
		"steps":   rs.Steps,
	}
	if rs.Interval != nil {
		body["interval"] = rs.Interval.Duration.String()
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

// syncRollout starts the declared rollout once per rollout spec and copies the
// gateway's state into status. It reports whether to keep following it.
func (r *Reconciler) syncRollout(ctx context.Context, wr *v1alpha1.WeirRoute) (bool, error) {
	rs := wr.Spec.Rollout
	if rs == nil {
		wr.Status.Rollout = nil
		meta.RemoveStatusCondition(&wr.Status.Conditions, v1alpha1.ConditionRolloutProgressing)
		return false, nil
	}
	body, err := rolloutJSON(rs)
	if err != nil {
		return false, fmt.Errorf("encode rollout: %w", err)
	}
	route := wr.GatewayRouteName()
	h := hashOf(body)
	if wr.Status.Rollout == nil || wr.Status.Rollout.SpecHash != h {
		if _, err := r.cfg.Gateway.StartRollout(ctx, route, body); err != nil {
			var ge *sdk.Error
			if errors.As(err, &ge) && ge.Status == http.StatusBadRequest {
				r.setCondition(wr, v1alpha1.ConditionRolloutProgressing, metav1.ConditionFalse, "RolloutRejected", ge.Message)
				r.cfg.Recorder.Eventf(wr, nil, corev1.EventTypeWarning, "RolloutRejected", "StartRollout", "gateway rejected the rollout on %s: %s", route, ge.Message)
				return false, reconcile.TerminalError(err)
			}
			return false, fmt.Errorf("start rollout on %s: %w", route, err)
		}
		wr.Status.Rollout = &v1alpha1.RolloutStatus{SpecHash: h}
		r.cfg.Recorder.Eventf(wr, nil, corev1.EventTypeNormal, "RolloutStarted", "StartRollout",
			"started rollout on %s to %s@%s, steps %v", route, rs.Model, rs.Version, rs.Steps)
	}

	raw, err := r.cfg.Gateway.Rollout(ctx, route)
	if err != nil {
		return false, fmt.Errorf("get rollout of %s: %w", route, err)
	}
	var st struct {
		State         string  `json:"state"`
		Weight        float64 `json:"weight"`
		CurrentWeight float64 `json:"current_weight"`
		Reason        string  `json:"reason"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return false, fmt.Errorf("decode rollout of %s: %w", route, err)
	}
	prev := wr.Status.Rollout.State
	wr.Status.Rollout.State = st.State
	wr.Status.Rollout.Weight = int32(max(st.Weight, st.CurrentWeight))
	wr.Status.Rollout.Reason = st.Reason
	wr.Status.Rollout.Raw = &apiextensionsv1.JSON{Raw: raw}

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
			r.cfg.Recorder.Eventf(wr, nil, corev1.EventTypeNormal, "Deleted", "Delete", "deleted %s %s@%s, no longer declared", kind, name, version)
		case errors.As(err, &ge) && ge.Status == http.StatusNotFound:
			// Already gone: nothing to do.
		case errors.As(err, &ge) && ge.Status == http.StatusConflict:
			pending = true
			keep = append(keep, key)
			r.cfg.Recorder.Eventf(wr, nil, corev1.EventTypeNormal, "DeleteDeferred", "Delete", "%s %s@%s is still in use (%s); deleting it later", kind, name, version, ge.Message)
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
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
