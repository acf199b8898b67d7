package deadline

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/testpoll"
)

func TestDeadlineIsReadWithoutATimer(t *testing.T) {
	before := time.Now()
	ctx, cancel := WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, ok := ctx.Deadline()
	if !ok || d.Before(before.Add(time.Minute)) || d.After(time.Now().Add(time.Minute)) {
		t.Fatalf("Deadline() = %v, %v; want a minute from now", d, ok)
	}
	if err := ctx.Err(); err != nil {
		t.Fatalf("Err() before the deadline = %v", err)
	}
	if c := ctx.(*timeoutCtx); c.timer != nil || c.done != nil {
		t.Fatal("a context nothing waited on armed a timer or made a channel")
	}
}

func TestDoneClosesAtTheDeadline(t *testing.T) {
	ctx, cancel := WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	ends(t, ctx, context.DeadlineExceeded, "a context with a 20 ms deadline")
}

func TestErrReportsAPassedDeadlineThatNobodyWaitedFor(t *testing.T) {
	ctx, cancel := WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	time.Sleep(5 * time.Millisecond)
	if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err() = %v, want DeadlineExceeded", err)
	}
	select {
	case <-ctx.Done():
	default:
		t.Fatal("Done asked after the deadline is not closed")
	}
}

func TestCancelEndsTheContext(t *testing.T) {
	ctx, cancel := WithTimeout(context.Background(), time.Minute)
	done := ctx.Done()
	cancel()
	select {
	case <-done:
	default:
		t.Fatal("Done is not closed after cancel")
	}
	if err := ctx.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err() after cancel = %v, want Canceled", err)
	}
	cancel() // a second cancel is harmless
	if c := ctx.(*timeoutCtx); c.timer.Stop() {
		t.Fatal("cancel left the timer armed")
	}
}

func TestChildrenEndWithTheirParent(t *testing.T) {
	ctx, cancel := WithTimeout(context.Background(), time.Minute)
	child, cancelChild := context.WithCancel(ctx)
	defer cancelChild()
	shorter, cancelShorter := context.WithTimeout(ctx, time.Hour)
	defer cancelShorter()
	if d, _ := shorter.Deadline(); d != mustDeadline(t, ctx) {
		t.Fatalf("a child asking for a later deadline got %v, want the parent's", d)
	}
	cancel()
	ends(t, child, context.Canceled, "a child of a canceled context")
	ends(t, shorter, context.Canceled, "a child with a deadline of a canceled context")
}

// context ties a child to a parent of another type through the parent's
// AfterFunc method, or else with a goroutine per child that lives as long
// as the child: a request's feature reads would each start one.
func TestChildrenStartNoGoroutine(t *testing.T) {
	ctx, cancel := WithTimeout(context.Background(), time.Minute)
	defer cancel()
	before := runtime.NumGoroutine()
	var cancels []context.CancelFunc
	for range 100 {
		_, c := context.WithDeadline(ctx, time.Now().Add(time.Second))
		cancels = append(cancels, c)
	}
	if n := runtime.NumGoroutine() - before; n >= 50 {
		t.Fatalf("100 children started %d goroutines", n)
	}
	for _, c := range cancels {
		c()
	}
	if n := len(ctx.(*timeoutCtx).funcs); n != 0 {
		t.Fatalf("canceled children left %d AfterFuncs behind", n)
	}
}

func TestAfterFunc(t *testing.T) {
	ctx, cancel := WithTimeout(context.Background(), time.Minute)
	ran := make(chan string, 2)
	stop := context.AfterFunc(ctx, func() { ran <- "kept" })
	stopped := context.AfterFunc(ctx, func() { ran <- "stopped" })
	if !stopped() {
		t.Fatal("stop of a waiting AfterFunc returned false")
	}
	cancel()
	select {
	case got := <-ran:
		if got != "kept" {
			t.Fatalf("ran %q", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("AfterFunc did not run within 30 s of cancel")
	}
	if stop() {
		t.Fatal("stop after the function ran returned true")
	}
	late := make(chan bool)
	context.AfterFunc(ctx, func() { close(late) })
	select {
	case <-late:
	case <-time.After(30 * time.Second):
		t.Fatal("an AfterFunc registered after the end did not run")
	}
}

func TestCancelableParentKeepsItsCancel(t *testing.T) {
	parent, cancelParent := context.WithCancel(context.Background())
	ctx, cancel := WithTimeout(parent, time.Minute)
	defer cancel()
	cancelParent()
	ends(t, ctx, context.Canceled, "a context whose parent was canceled")
}

func TestValuesComeFromTheParent(t *testing.T) {
	type key struct{}
	ctx, cancel := WithTimeout(context.WithValue(context.Background(), key{}, "v"), time.Minute)
	defer cancel()
	if got := ctx.Value(key{}); got != "v" {
		t.Fatalf("Value = %v", got)
	}
}

// ends fails unless ctx is done within testpoll.MinWait, with want.
func ends(t *testing.T, ctx context.Context, want error, what string) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(testpoll.MinWait):
		t.Fatalf("%s still running after %s", what, testpoll.MinWait)
	}
	if err := ctx.Err(); !errors.Is(err, want) {
		t.Fatalf("%s: Err() = %v, want %v", what, err, want)
	}
}

func mustDeadline(t *testing.T, ctx context.Context) time.Time {
	t.Helper()
	d, ok := ctx.Deadline()
	if !ok {
		t.Fatal("no deadline")
	}
	return d
}

// BenchmarkRequest is a request's deadline that nothing waits on: made,
// read, checked and canceled.
func BenchmarkRequest(b *testing.B) {
	for _, bc := range []struct {
		name string
		with func(context.Context, time.Duration) (context.Context, context.CancelFunc)
	}{{"context", context.WithTimeout}, {"deadline", WithTimeout}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ctx, cancel := bc.with(context.Background(), 30*time.Second)
				ctx.Deadline()
				_ = ctx.Err()
				cancel()
			}
		})
	}
}
