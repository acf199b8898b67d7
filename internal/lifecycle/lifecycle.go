// Package lifecycle holds the shutdown rule every long-lived part of weir
// follows (docs/rationale.md, "One lifecycle"): the part that starts a
// goroutine owns it, and its Close(ctx) error stops what it started and
// waits for it, or gives up when ctx ends and says what it was waiting for.
// It imports nothing from weir.
package lifecycle

import (
	"context"
	"fmt"
	"sync"
)

// Wait waits until done is closed, or returns an error naming what once ctx
// ends first.
func Wait(ctx context.Context, what string, done <-chan struct{}) error {
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s did not stop in time: %w", what, ctx.Err())
	}
}

// WaitGroup waits for wg like Wait. When ctx ends first, the goroutine that
// waits on wg is left to finish when the group does.
func WaitGroup(ctx context.Context, what string, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	return Wait(ctx, what, done)
}
