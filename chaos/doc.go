// Package chaos holds weir's fault-injection suite: tests that build the weir
// binary from this repository, run it as child processes (`weir serve`, and a
// NATS server or 3-node cluster of its own where a test must freeze or kill
// NATS), and inject real faults: kill -9, a stopped (SIGSTOP) NATS or NATS
// node, and full disks on tmpfs mounts of a few MiB. Each test asserts and logs its figures: requests
// failed, events expected / stored / doubled / counted as dropped, CPU while
// idle after the fault, and time to recover.
//
// `go test ./chaos/` (part of `make test`) runs a short form; `make chaos`
// (WEIR_CHAOS=full) runs longer, heavier versions of the same faults. Full
// disks need a tmpfs mount (root or CAP_SYS_ADMIN); without it those tests
// skip, saying so.
//
// The package has no non-test code; it imports weir only to build models and
// read the event stream, never to run the gateway in process.
package chaos
