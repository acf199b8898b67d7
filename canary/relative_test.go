package canary

import (
	"context"
	"strings"
	"testing"
	"time"
)

// Drift the stable version sees as much as the canary (a shift in the
// inputs) is not held against the canary by default; absolute mode judges
// the canary's own drift, and a canary that drifts more than the stable
// version is rolled back in either mode.
func TestDriftJudgedRelativeToStable(t *testing.T) {
	cases := []struct {
		name           string
		mode           string
		stable, canary float64
		want           State
		reason         string
	}{
		{"shared input drift passes", "", 0.35, 0.4, Promoted, ""},
		{"absolute mode rolls back", DriftAbsolute, 0.35, 0.4, RolledBack, "drift 0.4 over max_drift 0.25 at 10%"},
		{"canary worse than stable", DriftRelative, 0.1, 0.5, RolledBack, "drift 0.4 over max_drift 0.25 at 10% (relative to stable: canary 0.5, stable at most 0.1)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			c := e.controller(t, "a")
			e.metrics.set("canary", VariantMetrics{Requests: 200, P99: time.Millisecond})
			e.metrics.set("stable", VariantMetrics{Requests: 1800, P99: time.Millisecond})
			e.metrics.drift["fraud@1"] = tc.stable
			e.metrics.drift["fraud@2"] = tc.canary
			s := spec(50*time.Millisecond, 10, 100)
			s.DriftMode = tc.mode
			if _, err := c.Start(context.Background(), "fraud", s); err != nil {
				t.Fatal(err)
			}
			st := waitState(t, c, tc.want)
			if tc.want == RolledBack && st.Reason != tc.reason {
				t.Errorf("reason %q, want %q", st.Reason, tc.reason)
			}
			if st.CanaryDrift == nil || *st.CanaryDrift != tc.canary {
				t.Errorf("canary_drift %v, want %v", st.CanaryDrift, tc.canary)
			}
			if tc.mode != DriftAbsolute && (st.StableDrift == nil || *st.StableDrift != tc.stable) {
				t.Errorf("stable_drift %v, want %v", st.StableDrift, tc.stable)
			}
		})
	}
	if _, err := ParseSpec([]byte(`{"model":"fraud","drift_mode":"sideways"}`)); err == nil || !strings.Contains(err.Error(), "drift_mode") {
		t.Errorf("drift_mode sideways: %v, want an error naming drift_mode", err)
	}
}
