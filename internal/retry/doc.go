// Package retry paces retries: every loop in weir that tries again after a
// failure waits with jitter, so that replicas that failed together (a NATS
// leader election, a restart) do not all come back at the same instant.
//
// It imports nothing from weir.
package retry
