// Package testgw starts real weir gateways for tests: embedded NATS with
// JetStream on a random loopback port, HTTP on another, and a client
// holding the admin token. Everything stops when the test ends.
//
// For tests only; it imports nothing from weir but the gateway,
// internal/testpoll and sdk/client: it drives a gateway as a user would.
package testgw
