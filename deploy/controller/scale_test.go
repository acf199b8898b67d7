package controller

import (
	"testing"
	"time"
)

func TestDesired(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	base := ScalePolicy{Min: 1, Max: 10, Target: 10, Tolerance: 0.1, UpWindow: 0, DownWindow: 60 * time.Second}

	tests := []struct {
		name     string
		current  int32
		observed float64
		policy   ScalePolicy
		history  []Recommendation
		now      int
		want     int32
	}{
		{name: "at target", current: 3, observed: 10, policy: base, want: 3},
		{name: "inside tolerance above", current: 3, observed: 10.9, policy: base, want: 3},
		{name: "inside tolerance below", current: 3, observed: 9.1, policy: base, want: 3},
		{name: "double load doubles", current: 3, observed: 20, policy: base, want: 6},
		{name: "ceil rounds up", current: 3, observed: 12, policy: base, want: 4},
		{name: "capped at max", current: 4, observed: 100, policy: base, want: 10},
		{name: "no history scales down at once", current: 4, observed: 5, policy: base, want: 2},
		{name: "floored at min", current: 2, observed: 0, policy: base, want: 1},
		{name: "below min is raised", current: 1, observed: 10, policy: ScalePolicy{Min: 3, Max: 10, Target: 10, Tolerance: 0.1}, want: 3},
		{name: "above max is lowered", current: 12, observed: 10, policy: base, want: 10},
		{
			name: "scale down held by window max", current: 6, observed: 5, policy: base,
			history: []Recommendation{{At: at(0), Replicas: 6}}, now: 30, want: 6,
		},
		{
			name: "scale down after window", current: 6, observed: 5, policy: base,
			history: []Recommendation{{At: at(0), Replicas: 6}}, now: 61, want: 3,
		},
		{
			name: "scale down to highest in window", current: 6, observed: 5, policy: base,
			history: []Recommendation{{At: at(0), Replicas: 6}, {At: at(40), Replicas: 4}}, now: 70, want: 4,
		},
		{
			name: "scale up held by up window min", current: 2, observed: 30,
			policy:  ScalePolicy{Min: 1, Max: 10, Target: 10, Tolerance: 0.1, UpWindow: 30 * time.Second, DownWindow: 60 * time.Second},
			history: []Recommendation{{At: at(0), Replicas: 2}, {At: at(20), Replicas: 4}}, now: 25, want: 2,
		},
		{
			name: "scale up to lowest in up window", current: 2, observed: 30,
			policy:  ScalePolicy{Min: 1, Max: 10, Target: 10, Tolerance: 0.1, UpWindow: 30 * time.Second, DownWindow: 60 * time.Second},
			history: []Recommendation{{At: at(0), Replicas: 2}, {At: at(20), Replicas: 4}}, now: 40, want: 4,
		},
		{name: "zero replicas left alone", current: 0, observed: 50, policy: base, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, hist := Desired(tc.current, tc.observed, tc.policy, tc.history, at(tc.now))
			if got != tc.want {
				t.Errorf("Desired(current=%d, observed=%v) = %d, want %d", tc.current, tc.observed, got, tc.want)
			}
			if n := len(hist); n == 0 || !hist[n-1].At.Equal(at(tc.now)) {
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
	var hist []Recommendation
	changes := 0
	for i := range 60 {
		total := 52.0 // the whole gateway's load swings 30% around 4 replicas' worth
		if i%2 == 1 {
			total = 28.0
		}
		next, h := Desired(current, total/float64(current), p, hist, now)
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
	var hist []Recommendation
	for range 100 {
		_, hist = Desired(3, 10, p, hist, now)
		now = now.Add(10 * time.Second)
	}
	if len(hist) > 8 {
		t.Fatalf("history kept %d recommendations for a 1m window at 10s steps", len(hist))
	}
}

func BenchmarkDesired(b *testing.B) {
	p := ScalePolicy{Min: 1, Max: 50, Target: 10, Tolerance: 0.1, DownWindow: 5 * time.Minute}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var hist []Recommendation
	for range 20 {
		_, hist = Desired(5, 12, p, hist, now)
		now = now.Add(15 * time.Second)
	}
	b.ReportAllocs()
	for b.Loop() {
		Desired(5, 12, p, hist, now)
	}
}
