// Package canary owns automated canary rollouts (POST /v1/routes/{route}/rollout):
// the rollout spec and its validation, the level-based state machine that
// moves a route's canary variant through its weight steps after analysing
// the canary's own metrics, manual promote/pause/resume/abort, the rollout
// state in the JetStream KV bucket "weir-rollouts", the lease that lets one
// gateway replica at a time drive rollouts, and the announcement of every
// transition on weir.rollouts.<route> (plus a log line and the counter
// weir_rollout_transitions_total{route,to}).
//
// It declares the small interfaces it consumes (Routes, Metrics, Drift); the
// gateway satisfies them with *router.Store and adapters over the monitor
// and drift packages. canary imports router for its value types only and
// must not import the gateway, the monitor's stats, the drift monitor or any
// HTTP framework.
package canary
