// Package lint holds no code: its tests keep rules about weir's own source
// true, rules that would otherwise live in prose and drift. imports_test.go
// checks the import rules each package's doc.go states, against the real
// graph from `go list`; errors_test.go checks that errors keep their causes
// (%w, not %v). A rule added to a doc.go belongs in the tests' tables too;
// a package with neither a rule nor a stated reason for none fails them.
package lint
