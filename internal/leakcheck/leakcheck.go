// Package leakcheck ends a package's tests with a goroutine-leak check
// (goleak): every goroutine a test starts must have an owner that stopped it
// (docs/rationale.md, "One lifecycle"). For tests only; it imports nothing
// from weir.
package leakcheck

import (
	"testing"

	"go.uber.org/goleak"
)

// libraryLeaks are goroutines a dependency can leave behind on its own.
var libraryLeaks = []goleak.Option{
	// nats.go v1.55: when a connection closes while its async publisher is
	// being set up, this goroutine may read a status channel that was never
	// made, and blocks forever on nil.
	goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"),
	// nats.go v1.55: an object read's chunk callback was once (make test
	// beside CPU burners, -race) left blocked writing to the reader's pipe
	// at the end of the models tests, every weir reader having closed its
	// result. Not reproduced; the callback runs on the library's own
	// subscription goroutine.
	goleak.IgnoreAnyFunction("github.com/nats-io/nats.go/jetstream.(*obs).Get.func2"),
	// fasthttp v1.51 (under fiber): the first server of the process starts
	// a goroutine that refreshes the Date header every second, forever.
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	// fasthttp v1.51: a server's worker pool cleaner looks at its stop
	// channel only between sleeps of MaxIdleWorkerDuration (10 s), so it
	// ends up to 10 s after Shutdown has returned. A server left running
	// still leaks its accept loop, which is not ignored.
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	// nats-server v2.15: a stopped server's file stores end their state
	// flush loops, and the process-wide access-time ticker its last
	// registrant leaves, a moment after Shutdown returns; on a loaded
	// machine that moment outlasted goleak's retries (make test, natsx). A
	// server left running still leaks its accept loops, which are not
	// ignored.
	goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*fileStore).flushStreamStateLoop"),
	goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server/ats.Register.func1"),
}

// Main runs the package's tests and fails the run if any goroutine started
// by them is still running at the end. Call it from TestMain.
func Main(m *testing.M) { goleak.VerifyTestMain(m, libraryLeaks...) }

// MainThen is Main for a package whose tests share something started once
// (a test API server): stop runs after the tests, before the check.
func MainThen(m *testing.M, stop func()) {
	goleak.VerifyTestMain(stopAfter{m, stop}, libraryLeaks...)
}

type stopAfter struct {
	m    *testing.M
	stop func()
}

func (s stopAfter) Run() int {
	code := s.m.Run()
	s.stop()
	return code
}
