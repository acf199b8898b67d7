package features

import (
	"bytes"
	"context"
	"errors"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/natsx/natstest"
	"github.com/weirhq/weir/internal/testpoll"
)

// TestCloseAfterItsContextEndedStopsTheCache: a gateway's closers share one
// shutdown context, so Close can get one that has ended before the watches
// stop. The cache's goroutines must stop all the same, once the watches
// have (the gateway's leak check found them running after its tests).
func TestCloseAfterItsContextEndedStopsTheCache(t *testing.T) {
	srv := natstest.Start(t)
	nc, js := srv.Connect(t)
	s, err := Open(context.Background(), Options{NC: nc, JS: js})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.Close(ctx)
	testpoll.For(t, 10*time.Second, "the feature cache's goroutines to stop", func() error {
		var stacks bytes.Buffer
		if err := pprof.Lookup("goroutine").WriteTo(&stacks, 1); err != nil {
			return err
		}
		if bytes.Contains(stacks.Bytes(), []byte("ristretto")) {
			return errors.New("a ristretto goroutine is still running")
		}
		return nil
	})
}
