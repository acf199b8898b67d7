package plugins

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/testpoll"
)

type ctxKey struct{}

// A read answered at once makes no derived context (no timer), yet sees
// the deadline and the request's values, and the context ends with the
// read.
func TestReadCtxAnswersWithoutWaiting(t *testing.T) {
	parent := context.WithValue(context.Background(), ctxKey{}, "request")
	d := time.Now().Add(time.Minute)
	c := newReadCtx(parent, d)
	if got, ok := c.Deadline(); !ok || !got.Equal(d) {
		t.Fatalf("Deadline() = %v, %v; want %v", got, ok, d)
	}
	if v := c.Value(ctxKey{}); v != "request" {
		t.Fatalf("Value = %v, want the request's", v)
	}
	if err := c.Err(); err != nil {
		t.Fatalf("Err() before the deadline = %v", err)
	}
	if c.ctx != nil {
		t.Fatal("a read that did not wait made a derived context")
	}
	c.end()
	ended(t, c, context.Canceled)
}

// Waiting on the context ends at the call's deadline.
func TestReadCtxEndsAtTheDeadline(t *testing.T) {
	c := newReadCtx(context.Background(), time.Now().Add(20*time.Millisecond))
	select {
	case <-c.Done():
	case <-time.After(testpoll.MinWait):
		t.Fatal("Done not closed long after the deadline")
	}
	ended(t, c, context.DeadlineExceeded)
	c.end()
	ended(t, c, context.DeadlineExceeded)
}

// The request ending first ends the read, whether it waits or not, and an
// earlier request deadline is the read's.
func TestReadCtxFollowsTheRequest(t *testing.T) {
	soon := time.Now().Add(time.Minute)
	parent, cancel := context.WithDeadline(context.Background(), soon)
	c := newReadCtx(parent, soon.Add(time.Hour))
	if got, _ := c.Deadline(); !got.Equal(soon) {
		t.Fatalf("Deadline() = %v, want the request's %v", got, soon)
	}
	waiting := newReadCtx(parent, soon.Add(time.Hour))
	done := waiting.Done()
	cancel()
	<-done
	ended(t, waiting, context.Canceled)
	if err := c.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err() after the request ended = %v, want Canceled", err)
	}
}

// ended checks that c has ended with want.
func ended(t *testing.T, c *readCtx, want error) {
	t.Helper()
	select {
	case <-c.Done():
	default:
		t.Fatal("Done is not closed")
	}
	if err := c.Err(); !errors.Is(err, want) {
		t.Fatalf("Err() = %v, want %v", err, want)
	}
}

// waitingFeatures is a FeatureReader that waits for its context to end.
type waitingFeatures struct{ err chan error }

func (f *waitingFeatures) ReadFeatures(ctx context.Context, entity string) ([]byte, bool, error) {
	<-ctx.Done()
	f.err <- ctx.Err()
	return nil, false, ctx.Err()
}

// A features read that waits ends with the call, at its deadline.
func TestFeatureReadEndsWithTheCall(t *testing.T) {
	feats := &waitingFeatures{err: make(chan error, 1)}
	h := newHost(t, Options{Features: feats})
	load(t, h, "fraud-features", Limits{Timeout: 50 * time.Millisecond})
	done := make(chan error, 1)
	go func() {
		_, err := h.Call(context.Background(), "fraud-features", "1", nil, []byte(txn))
		done <- err
	}()
	select {
	case err := <-feats.err:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("the read's context ended with %v, want DeadlineExceeded", err)
		}
	case <-time.After(testpoll.MinWait):
		t.Fatal("a features read waiting on its context outlived a 50ms call")
	}
	// The guest then ran on without features or was stopped at its
	// deadline, depending on which came first: either way the call ends.
	select {
	case <-done:
	case <-time.After(testpoll.MinWait):
		t.Fatal("the call did not return after its features read ended")
	}
}
