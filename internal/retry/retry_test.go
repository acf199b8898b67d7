package retry

import (
	"testing"
	"time"
)

func TestJitterSpreadsAroundThePace(t *testing.T) {
	d := 500 * time.Millisecond
	seen := map[time.Duration]bool{}
	for range 1000 {
		w := Jitter(d)
		if w < d/2 || w >= 3*d/2 {
			t.Fatalf("Jitter(%v) = %v, want in [%v, %v)", d, w, d/2, 3*d/2)
		}
		seen[w] = true
	}
	if len(seen) < 100 {
		t.Errorf("Jitter(%v) gave %d distinct waits in 1000 draws: not spread", d, len(seen))
	}
	if Jitter(0) != 0 {
		t.Error("Jitter(0) is not 0")
	}
}

func TestBackoffDoublesUpToMax(t *testing.T) {
	b := Backoff{Base: 100 * time.Millisecond, Max: time.Second}
	for _, pace := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		pace *= time.Millisecond
		if w := b.Next(); w < pace/2 || w >= 3*pace/2 {
			t.Fatalf("Next() = %v, want about %v", w, pace)
		}
	}
}
