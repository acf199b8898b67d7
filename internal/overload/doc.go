// Package overload is weir's overload manager: one process-wide budget of
// bytes in flight, which requests are charged against before they decode,
// and the memory limit the budget (and GOMEMLIMIT) is sized from.
//
// A request charges an estimate of what it will hold in memory (its body's
// bytes times a decode factor, chosen by its caller); past the budget it
// waits briefly for others to finish, then is refused, so that the gateway
// sheds load before its memory runs out instead of dying of it
// (docs/rationale.md, "A budget of bytes in flight").
//
// overload imports nothing from weir, and nothing outside the standard
// library but golang.org/x/sync.
package overload
