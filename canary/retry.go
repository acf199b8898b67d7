package canary

import "time"

// retries keeps, per route, when the loop may next try a rollout that failed
// to reconcile, and the error it last logged. A failing route backs off
// exponentially (as controller-runtime's rate-limited requeue does) and logs
// once per distinct error, never once per tick. Only the loop goroutine uses
// it.
type retries struct {
	base, max time.Duration
	routes    map[string]*retry
}

type retry struct {
	next   time.Time     // no attempt before this
	delay  time.Duration // the wait after the next failure is twice this
	errMsg string        // what was last logged
}

func newRetries(base, max time.Duration) *retries {
	return &retries{base: base, max: max, routes: map[string]*retry{}}
}

// due reports whether route may be tried at now.
func (r *retries) due(route string, now time.Time) bool {
	st, ok := r.routes[route]
	return !ok || !now.Before(st.next)
}

// failed records a failed attempt at now and reports whether err is new for
// the route (so worth logging), and how long the route now waits.
func (r *retries) failed(route string, now time.Time, err error) (logIt bool, wait time.Duration) {
	st, ok := r.routes[route]
	if !ok {
		st = &retry{delay: r.base / 2}
		r.routes[route] = st
	}
	st.delay = min(2*st.delay, r.max)
	st.next = now.Add(st.delay)
	msg := err.Error()
	logIt = msg != st.errMsg
	st.errMsg = msg
	return logIt, st.delay
}

// succeeded forgets the route's failures and reports whether it had any.
func (r *retries) succeeded(route string) (recovered bool) {
	_, recovered = r.routes[route]
	delete(r.routes, route)
	return recovered
}
