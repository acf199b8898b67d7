// Package natstest starts a real embedded NATS server with JetStream for tests.
//
// For tests only; it imports nothing from weir but internal/natsx and
// internal/testpoll.
package natstest
