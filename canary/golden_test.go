package canary

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/golden"
)

// The rollout status (GET /v1/routes/{route}/rollout) and transition
// (weir.rollouts.<route>) JSON shapes are part of the contract.
func TestStatusJSONGolden(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
	t1 := t0.Add(30 * time.Second)
	s := spec(30*time.Second, 5, 25, 50, 100)
	st := &Status{
		Route: "fraud", Spec: s, State: Progressing, Stable: "stable", Step: 1, Weight: 25,
		Variants: map[string]VariantStats{
			"canary": stats(VariantMetrics{Requests: 12, P99: 9 * time.Millisecond}),
			"stable": stats(VariantMetrics{Requests: 300, Errors: 3, P99: 11 * time.Millisecond}),
		},
		Drift: f(0.05),
		Gates: []Gate{
			{Gate: "error_rate", Limit: 0.01, Value: f(0), Passed: true},
			{Gate: "answers", Limit: DefaultMaxDrift, Note: "not judged yet: fewer than 100 numeric answers of each variant in this step"},
		},
		Decision: "wait", Reason: "waiting: 12 of 100 requests", Waiting: true,
		StartedAt: t0, StepStartedAt: t1, UpdatedAt: t1.Add(time.Second), AnalyzedAt: &t1,
		Generation: 2, AppliedGeneration: 2,
		History: []Transition{
			{Route: "fraud", From: "", To: Progressing, Step: 0, Weight: 5, Reason: `rollout started: fraud@2 as variant "canary" at 5%`, TS: t0, By: "gw-1"},
			{Route: "fraud", From: Progressing, To: Progressing, Step: 1, Weight: 25, Reason: "analysis passed at 5%: 150 requests, error rate 0, p99 9ms; moving to 25%", TS: t1, By: "gw-1"},
		},
	}
	out, err := json.MarshalIndent(finish(st), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "status.golden.json", append(out, '\n'))
}
