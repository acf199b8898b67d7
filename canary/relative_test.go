package canary

import (
	"context"
	"strings"
	"testing"
	"time"
)

// The drift monitor's figures, relative to the stable version's, are shown
// and not judged by default (their windows cover different periods for the
// two variants: the answers gate judges the canary against the stable over
// one period); absolute mode judges the canary's own drift.
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
		{"canary worse than stable: shown", DriftRelative, 0.1, 0.5, Promoted, ""},
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

// max_drift is a number or "off"; anything else is refused naming it.
func TestMaxDriftOff(t *testing.T) {
	s, err := ParseSpec([]byte(`{"model":"fraud","max_drift":"off"}`))
	if err != nil || s.MaxDrift == nil || !s.MaxDrift.Off {
		t.Fatalf("max_drift off: %+v, %v", s.MaxDrift, err)
	}
	if _, on := s.answerLimit(); on {
		t.Error(`max_drift "off" leaves the answers gate on`)
	}
	if limit, on := (Spec{}).answerLimit(); !on || limit != DefaultMaxDrift {
		t.Errorf("no max_drift: limit %v on %v, want %v on", limit, on, DefaultMaxDrift)
	}
	for _, bad := range []string{`"none"`, `-1`, `true`} {
		if _, err := ParseSpec([]byte(`{"model":"fraud","max_drift":` + bad + `}`)); err == nil || !strings.Contains(err.Error(), "max_drift") {
			t.Errorf("max_drift %s: %v, want an error naming max_drift", bad, err)
		}
	}
}
