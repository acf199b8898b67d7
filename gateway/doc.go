// Package gateway is weir's HTTP front end and the owner of a running
// gateway: it starts (or connects to) NATS, opens the stores, wires models,
// plugins, routes, features, rollouts and monitoring together, and serves
// the Open Inference Protocol, the admin API, /metrics and the dashboard.
//
// Shutdown stops it in net/http's order (docs/rationale.md, "One
// lifecycle"): readiness off and the base context (shadow requests)
// cancelled; HTTP and gRPC drained concurrently under the caller's context;
// then each part closed in reverse order of start under its own budget.
// Every request path has the request timeout: HTTP's requestDeadline
// middleware, gRPC's interceptor (oipgrpc), shadows on the base context.
//
// Handlers return errors; errorHandler is the one place that turns them
// into HTTP statuses and {"error": "..."} bodies. gateway may import every
// weir package; none may import gateway.
package gateway
