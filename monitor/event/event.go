// Package event is weir's event contract, and nothing else: the shape of
// the event every inference publishes and the NATS stream and subject names
// fixed by the external contract (docs/api.md). It is a leaf: it imports
// only the standard library, so a package that needs a subject name (the
// rollout controller) or the event type (drift) does not pull in the
// monitor's publisher, stats or Parquet archive.
package event

import "time"

// Subject and stream names fixed by the external contract (docs/api.md).
const (
	StreamEvents         = "WEIR_EVENTS"
	SubjectEventsPrefix  = "weir.events."       // + route
	SubjectDriftPrefix   = "weir.alerts.drift." // + model
	SubjectRolloutPrefix = "weir.rollouts."     // + route
)

// Event is one inference, as published on weir.events.<route>. The JSON shape
// is part of the external contract: add fields, never rename them.
type Event struct {
	ID      string    `json:"id"`
	TS      time.Time `json:"ts"`
	Route   string    `json:"route"`
	Variant string    `json:"variant"`
	Model   string    `json:"model"`
	Version string    `json:"version"`
	// Features are the model's named inputs (after plugin enrichment); for an
	// OIP call on a model without a feature list, each one-value input by
	// name, and each input wider than WideElements as {"summary":
	// TensorSummary}.
	Features map[string]any `json:"features"`
	// Outputs are the model's outputs by name (scalars for a batch of one);
	// one wider than WideElements as {"summary": TensorSummary}.
	Outputs   map[string]any `json:"outputs"`
	LatencyUS int64          `json:"latency_us"`
	// Status is the HTTP status the caller got (200 on success).
	Status int    `json:"status"`
	Error  string `json:"error,omitempty"`
	// Shadow marks a mirrored request whose answer nobody saw.
	Shadow bool `json:"shadow,omitempty"`
	// Pinned marks an OIP call that named its version or variant
	// (/v2/models/{m}/versions/{v}/infer): it bypassed the route's split,
	// so it is counted apart from the split's variants. Variant is the one
	// {v} named, or empty for a model version.
	Pinned bool `json:"pinned,omitempty"`
	// Truncated marks an event cut to the publisher's size cap: rows of
	// its features and outputs (or all of them) were left out.
	Truncated bool `json:"truncated,omitempty"`
}

// OK reports whether the inference succeeded.
func (e *Event) OK() bool { return e.Status >= 200 && e.Status < 300 }

// ClientError reports whether an answer's status is the caller's own
// mistake (a 4xx: bad JSON, bad shape, missing feature, body too large)
// rather than a failure of the gateway's side (a model, plugin or timeout:
// 5xx). 429 is the gateway's: a full queue or plugin pool. Live stats and
// canary analysis count client errors apart from errors, so that callers
// cannot make a variant look broken (or roll back a canary) by sending it
// bad requests.
func ClientError(status int) bool {
	return status >= 400 && status < 500 && status != 429
}
