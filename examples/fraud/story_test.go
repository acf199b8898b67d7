package fraud_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/weirhq/weir/examples/fraud"
	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/testgw"
)

// TestStory plays `make demo` on a short time scale and asserts its
// outcomes: fraud@2 promotes itself, shifted amounts raise a drift alert,
// and fraud@3, miscalibrated and rolled out into the drift, rolls itself
// back on its answers, not on the input drift the stable version sees too.
func TestStory(t *testing.T) {
	g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) { o.CanaryTick = 20 * time.Millisecond }))
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	rep, err := fraud.RunStory(ctx, g.Client, fraud.StoryOptions{
		PluginDir: testgw.PluginDir(t),
		History:   10000,
		Rate:      150,
		Interval:  time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + rep.String())
	if rep.Canary != "promoted" {
		t.Errorf("fraud@2 canary: %s, want promoted", rep.Canary)
	}
	if rep.DriftFeature != "amount_log" && rep.DriftFeature != "amount_zscore" {
		t.Errorf("drift alert on %q, want an amount feature", rep.DriftFeature)
	}
	// fraud@3 is miscalibrated: judged against the stable version's
	// answers over the same period, it is its answers (output score), not
	// the input drift both versions see, that roll it back.
	if rep.SecondCanary != "rolled_back" || !strings.Contains(rep.SecondReason, "answers differ from the stable's") || !strings.Contains(rep.SecondReason, "on output score") {
		t.Errorf("fraud@3 canary: %s (%s), want rolled back on its output drift relative to stable", rep.SecondCanary, rep.SecondReason)
	}
	if rep.Fraud == 0 || float64(rep.FraudFlagged) < 0.5*float64(rep.Fraud) {
		t.Errorf("%d of %d fraudulent transactions flagged", rep.FraudFlagged, rep.Fraud)
	}
	if rep.Requests == 0 || float64(rep.Errors) > 0.01*float64(rep.Requests) {
		t.Errorf("%d of %d requests failed (first: %s)", rep.Errors, rep.Requests, rep.FirstError)
	}
}
