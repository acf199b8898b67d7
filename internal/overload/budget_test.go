package overload

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBudget(t *testing.T) {
	b := New(100, 10*time.Millisecond)
	ctx := context.Background()
	if err := b.Acquire(ctx, 60); err != nil {
		t.Fatal(err)
	}
	if err := b.Acquire(ctx, 60); !errors.Is(err, ErrExhausted) {
		t.Errorf("60 over 60 of 100: %v, want ErrExhausted", err)
	}
	if err := b.Acquire(ctx, 101); !errors.Is(err, ErrTooLarge) {
		t.Errorf("101 of 100: %v, want ErrTooLarge", err)
	}
	if err := b.Acquire(ctx, 40); err != nil {
		t.Errorf("40 beside 60 of 100: %v", err)
	}
	if b.InFlight() != 100 || b.Shed() != 2 || b.Size() != 100 {
		t.Errorf("in flight %d, shed %d, size %d; want 100, 2, 100", b.InFlight(), b.Shed(), b.Size())
	}
	b.Release(60)
	b.Release(40)
	if err := b.Acquire(ctx, 100); err != nil || b.InFlight() != 100 {
		t.Errorf("the whole budget once released: %v (in flight %d)", err, b.InFlight())
	}
}

// A waiting charge gets the room a release makes.
func TestBudgetWaits(t *testing.T) {
	b := New(100, time.Minute)
	ctx := context.Background()
	if err := b.Acquire(ctx, 100); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- b.Acquire(ctx, 50) }()
	b.Release(100)
	if err := <-done; err != nil {
		t.Errorf("a charge waiting for room: %v", err)
	}
}

// No wait outlasts the caller's deadline.
func TestBudgetWaitEndsWithTheRequest(t *testing.T) {
	b := New(100, time.Hour)
	if err := b.Acquire(context.Background(), 100); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if err := b.Acquire(ctx, 1); !errors.Is(err, ErrExhausted) {
		t.Errorf("a full budget past the deadline: %v, want ErrExhausted", err)
	}
}

func TestNoBudget(t *testing.T) {
	var b *Budget = New(0, time.Second)
	if err := b.Acquire(context.Background(), 1<<40); err != nil || b.Size() != 0 || b.InFlight() != 0 {
		t.Errorf("no budget refused a charge (%v) or counted it", err)
	}
	b.Release(1 << 40)
}
