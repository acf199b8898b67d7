package v1alpha1

import (
	"fmt"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types written to WeirRoute status.
const (
	// ArtifactsReady: every declared model, reference and plugin is on the gateway.
	ConditionArtifactsReady = "ArtifactsReady"
	// RouteApplied: the gateway serves the declared route.
	ConditionRouteApplied = "RouteApplied"
	// RolloutProgressing: the declared rollout is running (False once it ended).
	ConditionRolloutProgressing = "RolloutProgressing"
	// ScalingActive: the autoscaler acts on this resource's scaling policy.
	ConditionScalingActive = "ScalingActive"
	// Ready: the whole declaration of the current generation is true on the
	// gateway (artifacts present, route applied, no rollout failed); the one
	// condition Argo CD and Flux health checks read.
	ConditionReady = "Ready"
)

// Duration is a Go duration string ("30s", "1m30s", "200ms"). The schema
// checks its form; it is a plain string in Go so that an object stored before
// that check existed still decodes (one bad object must not stop the
// controller's cache from listing the others), and Parse reports it.
// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+)$`
// +kubebuilder:validation:MaxLength=64
type Duration string

// Parse returns d as a time.Duration, or an error naming the bad value.
func (d Duration) Parse() (time.Duration, error) {
	v, err := time.ParseDuration(string(d))
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a duration: write a number with a unit, e.g. 30s, 1m30s or 200ms", string(d))
	}
	return v, nil
}

// Name is a weir model, version, plugin or route name (docs/api.md "Names").
// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`
// +kubebuilder:validation:MaxLength=64
type Name string

// WeirRoute declares one weir route and everything it needs: the model and
// plugin artifacts, the traffic split or a canary rollout, and how the gateway
// Deployment scales.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=wr,categories=weir
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Artifacts",type=string,JSONPath=`.status.conditions[?(@.type=="ArtifactsReady")].status`
// +kubebuilder:printcolumn:name="Route",type=string,JSONPath=`.status.conditions[?(@.type=="RouteApplied")].status`
// +kubebuilder:printcolumn:name="Rollout",type=string,JSONPath=`.status.rollout.state`
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.status.currentReplicas`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WeirRoute struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   WeirRouteSpec   `json:"spec,omitempty"`
	Status WeirRouteStatus `json:"status,omitempty"`
}

// WeirRouteList is a list of WeirRoute.
//
// +kubebuilder:object:root=true
type WeirRouteList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WeirRoute `json:"items"`
}

// WeirRouteSpec is the declared state. The gateway route is named after the
// resource unless routeName is set. When spec.models is given, every model
// version the route or the rollout names must be declared there (a version
// the route needs and nothing pushes would leave the route waiting); without
// spec.models the versions are expected to be pushed by other means. A
// variant may go on naming a version the previous spec declared: it is still
// on the gateway (its deletion waits while a route sends it traffic).
// +kubebuilder:validation:XValidation:rule="!has(self.models) || self.route.variants.all(v, self.models.exists(m, m.name == v.model && m.version == v.version) || (oldSelf.hasValue() && has(oldSelf.value().models) && oldSelf.value().models.exists(m, m.name == v.model && m.version == v.version)))",message="every variant's model and version must be declared in spec.models",optionalOldSelf=true
// +kubebuilder:validation:XValidation:rule="!has(self.models) || !has(self.rollout) || self.models.exists(m, m.name == self.rollout.model && m.version == self.rollout.version)",message="the rollout's model and version must be declared in spec.models"
type WeirRouteSpec struct {
	// RouteName is the gateway route's name; defaults to metadata.name.
	// +optional
	RouteName Name `json:"routeName,omitempty"`

	// Models are the model versions this route needs on the gateway.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	Models []ModelArtifact `json:"models,omitempty"`

	// Plugins are the Wasm plugin versions this route needs on the gateway.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	Plugins []PluginArtifact `json:"plugins,omitempty"`

	// Route is the gateway route (PUT /v1/routes/{route}).
	Route RouteSpec `json:"route"`

	// Rollout, when set, runs a canary rollout on the route
	// (POST /v1/routes/{route}/rollout). Changing it starts a new rollout
	// (a running one is aborted first); removing it aborts a running one,
	// sending all traffic back to the stable variant. A promotion stands:
	// the promoted version keeps the traffic (status.promoted) until
	// spec.route.variants is edited.
	// +optional
	Rollout *RolloutSpec `json:"rollout,omitempty"`

	// Scaling is the gateway Deployment's scaling policy. Leave it out, or set
	// it to {} (no target), to leave scaling to something else (HPA, KEDA).
	// +optional
	Scaling *ScalingPolicy `json:"scaling,omitempty"`
}

// ArtifactSource says where the bytes of an artifact come from: exactly one
// of url or configMapRef.
// +kubebuilder:validation:XValidation:rule="has(self.url) != has(self.configMapRef)",message="exactly one of url or configMapRef must be set"
// +kubebuilder:validation:XValidation:rule="!has(self.url) || has(self.sha256)",message="sha256 is required with url"
type ArtifactSource struct {
	// URL is an http(s) address of the artifact.
	// +optional
	// +kubebuilder:validation:Pattern=`^https?://`
	// +kubebuilder:validation:MaxLength=2048
	URL string `json:"url,omitempty"`

	// SHA256 is the hex SHA-256 of the artifact's bytes; required with url,
	// checked when given with configMapRef.
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9a-fA-F]{64}$`
	SHA256 string `json:"sha256,omitempty"`

	// ConfigMapRef names a key of a ConfigMap in the resource's namespace
	// (binaryData or data), for small files.
	// +optional
	ConfigMapRef *ConfigMapKeyRef `json:"configMapRef,omitempty"`
}

// ConfigMapKeyRef is one key of a ConfigMap in the same namespace.
type ConfigMapKeyRef struct {
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// +kubebuilder:validation:MinLength=1
	Key string `json:"key"`
}

// ModelArtifact is one ONNX model version.
type ModelArtifact struct {
	Name    Name           `json:"name"`
	Version Name           `json:"version"`
	Source  ArtifactSource `json:"source"`

	// Features is the model's feature list (?features=a,b,c).
	// +optional
	// +listType=atomic
	Features []string `json:"features,omitempty"`

	// Reference is the training distribution drift is measured against:
	// CSV with a header row, or a JSON array of objects.
	// +optional
	Reference *ReferenceSource `json:"reference,omitempty"`
}

// ReferenceSource is a model's reference data set.
type ReferenceSource struct {
	ArtifactSource `json:",inline"`

	// ContentType of the reference body; defaults to text/csv.
	// +optional
	// +kubebuilder:validation:Enum=text/csv;application/json
	ContentType string `json:"contentType,omitempty"`
}

// PluginArtifact is one Wasm plugin version.
type PluginArtifact struct {
	Name    Name           `json:"name"`
	Version Name           `json:"version"`
	Source  ArtifactSource `json:"source"`
}

// RouteSpec mirrors the gateway's route JSON (docs/api.md, PUT /v1/routes/{route}).
type RouteSpec struct {
	// Plugins enrich the incoming event into features, in order.
	// +optional
	// +listType=atomic
	Plugins []PluginStep `json:"plugins,omitempty"`

	// Postprocess plugins shape the answer, in order.
	// +optional
	// +listType=atomic
	Postprocess []PluginStep `json:"postprocess,omitempty"`

	// Variants split the traffic; weights sum to 100.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:XValidation:rule="self.map(v, v.weight).sum() == 100",message="variant weights must sum to 100"
	Variants []Variant `json:"variants"`

	// Sticky keeps one caller on one variant.
	// +optional
	Sticky *Sticky `json:"sticky,omitempty"`

	// Shadow sends a copy of a share of the traffic to another model version.
	// +optional
	Shadow *Shadow `json:"shadow,omitempty"`

	// Match sends requests with a given header value to a named variant,
	// whatever the weights say (first matching rule wins).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Match []MatchRule `json:"match,omitempty"`

	// Features joins stored online feature sets into the event, keyed by
	// a field of the request body.
	// +optional
	Features *FeatureJoin `json:"features,omitempty"`
}

// MatchRule pins requests whose header has a value to a variant.
type MatchRule struct {
	// +kubebuilder:validation:MinLength=1
	Header  string `json:"header"`
	Value   string `json:"value"`
	Variant Name   `json:"variant"`
}

// FeatureJoin names the feature sets to join and the body field that
// holds their key.
type FeatureJoin struct {
	// +kubebuilder:validation:MinItems=1
	// +listType=atomic
	Sets []Name `json:"sets"`
	// +kubebuilder:validation:MinLength=1
	KeyField string `json:"key_field"`
}

// PluginStep is one plugin in a route's chain.
type PluginStep struct {
	Name Name `json:"name"`
	// Version defaults to the plugin's latest.
	// +optional
	Version Name `json:"version,omitempty"`
	// Config is passed to the plugin as is.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	Config *apiextensionsv1.JSON `json:"config,omitempty"`
	// OnError is what a failure of this plugin does to the request: "fail"
	// (the default), "skip", or {"default": {...}} (carry on with these
	// fields set). The controller refuses any other JSON type, and the
	// gateway validates the rest; either refusal shows in the RouteApplied
	// condition. (No CEL rule can check it: CEL sees no schemaless field.)
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	OnError *apiextensionsv1.JSON `json:"on_error,omitempty"`
	// Timeout overrides the plugin version's deadline on this route.
	// +optional
	Timeout Duration `json:"timeout,omitempty"`
	// MemoryMB overrides the plugin version's memory limit on this route.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4096
	MemoryMB int32 `json:"memory_mb,omitempty"`
}

// Variant is one share of a route's traffic.
type Variant struct {
	Name    Name `json:"name"`
	Model   Name `json:"model"`
	Version Name `json:"version"`
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Weight int32 `json:"weight"`
	// Plugins and Postprocess, when set, replace the route's chains for
	// this variant (so a rollout can canary a plugin version); an empty
	// list means none.
	// +optional
	// +listType=atomic
	Plugins *[]PluginStep `json:"plugins,omitempty"`
	// +optional
	// +listType=atomic
	Postprocess *[]PluginStep `json:"postprocess,omitempty"`
}

// Sticky names where the stickiness key is read: a header or an event field.
// +kubebuilder:validation:XValidation:rule="has(self.header) != has(self.field)",message="exactly one of header or field must be set"
type Sticky struct {
	// +optional
	Header string `json:"header,omitempty"`
	// +optional
	Field string `json:"field,omitempty"`
}

// Shadow mirrors traffic to a model version whose answers are not returned.
type Shadow struct {
	Model   Name `json:"model"`
	Version Name `json:"version"`
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Percent int32 `json:"percent"`
}

// Decimal is a non-negative decimal number written as a string ("0.01"),
// because Kubernetes API conventions keep floats out of resources.
// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?$`
type Decimal string

// RolloutSpec is a canary rollout (docs/api.md, POST /v1/routes/{route}/rollout).
type RolloutSpec struct {
	// Variant is the name of the canary variant; defaults to "canary".
	// +optional
	Variant Name `json:"variant,omitempty"`
	Model   Name `json:"model"`
	Version Name `json:"version"`
	// Steps are the canary weights in percent (1 to 100), strictly rising.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=20
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=100
	// +kubebuilder:validation:XValidation:rule="self.isSorted() && self.all(s, self.indexOf(s) == self.lastIndexOf(s))",message="steps must rise strictly, e.g. [5, 25, 50, 100]"
	// +listType=atomic
	Steps []int32 `json:"steps"`
	// Interval between steps (Go duration, e.g. 30s).
	// +optional
	Interval *Duration `json:"interval,omitempty"`
	// +optional
	MaxErrorRate Decimal `json:"maxErrorRate,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxP99Ms *int32 `json:"maxP99Ms,omitempty"`
	// +optional
	MaxDrift Decimal `json:"maxDrift,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	MinRequests *int32 `json:"minRequests,omitempty"`
}

// ScalingPolicy scales the gateway Deployment on weir's own load metrics, with
// the HorizontalPodAutoscaler's algorithm. Without a target, weir does not scale.
// +kubebuilder:validation:XValidation:rule="!(has(self.targetInFlight) && has(self.targetRequestsPerSecond))",message="set at most one of targetInFlight or targetRequestsPerSecond"
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",message="minReplicas must not exceed maxReplicas"
// +kubebuilder:validation:XValidation:rule="!(has(self.targetInFlight) || has(self.targetRequestsPerSecond)) || has(self.deployment)",message="a scaling target needs deployment, the name of the gateway Deployment it scales"
type ScalingPolicy struct {
	// Deployment names the gateway Deployment this policy scales (the one
	// `weir controller --deployment` scales: weir in the manifests). One
	// WeirRoute per Deployment declares its policy: the oldest wins, the
	// others report ScalingActive=False, reason PolicyConflict.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Deployment string `json:"deployment,omitempty"`
	// MinReplicas defaults to 1.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MinReplicas *int32 `json:"minReplicas,omitempty"`
	// MaxReplicas defaults to 10.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxReplicas *int32 `json:"maxReplicas,omitempty"`
	// TargetInFlight is the wanted average of in-flight requests per replica.
	// +optional
	// +kubebuilder:validation:Minimum=1
	TargetInFlight *int32 `json:"targetInFlight,omitempty"`
	// TargetRequestsPerSecond is the wanted average request rate per replica.
	// +optional
	// +kubebuilder:validation:Minimum=1
	TargetRequestsPerSecond *int32 `json:"targetRequestsPerSecond,omitempty"`
	// ScaleUpStabilization: scale up to the lowest recommendation of this
	// window (default 0s: at once; at most 1h, as the HPA's).
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('1h')",message="scaleUpStabilization must be at most 1h (the HPA's limit)"
	ScaleUpStabilization *Duration `json:"scaleUpStabilization,omitempty"`
	// ScaleDownStabilization: scale down to the highest recommendation of this
	// window (default 5m; at most 1h, as the HPA's).
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('1h')",message="scaleDownStabilization must be at most 1h (the HPA's limit)"
	ScaleDownStabilization *Duration `json:"scaleDownStabilization,omitempty"`
	// Tolerance is the relative distance from the target inside which the
	// replica count is left alone (default 0.1; below 1).
	// +optional
	// +kubebuilder:validation:XValidation:rule="double(self) < 1.0",message="tolerance must be a fraction below 1, e.g. \"0.1\" for 10%"
	Tolerance Decimal `json:"tolerance,omitempty"`
	// ScaleUpRules limit how fast replicas are added, as the HPA's
	// behavior.scaleUp.policies with selectPolicy Max: the rule allowing the
	// most wins. Default: 100% or 4 pods per 15s (the HPA's default).
	// +optional
	// +kubebuilder:validation:MaxItems=8
	// +listType=atomic
	ScaleUpRules []ScaleRule `json:"scaleUpRules,omitempty"`
	// ScaleDownRules limit how fast replicas are removed (selectPolicy Max).
	// Default: 100% per 15s (the HPA's default).
	// +optional
	// +kubebuilder:validation:MaxItems=8
	// +listType=atomic
	ScaleDownRules []ScaleRule `json:"scaleDownRules,omitempty"`
}

// ScaleRule allows a change of at most Value pods, or Value percent of the
// replicas at the start of the period, within any Period.
type ScaleRule struct {
	// +kubebuilder:validation:Enum=Pods;Percent
	Type string `json:"type"`
	// +kubebuilder:validation:Minimum=1
	Value int32 `json:"value"`
	// Period is the sliding window the change is counted over (e.g. 15s,
	// above 0 and at most 30m, the controller's limit).
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('30m')",message="period must be above 0s and at most 30m"
	Period Duration `json:"period"`
}

// WeirRouteStatus is what the controller observed.
type WeirRouteStatus struct {
	// ObservedGeneration is the spec generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Models are the versions of the declared models the gateway reports.
	// +optional
	// +listType=atomic
	Models []LoadedModel `json:"models,omitempty"`

	// Managed are the artifacts this resource pushed ("model/NAME@VERSION",
	// "plugin/NAME@VERSION"); the controller deletes those no longer declared.
	// +optional
	// +listType=set
	Managed []string `json:"managed,omitempty"`

	// AppliedRouteHash is the hash of the route spec last sent to the gateway.
	// +optional
	AppliedRouteHash string `json:"appliedRouteHash,omitempty"`

	// Rollout is the gateway's state of the declared rollout.
	// +optional
	Rollout *RolloutStatus `json:"rollout,omitempty"`

	// Promoted is the last promotion of a declared rollout. While
	// spec.route.variants stays as it was when the rollout promoted, the
	// controller keeps the promoted version on the stable variant instead of
	// sending the stale spec.route again (which would roll production back);
	// editing spec.route.variants ends it.
	// +optional
	Promoted *PromotedStatus `json:"promoted,omitempty"`

	// CurrentReplicas and DesiredReplicas of the gateway Deployment, written
	// by the autoscaler.
	// +optional
	CurrentReplicas int32 `json:"currentReplicas,omitempty"`
	// +optional
	DesiredReplicas int32 `json:"desiredReplicas,omitempty"`

	// Scaling is the autoscaler's memory, kept here so that a new leader
	// (the controller runs in the pods it scales) continues the
	// stabilization windows and rate limits instead of starting afresh.
	// +optional
	Scaling *ScalingHistory `json:"scaling,omitempty"`
}

// ScalingHistory holds recent recommendations and replica changes.
type ScalingHistory struct {
	// Recommendations within the longest stabilization window.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=512
	Recommendations []ReplicaSample `json:"recommendations,omitempty"`
	// Changes made within the longest rate-rule period (Replicas is the
	// signed change).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=512
	Changes []ReplicaSample `json:"changes,omitempty"`
}

// ReplicaSample is a replica count (or change) at a moment.
type ReplicaSample struct {
	At       metav1.MicroTime `json:"at"`
	Replicas int32            `json:"replicas"`
}

// LoadedModel is one model version as the gateway reports it.
type LoadedModel struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	State   string `json:"state,omitempty"`
}

// RolloutStatus is the gateway's rollout state.
type RolloutStatus struct {
	// SpecHash identifies the rollout spec this state belongs to.
	SpecHash string `json:"specHash"`
	// State: progressing, paused, promoted or rolled_back.
	// +optional
	State string `json:"state,omitempty"`
	// +optional
	Weight int32 `json:"weight,omitempty"`
	// +optional
	Reason string `json:"reason,omitempty"`
	// Raw is the gateway's full answer (GET /v1/routes/{route}/rollout).
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	Raw *apiextensionsv1.JSON `json:"raw,omitempty"`
}

// PromotedStatus is a promotion the controller keeps applying.
type PromotedStatus struct {
	Model   string `json:"model"`
	Version string `json:"version"`
	// StableVariant took the promoted version; CanaryVariant was dropped.
	StableVariant string `json:"stableVariant"`
	CanaryVariant string `json:"canaryVariant"`
	// VariantsHash identifies spec.route.variants as they were at promotion.
	VariantsHash string `json:"variantsHash"`
}

// GatewayRouteName is the gateway route this resource manages.
func (r *WeirRoute) GatewayRouteName() string {
	if r.Spec.RouteName != "" {
		return string(r.Spec.RouteName)
	}
	return r.Name
}
