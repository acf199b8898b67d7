// Package clip bounds text that weir repeats back (error messages in
// answers, events, logs and Kubernetes conditions): cut at a UTF-8
// boundary, saying how much was cut.
//
// It imports nothing from weir.
package clip
