package testpoll

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestWaitReportsLastState(t *testing.T) {
	n := 0
	err := wait(20*time.Millisecond, func() error {
		n++
		return fmt.Errorf("%d events stored", n)
	})
	if err == nil || err.Error() != fmt.Sprintf("%d events stored", n) || n < 2 {
		t.Fatalf("wait = %v after %d checks; want the last check's error after several", err, n)
	}
}

func TestWaitStopsAtSuccess(t *testing.T) {
	n := 0
	err := wait(time.Minute, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Fatalf("wait = %v after %d checks; want nil after 3", err, n)
	}
}

func TestLimitHasAFloor(t *testing.T) {
	if got := limit(2 * time.Second); got != MinWait {
		t.Errorf("limit(2s) = %v, want MinWait %v", got, MinWait)
	}
	if got := limit(2 * time.Minute); got != 2*time.Minute {
		t.Errorf("limit(2m) = %v, want 2m", got)
	}
}
