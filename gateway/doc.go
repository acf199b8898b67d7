// Package gateway is weir's HTTP front end and the owner of a running
// gateway: it starts (or connects to) NATS, opens the stores, wires models,
// plugins, routes, features, rollouts and monitoring together, and serves
// the Open Inference Protocol, the admin API, /metrics and the dashboard.
//
// Handlers return errors; errorHandler is the one place that turns them
// into HTTP statuses and {"error": "..."} bodies. gateway may import every
// weir package; none may import gateway.
package gateway
