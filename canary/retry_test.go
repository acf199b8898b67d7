package canary

import (
	"errors"
	"testing"
	"time"
)

func TestRetriesBackOffAndLogOncePerError(t *testing.T) {
	r := newRetries(time.Second, 8*time.Second)
	now := time.Unix(0, 0)
	stable := errors.New(`route "r" has no variant "stable"`)
	var waits []time.Duration
	var logged int
	for range 6 {
		if !r.due("r", now) {
			t.Fatalf("not due at %v after waiting the whole delay", now)
		}
		logIt, wait := r.failed("r", now, stable)
		if logIt {
			logged++
		}
		if r.due("r", now.Add(wait-time.Millisecond)) {
			t.Fatalf("due before its delay of %v passed", wait)
		}
		waits = append(waits, wait)
		now = now.Add(wait)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second, 8 * time.Second}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits %v, want %v", waits, want)
		}
	}
	if logged != 1 {
		t.Errorf("the same error logged %d times, want once", logged)
	}
	if logIt, _ := r.failed("r", now, errors.New("another cause")); !logIt {
		t.Errorf("a new error is not logged")
	}
	if !r.due("other", now) {
		t.Errorf("a route that never failed is not due")
	}
	if !r.succeeded("r") || !r.due("r", now) {
		t.Errorf("success does not reset the route")
	}
	if logIt, wait := r.failed("r", now, stable); !logIt || wait != time.Second {
		t.Errorf("after a success the first failure logs (%v) and waits the base delay (%v)", logIt, wait)
	}
	if r.succeeded("never-failed") {
		t.Errorf("a route that never failed reports a recovery")
	}
}
