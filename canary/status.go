package canary

import (
	"context"
	"time"

	"github.com/weirhq/weir/router"
)

// State of a rollout.
type State string

const (
	Progressing State = "progressing"
	Paused      State = "paused"
	Promoted    State = "promoted"
	RolledBack  State = "rolled_back"
)

func (s State) active() bool { return s == Progressing || s == Paused }

// Status is a rollout's persisted state, as GET /v1/routes/{route}/rollout
// returns it.
type Status struct {
	Route string `json:"route"`
	Spec  Spec   `json:"spec"`
	State State  `json:"state"`
	// Stable is the variant traffic returns to (the route's first variant
	// other than the canary when the rollout started).
	Stable string `json:"stable_variant"`
	Step   int    `json:"step"`   // index into Spec.Steps
	Weight int    `json:"weight"` // the canary's current weight
	// Variants are the stable and canary figures over the current step's
	// window [StepStartedAt, last analysis].
	Variants map[string]VariantStats `json:"variants"`
	Drift    *float64                `json:"drift,omitempty"` // the value judged against max_drift; nil when unknown
	// CanaryDrift is the canary's own largest drift; StableDrift the stable
	// version's largest over the features compared, and DriftFeature the
	// feature where the canary exceeds the stable version most (relative
	// mode, when the stable version's drift is known).
	CanaryDrift  *float64 `json:"canary_drift,omitempty"`
	StableDrift  *float64 `json:"stable_drift,omitempty"`
	DriftFeature string   `json:"drift_feature,omitempty"`
	// Gates are the checks of the last analysis that judged the canary:
	// each with its limit and value, or, when it could not be judged, why
	// (Value nil).
	Gates []Gate `json:"gates,omitempty"`
	// Decision is the last decision: start, wait, advance, promote,
	// rollback, pause, resume, abort, error.
	Decision string `json:"decision"`
	Reason   string `json:"reason"`
	Waiting  bool   `json:"waiting"` // too few canary requests to judge yet

	StartedAt     time.Time  `json:"started_at"`
	StepStartedAt time.Time  `json:"step_started_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	AnalyzedAt    *time.Time `json:"analyzed_at,omitempty"`
	FinishedAt    *time.Time `json:"finished_at,omitempty"`

	// Generation counts transitions; AppliedGeneration is the last one
	// whose weights were written to the route. They differ while a route
	// change is pending (the lease holder retries it).
	Generation        int  `json:"generation"`
	AppliedGeneration int  `json:"applied_generation"`
	RouteApplied      bool `json:"route_applied"`

	History []Transition `json:"history"`
}

// VariantStats are one variant's figures over an analysis window. Errors
// are failures of the gateway's side (model, plugin, timeout: 5xx);
// ClientErrors the callers' own mistakes (4xx), shown but not judged: a
// client must not be able to roll a canary back by sending it bad
// requests. ErrorRate is Errors over the requests that were not client
// errors, and min_requests counts those.
type VariantStats struct {
	Requests     int64   `json:"requests"`
	Errors       int64   `json:"errors"`
	ClientErrors int64   `json:"client_errors"`
	ErrorRate    float64 `json:"error_rate"`
	P99Ms        float64 `json:"p99_ms"`
}

// Gate is one check of an analysis: error_rate (max_error_rate), p99_ms
// (max_p99_ms), answers (max_drift: the canary's answers against the
// stable's over the step's window, the largest PSI of a numeric output)
// or drift (max_drift given: the drift monitor's figure, Status.Drift).
type Gate struct {
	Gate   string   `json:"gate"`
	Limit  float64  `json:"limit"`
	Value  *float64 `json:"value,omitempty"` // nil: not judged (Note says why)
	Passed bool     `json:"passed"`
	Note   string   `json:"note,omitempty"`
}

// Transition is one change of a rollout, as published on
// weir.rollouts.<route> and kept in Status.History.
type Transition struct {
	Route  string    `json:"route"`
	From   State     `json:"from"` // "" for the first start of a route
	To     State     `json:"to"`
	Step   int       `json:"step"`
	Weight int       `json:"weight"` // the canary's weight after the transition
	Reason string    `json:"reason"`
	TS     time.Time `json:"ts"`
	By     string    `json:"by"` // the replica (Options.Owner) that made it
}

// maxHistory bounds Status.History (oldest dropped first).
const maxHistory = 100

// Routes is what the controller needs of the route store; *router.Store
// satisfies it.
type Routes interface {
	Get(name string) (*router.Route, bool)
	Update(ctx context.Context, name string, fn func(router.Config) (router.Config, error)) error
}

// VariantMetrics are a variant's figures over a time window: Requests
// includes ClientErrors (answers of 4xx, the callers' own mistakes);
// Errors are the gateway side's failures; P99 leaves client errors out.
type VariantMetrics struct {
	Requests, Errors, ClientErrors int64
	P99                            time.Duration
}

// served is the number of requests the variant answered or failed itself.
func (m VariantMetrics) served() int64 { return m.Requests - m.ClientErrors }

// Metrics gives a variant's request count, errors and p99 latency over
// [from, to]; the gateway adapts the monitor's per-variant stats to it.
type Metrics interface {
	VariantMetrics(route, variant string, from, to time.Time) (VariantMetrics, error)
}

// AnswerShift is how far a variant's values of one numeric output lie from
// another variant's over the same range: the PSI, and both counts.
type AnswerShift struct {
	PSI              float64
	Count, BaseCount int64
}

// AnswerComparer is optionally implemented by a Metrics (the gateway's
// adapter over the live stats is): per numeric output, the shift of
// variant's answers against base's, both over [from, to]. Without it the
// answers gate is not judged.
type AnswerComparer interface {
	AnswerShifts(route, variant, base string, from, to time.Time) map[string]AnswerShift
}

// Drift gives the largest drift score of a model version's features; ok is
// false when unknown (no reference or too few events), which is not judged.
type Drift interface {
	MaxDrift(model, version string) (score float64, ok bool)
}

// FeatureDrifter is optionally implemented by a Drift (the drift monitor
// does): per-feature values, to judge the canary relative to the stable
// version feature by feature, and output references shared from the stable
// version, so that a canary whose answers differ from the stable's shows
// output drift (each version's own output reference is inferred from its
// own first answers, against which a consistently different model looks
// stable).
//
// FeatureDrifts keys are "input:<name>" and "output:<name>"; a key starting
// with VsStablePrefix is a canary output measured against the stable
// version's answers, judged as it is.
type FeatureDrifter interface {
	FeatureDrifts(model, version string) (map[string]float64, bool)
	ShareOutputReferences(stableModel, stableVersion, canaryModel, canaryVersion string) bool
}

// VsStablePrefix is drift.VsStablePrefix (canary must not import the
// drift monitor).
const VsStablePrefix = "vs_stable:"

func stats(m VariantMetrics) VariantStats {
	s := VariantStats{Requests: m.Requests, Errors: m.Errors, ClientErrors: m.ClientErrors, P99Ms: float64(m.P99) / float64(time.Millisecond)}
	if n := m.served(); n > 0 {
		s.ErrorRate = float64(m.Errors) / float64(n)
	}
	return s
}
