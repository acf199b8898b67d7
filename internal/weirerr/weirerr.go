// Package weirerr is the one error type that crosses package boundaries in weir.
//
// Packages return a *weirerr.Error when the caller (usually an HTTP client) did
// something wrong or asked for something that cannot be had; the gateway maps
// its Kind to an HTTP status in one place. Any other error is an internal
// failure (500). weirerr imports nothing from weir.
package weirerr

import (
	"errors"
	"fmt"
)

// Kind classifies an error by what the caller can do about it.
type Kind int

const (
	Internal     Kind = iota // a bug or a failure of ours: 500
	Invalid                  // the request is wrong: 400
	Unauthorized             // missing or wrong credentials: 401
	NotFound                 // the named thing does not exist: 404
	Conflict                 // the thing is in a state that forbids this: 409
	TooLarge                 // the body is over the limit: 413
	Overloaded               // try again later: 429
	Upstream                 // a plugin or model failed while serving: 502
	Unavailable              // not ready yet (loading, NATS down): 503
)

// Error is an error with a Kind and a message meant for the user.
type Error struct {
	Kind Kind
	Msg  string
	Err  error // optional cause, for errors.Is/As and logs
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

func newf(k Kind, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Kind: k, Msg: err.Error(), Err: errors.Unwrap(err)}
}

// Invalidf reports a bad request (400). %w in format keeps the cause.
func Invalidf(format string, args ...any) *Error { return newf(Invalid, format, args...) }

// NotFoundf reports an unknown model, version, plugin or route (404).
func NotFoundf(format string, args ...any) *Error { return newf(NotFound, format, args...) }

// Conflictf reports a request that the current state forbids (409).
func Conflictf(format string, args ...any) *Error { return newf(Conflict, format, args...) }

// Unauthorizedf reports missing or wrong credentials (401).
func Unauthorizedf(format string, args ...any) *Error { return newf(Unauthorized, format, args...) }

// Overloadedf reports a full queue or pool (429).
func Overloadedf(format string, args ...any) *Error { return newf(Overloaded, format, args...) }

// Upstreamf reports a plugin or model failure while serving (502).
func Upstreamf(format string, args ...any) *Error { return newf(Upstream, format, args...) }

// Unavailablef reports something not ready yet (503).
func Unavailablef(format string, args ...any) *Error { return newf(Unavailable, format, args...) }

// TooLargef reports a body over the configured limit (413).
func TooLargef(format string, args ...any) *Error { return newf(TooLarge, format, args...) }

// KindOf returns the Kind of the first *Error in err's chain, or Internal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}
