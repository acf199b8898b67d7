package drift

import (
	"testing"
	"time"
)

func TestWindowBoundsByCountAndAge(t *testing.T) {
	// Reference 0..9: fine bin of value v is 2v+1, coarse bin v.
	ref := numericRef([]float64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	w := newWindow(4, time.Second, ref)
	ms := int64(time.Millisecond)
	add := func(v float64, ts int64) { w.add(ref.binOf(v), ts) }
	for i := range 6 { // values 0..5, 1ms apart
		add(float64(i), int64(i)*ms)
	}
	if w.n != 4 {
		t.Fatalf("n = %d, want 4 (count bound)", w.n)
	}
	wantCounts := func(what string, want map[int]float64) {
		t.Helper()
		for b, c := range w.counts {
			if c != want[b] {
				t.Errorf("%s: counts = %v, want %v", what, w.counts, want)
				return
			}
		}
		var fine float64
		for _, c := range w.fine {
			fine += c
		}
		if fine != float64(w.n) {
			t.Errorf("%s: fine counts sum to %v, want %d", what, fine, w.n)
		}
	}
	wantCounts("count bound", map[int]float64{2: 1, 3: 1, 4: 1, 5: 1})
	from, to := w.span()
	if from.UnixNano() != 2*ms || to.UnixNano() != 5*ms {
		t.Errorf("span = %v..%v, want 2ms..5ms", from, to)
	}
	// A value 1.0035s later evicts everything older than 1s before it.
	add(9, 1003*ms+500*int64(time.Microsecond))
	wantCounts("age bound", map[int]float64{4: 1, 5: 1, 9: 1})
	w = w.resized(2, time.Minute)
	wantCounts("resized", map[int]float64{5: 1, 9: 1})
}

// The window follows event time: values older than the age before the
// newest one seen are not counted, whatever order they arrive in.
func TestWindowIgnoresValuesOlderThanItsAge(t *testing.T) {
	ref := numericRef([]float64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	w := newWindow(8, time.Second, ref)
	s := int64(time.Second)
	for i := range 3 {
		if !w.add(ref.binOf(9), 10*s+int64(i)) {
			t.Fatalf("a new value was not counted")
		}
	}
	if w.add(ref.binOf(0), 8*s) {
		t.Errorf("a value 2s older than the newest was counted in a 1s window")
	}
	if !w.add(ref.binOf(1), 9*s+s/2) {
		t.Errorf("a late value within the window's age was not counted")
	}
	if w.n != 4 || w.counts[9] != 3 || w.counts[1] != 1 || w.counts[0] != 0 {
		t.Errorf("n = %d, counts = %v, want three 9s and one 1", w.n, w.counts)
	}
}
