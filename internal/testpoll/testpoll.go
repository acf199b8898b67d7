// Package testpoll waits in tests for a condition to become true. It is for
// tests only and imports nothing from weir, so any package's tests can use it.
package testpoll

import (
	"fmt"
	"testing"
	"time"
)

// interval is how often Eventually polls its condition.
const interval = 5 * time.Millisecond

// Eventually polls cond every few milliseconds until it returns true, and
// fails the test (t.Fatalf) with "timed out after <timeout> waiting for <what>" otherwise.
// what is a fmt format for args.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, what string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, fmt.Sprintf(what, args...))
		}
		time.Sleep(interval) // polling interval, not a wait for an event
	}
}
