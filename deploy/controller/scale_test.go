package controller

import (
	"testing"
	"time"
)

func ready(values ...float64) []PodMetric {
	out := make([]PodMetric, len(values))
	for i, v := range values {
		out[i] = PodMetric{Value: v, Ready: true}
	}
	return out
}

// TestRecommendHPAExamples checks the replica calculator against the
// HorizontalPodAutoscaler documentation ("Algorithm details",
// kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale) and the
// cases of its replica_calculator_test.go that the documentation describes.
func TestRecommendHPAExamples(t *testing.T) {
	notReady := PodMetric{Ready: false}
	missing := PodMetric{Ready: true, Missing: true}
	tests := []struct {
		name    string
		current int32
		pods    []PodMetric
		target  float64
		want    int32
	}{
		// "if the current metric value is 200m, and the desired value is
		// 100m, the number of replicas will be doubled"
		{"doc: 200m of 100m doubles", 3, ready(200, 200, 200), 100, 6},
		// "If the current value is instead 50m, you'll halve the number of replicas"
		{"doc: 50m of 100m halves", 4, ready(50, 50, 50, 50), 100, 2},
		// "If the ratio is sufficiently close to 1.0 (within a globally-
		// configurable tolerance, 0.1 by default), the control plane skips
		// any scaling action"
		{"doc: within tolerance", 4, ready(105, 95, 110, 100), 100, 4},
		// The average is over the pods that reported: ceil(ratio × reporting pods).
		{"ceil rounds up", 3, ready(120, 120, 120), 100, 4},
		// "If there were any missing metrics, the control plane recomputes
		// the average more conservatively, assuming those pods were
		// consuming 100% of the desired value in case of a scale down, and
		// 0% in case of a scale up."
		{"doc: missing pod counts 0 on scale-up", 4, append(ready(150, 150, 150), missing), 100, 5},
		{"doc: missing pod counts 100% on scale-down", 4, append(ready(50, 50, 50), missing), 100, 3},
		// "if any not-yet-ready pods were present, and the workload would
		// have scaled up without factoring in missing metrics or
		// not-yet-ready pods, the controller conservatively assumes that the
		// not-yet-ready pods are consuming 0% of the desired metric" — the
		// bug of weir's old math: pending pods drove it to max.
		{"doc: not-ready pods count 0 on scale-up", 4, append(ready(200, 200), notReady, notReady), 100, 4},
		{"not-ready pods dampen a scale-up", 4, append(ready(300, 300), notReady, notReady), 100, 6},
		// Not-ready pods do not count on a scale-down.
		{"not-ready pods ignored on scale-down", 4, append(ready(20, 20), notReady, notReady), 100, 1},
		// "If the new ratio reverses the scale direction, or is within the
		// tolerance, the controller doesn't take any scaling action."
		{"doc: reversal by missing metrics skips", 3, append(ready(105+10), missing, missing, missing, missing), 100, 3},
		{"doc: within tolerance after recompute skips", 11, append(ready(111, 111, 111, 111, 111, 111, 111, 111, 111, 111), missing), 100, 11},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _, ok := Recommend(tc.current, tc.pods, tc.target, 0.1)
			if !ok || got != tc.want {
				t.Errorf("Recommend(current=%d, %+v, target %v) = %d (ok %v), want %d", tc.current, tc.pods, tc.target, got, ok, tc.want)
			}
		})
	}
	if _, _, ok := Recommend(3, []PodMetric{notReady, missing}, 100, 0.1); ok {
		t.Error("Recommend decided with no ready pod reporting")
	}
}

// TestDesiredHPABehaviorExamples follows the "Configurable scaling
// behavior" section of the HPA documentation.
func TestDesiredHPABehaviorExamples(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	// "For instance if there are 80 replicas and the target has to be
	// scaled down to 10 replicas then during the first step 8 replicas will
	// be reduced. In the next iteration when the number of replicas is 72,
	// 10% of the pods is 7.2 but the number is rounded up to 8." (policies:
	// 4 Pods per 60s and 10 Percent per 60s, the most change wins.)
	p := ScalePolicy{Min: 1, Max: 100, Tolerance: 0.1,
		DownRules: []ScaleRule{{Value: 4, Period: time.Minute}, {Percent: true, Value: 10, Period: time.Minute}}}
	var h History
	current := int32(80)
	now := t0
	var steps []int32
	for range 12 {
		current, h = Desired(current, 10, p, h, now)
		steps = append(steps, current)
		now = now.Add(61 * time.Second)
	}
	want := []int32{72, 64, 57, 51, 45, 40, 36, 32, 28, 24, 20, 16}
	for i := range want {
		if steps[i] != want[i] {
			t.Fatalf("scale-down by the larger of 4 pods and 10%% per minute from 80: %v, want %v", steps, want)
		}
	}
	// Within one period the changes already made count: no second step.
	if got, _ := Desired(72, 10, p, History{Changes: []Recommendation{{At: t0, Replicas: -8}}}, t0.Add(30*time.Second)); got != 72 {
		t.Fatalf("second scale-down inside the period: %d, want 72 (the 8 removed 30s ago use up the minute)", got)
	}

	// The default scale-up: "the higher of 100% and 4 pods per 15s".
	def := ScalePolicy{Min: 1, Max: 100, Tolerance: 0.1}
	if got, _ := Desired(2, 50, def, History{}, t0); got != 6 {
		t.Fatalf("default scale-up from 2 toward 50 = %d, want 6 (+4 pods beats +100%%)", got)
	}
	if got, _ := Desired(10, 50, def, History{}, t0); got != 20 {
		t.Fatalf("default scale-up from 10 toward 50 = %d, want 20 (+100%% beats +4 pods)", got)
	}
	// The default scale-down: 100% per 15s, after a 300s window.
	def.DownWindow = 300 * time.Second
	hist := History{Recommendations: []Recommendation{{At: t0, Replicas: 10}}}
	if got, _ := Desired(10, 1, def, hist, t0.Add(299*time.Second)); got != 10 {
		t.Fatalf("scale-down inside the 300s window = %d, want 10", got)
	}
	if got, _ := Desired(10, 1, def, hist, t0.Add(300*time.Second)); got != 1 {
		t.Fatalf("scale-down after the 300s window = %d, want 1", got)
	}
	// An empty (non-nil) rule list sets no rate limit.
	noLimit := ScalePolicy{Min: 1, Max: 100, UpRules: []ScaleRule{}}
	if got, _ := Desired(2, 90, noLimit, History{}, t0); got != 90 {
		t.Fatalf("scale-up without rules = %d, want 90", got)
	}
}

func TestDesired(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	base := ScalePolicy{Min: 1, Max: 10, Target: 10, Tolerance: 0.1, UpWindow: 0, DownWindow: 60 * time.Second}
	up30 := ScalePolicy{Min: 1, Max: 10, Target: 10, Tolerance: 0.1, UpWindow: 30 * time.Second, DownWindow: 60 * time.Second}

	tests := []struct {
		name    string
		current int32
		raw     int32
		policy  ScalePolicy
		history []Recommendation
		now     int
		want    int32
	}{
		{name: "unchanged", current: 3, raw: 3, policy: base, want: 3},
		{name: "capped at max", current: 4, raw: 40, policy: ScalePolicy{Min: 1, Max: 10, UpRules: []ScaleRule{}}, want: 10},
		{name: "no history scales down at once", current: 4, raw: 2, policy: base, want: 2},
		{name: "floored at min", current: 2, raw: 0, policy: base, want: 1},
		{name: "below min is raised", current: 1, raw: 1, policy: ScalePolicy{Min: 3, Max: 10}, want: 3},
		{name: "above max is lowered", current: 12, raw: 12, policy: base, want: 10},
		{name: "scale down held by window max", current: 6, raw: 3, policy: base, history: []Recommendation{{At: at(0), Replicas: 6}}, now: 30, want: 6},
		{name: "scale down after window", current: 6, raw: 3, policy: base, history: []Recommendation{{At: at(0), Replicas: 6}}, now: 61, want: 3},
		{name: "scale down to highest in window", current: 6, raw: 3, policy: base,
			history: []Recommendation{{At: at(0), Replicas: 6}, {At: at(40), Replicas: 4}}, now: 70, want: 4},
		{name: "scale up held by up window min", current: 2, raw: 6, policy: up30,
			history: []Recommendation{{At: at(0), Replicas: 2}, {At: at(20), Replicas: 4}}, now: 25, want: 2},
		{name: "scale up to lowest in up window", current: 2, raw: 6, policy: up30,
			history: []Recommendation{{At: at(0), Replicas: 2}, {At: at(20), Replicas: 4}}, now: 40, want: 4},
		{name: "zero replicas left alone", current: 0, raw: 5, policy: base, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, hist := Desired(tc.current, tc.raw, tc.policy, History{Recommendations: tc.history}, at(tc.now))
			if got != tc.want {
				t.Errorf("Desired(current=%d, raw=%d) = %d, want %d", tc.current, tc.raw, got, tc.want)
			}
			if n := len(hist.Recommendations); tc.current != 0 && (n == 0 || !hist.Recommendations[n-1].At.Equal(at(tc.now))) {
				t.Errorf("history does not end with this recommendation: %v", hist)
			}
		})
	}
}

// Noisy load oscillating around the target by more than the tolerance must
// not make the replica count go down and up again: scale-down waits for the
// window's highest recommendation.
func TestDesiredNoisyLoadDoesNotFlap(t *testing.T) {
	p := ScalePolicy{Min: 1, Max: 20, Target: 10, Tolerance: 0.1, DownWindow: 5 * time.Minute}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	current := int32(4)
	var hist History
	changes := 0
	for i := range 60 {
		total := 52.0 // the whole gateway's load swings 30% around 4 replicas' worth
		if i%2 == 1 {
			total = 28.0
		}
		pods := make([]PodMetric, current)
		for j := range pods {
			pods[j] = PodMetric{Value: total / float64(current), Ready: true}
		}
		raw, _, _ := Recommend(current, pods, p.Target, p.Tolerance)
		next, h := Desired(current, raw, p, hist, now)
		hist = h
		if next != current {
			changes++
		}
		current = next
		now = now.Add(15 * time.Second)
	}
	if changes > 1 {
		t.Fatalf("replicas changed %d times under noisy load, want at most 1 (the first scale-up)", changes)
	}
}

func TestDesiredHistoryIsPruned(t *testing.T) {
	p := ScalePolicy{Min: 1, Max: 10, Target: 10, Tolerance: 0.1, DownWindow: time.Minute}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var hist History
	current := int32(3)
	for i := range 100 {
		current, hist = Desired(current, int32(3+i%2), p, hist, now)
		now = now.Add(10 * time.Second)
	}
	if len(hist.Recommendations) > 7 || len(hist.Changes) > 2 {
		t.Fatalf("history kept %d recommendations and %d changes for a 1m window and 15s rules at 10s steps",
			len(hist.Recommendations), len(hist.Changes))
	}
}

func BenchmarkDesired(b *testing.B) {
	p := ScalePolicy{Min: 1, Max: 50, Target: 10, Tolerance: 0.1, DownWindow: 5 * time.Minute}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var hist History
	for range 20 {
		_, hist = Desired(5, 6, p, hist, now)
		now = now.Add(15 * time.Second)
	}
	b.ReportAllocs()
	for b.Loop() {
		Desired(5, 6, p, hist, now)
	}
}
