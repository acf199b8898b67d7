// Package dashboard owns weir's single-page web dashboard: the HTML, CSS and
// JavaScript embedded in the binary, and the fiber handlers that serve them
// (GET / and GET /ui/*).
//
// The page is a pure client of the public HTTP API (/v1, /v2): it reads
// routes, rollouts, time series, stats, models, plugins, drift and alerts by
// polling, and sends rollout actions with the admin token the user pastes in.
// It must not import the gateway or any store: whatever the page shows must be
// scriptable with curl.
package dashboard
