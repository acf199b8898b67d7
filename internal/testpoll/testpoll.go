// Package testpoll waits in tests for a condition to become true. It is for
// tests only and imports nothing from weir, so any package's tests can use it.
//
// A wall-clock limit in a test is a statement about the machine, not about
// the code: the same test runs on a quiet laptop and on a 2-core CI machine
// with other work beside it. So every wait here is at least MinWait, whatever
// the caller asked for, and a timeout reports the last state it saw (the
// last error For's check returned) rather than just "timed out". There is
// no boolean wait: a condition that can only say "not yet" leaves a timeout
// with nothing to report. Waiting longer only delays a failure; it never
// turns a failure into a pass.
package testpoll

import (
	"testing"
	"time"
)

// MinWait is the least time any poll here waits before it fails the test.
const MinWait = 30 * time.Second

// interval is how often a poll checks its condition.
const interval = 5 * time.Millisecond

// For polls check until it returns nil, and fails the test with what and the
// last error check returned once timeout (at least MinWait) has passed.
// Write check to describe the state it saw: "3 of 5 events stored" says more
// than "not yet".
func For(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	if err := wait(limit(timeout), check); err != nil {
		t.Fatalf("timed out after %v waiting for %s: last state: %v", limit(timeout), what, err)
	}
}

func limit(timeout time.Duration) time.Duration { return max(timeout, MinWait) }

// wait runs check until it returns nil or d passes, and returns the last
// error. The first check runs at once.
func wait(d time.Duration, check func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(interval) // polling interval, not a wait for an event
	}
}
