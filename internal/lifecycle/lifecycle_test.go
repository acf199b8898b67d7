package lifecycle

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
)

func TestWaitGroup(t *testing.T) {
	var wg sync.WaitGroup
	wg.Add(1)
	release := make(chan struct{})
	go func() {
		defer wg.Done()
		<-release
	}()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := WaitGroup(ctx, "the worker", &wg)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "the worker did not stop in time") {
		t.Fatalf("WaitGroup with an ended context = %v", err)
	}
	close(release)
	if err := WaitGroup(context.Background(), "the worker", &wg); err != nil {
		t.Fatalf("WaitGroup once the worker stopped = %v", err)
	}
}
