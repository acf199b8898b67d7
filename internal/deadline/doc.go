// Package deadline gives a request its deadline without paying for a timer
// that nothing waits on.
//
// context.WithTimeout arms a runtime timer for every context it makes and
// stops it again at cancel. Most of weir's requests never wait on their
// context: the model runs, the answer goes out, and the deadline is only
// read (a plugin's time left) or checked (Err). WithTimeout here makes the
// same context, but arms its timer only when something asks for Done or
// registers an AfterFunc, which is when waiting starts: a plugin instance
// or a batch that is not free, a feature store read, a child context.
// Child does the same for a child that ends at a deadline of its own.
//
// It imports nothing from weir.
package deadline
