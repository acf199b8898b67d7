package deadline

import (
	"context"
	"errors"
	"testing"
	"time"
)

type ctxKey struct{}

// A child nothing waits on derives no context (no timer), yet has the
// deadline and the parent's values, and ends at end.
func TestChildAnswersWithoutWaiting(t *testing.T) {
	parent := context.WithValue(context.Background(), ctxKey{}, "request")
	d := time.Now().Add(time.Minute)
	ctx, end := Child(parent, d)
	if got := mustDeadline(t, ctx); !got.Equal(d) {
		t.Fatalf("Deadline() = %v, want %v", got, d)
	}
	if v := ctx.Value(ctxKey{}); v != "request" {
		t.Fatalf("Value = %v, want the parent's", v)
	}
	if err := ctx.Err(); err != nil {
		t.Fatalf("Err() before the deadline = %v", err)
	}
	if ctx.(*childCtx).ctx != nil {
		t.Fatal("a child nothing waited on derived a context")
	}
	end()
	ends(t, ctx, context.Canceled, "a child after end")
}

// Waiting on a child ends at its deadline.
func TestChildEndsAtItsDeadline(t *testing.T) {
	ctx, end := Child(context.Background(), time.Now().Add(20*time.Millisecond))
	ends(t, ctx, context.DeadlineExceeded, "a child with a 20 ms deadline")
	end()
	ends(t, ctx, context.DeadlineExceeded, "a child ended after its deadline")
}

// The parent ending first ends the child, waited on or not, and an
// earlier parent deadline is the child's.
func TestChildFollowsItsParent(t *testing.T) {
	soon := time.Now().Add(time.Minute)
	parent, cancel := context.WithDeadline(context.Background(), soon)
	ctx, end := Child(parent, soon.Add(time.Hour))
	defer end()
	if got := mustDeadline(t, ctx); !got.Equal(soon) {
		t.Fatalf("Deadline() = %v, want the parent's %v", got, soon)
	}
	waiting, endWaiting := Child(parent, soon.Add(time.Hour))
	defer endWaiting()
	done := waiting.Done()
	cancel()
	<-done
	ends(t, waiting, context.Canceled, "a waited-on child of a canceled parent")
	if err := ctx.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err() after the parent ended = %v, want Canceled", err)
	}
}
