package plugins

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/testpoll"
	"github.com/weirhq/weir/internal/weirerr"
)

// busy waits until every instance of name@1 is out of the pool, in a call.
func busy(t *testing.T, h *Host, name string) {
	t.Helper()
	h.mu.RLock()
	pv := h.plugins[pluginKey{name, "1"}]
	h.mu.RUnlock()
	testpoll.For(t, testpoll.MinWait, name+"'s instance in a call", func() error {
		pv.mu.Lock()
		defer pv.mu.Unlock()
		if n := len(pv.free); n > 0 || pv.live == 0 {
			return fmt.Errorf("%d of %d instances idle", n, pv.live)
		}
		return nil
	})
}

// Close interrupts guests that would run for an hour (a loop, a WASI
// sleep) and frees the runtime only once their calls have returned: the
// calls fail as interrupted, and nothing runs freed code.
func TestCloseInterruptsRunningGuests(t *testing.T) {
	for _, name := range []string{"loop", "sleep"} {
		t.Run(name, func(t *testing.T) {
			h := newHost(t, Options{PoolSize: 1})
			load(t, h, name, Limits{Timeout: time.Hour})
			done := make(chan error, 1)
			go func() {
				_, err := h.Call(context.Background(), name, "1", nil, []byte(`{"loop":"forever"}`))
				done <- err
			}()
			busy(t, h, name)
			ctx, cancel := context.WithTimeout(context.Background(), testpoll.MinWait)
			defer cancel()
			if err := h.Close(ctx); err != nil {
				t.Fatalf("Close with a call in flight: %v", err)
			}
			select {
			case err := <-done:
				wantErr(t, err, weirerr.Unavailable, name+"@1", "interrupted", "shutting down")
			case <-time.After(testpoll.MinWait):
				t.Fatal("the interrupted call did not return")
			}
		})
	}
}

// A call blocked in a host function (a features read) cannot be
// interrupted: Close gives up when its context ends, logs it and leaves
// the runtime open, so the guest resumes on code that is still there.
func TestCloseLeavesTheRuntimeToACallItCannotStop(t *testing.T) {
	feats := &mapFeatures{
		m:       map[string]string{"acct-42": `{"amount_mean_24h":100,"amount_std_24h":10}`},
		block:   make(chan struct{}),
		entered: make(chan struct{}, 1),
	}
	logs := &testpoll.Buffer{}
	h := newHost(t, Options{PoolSize: 1, Features: feats, Limits: Limits{Timeout: time.Hour},
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	load(t, h, "fraud-features", Limits{})
	done := make(chan error, 1)
	go func() {
		_, err := h.Call(context.Background(), "fraud-features", "1", nil, []byte(txn))
		done <- err
	}()
	<-feats.entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := h.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "runtime left open") {
		t.Fatalf("Close with a call blocked in a host function: %v, want the runtime left open", err)
	}
	if !strings.Contains(logs.String(), "plugin runtime left open") {
		t.Errorf("Close did not log the runtime left open; logs:\n%s", logs)
	}
	close(feats.block)
	// The guest returns from the read into its code, which is still
	// mapped, and traps at its next check.
	wantErr(t, <-done, weirerr.Unavailable, "fraud-features@1", "interrupted")
}

// A check (Validate, or Load before the version serves) running a start
// function that loops is interrupted by Close too, which frees the runtime
// only once it has returned.
func TestCloseInterruptsAStartFunction(t *testing.T) {
	h := newHost(t, Options{PoolSize: 1, Limits: Limits{Timeout: time.Hour}})
	done := make(chan error, 1)
	go func() { done <- h.Validate(context.Background(), wasmFile(t, "initloop")) }()
	testpoll.For(t, testpoll.MinWait, "the check's instance started", func() error {
		h.mu.RLock()
		defer h.mu.RUnlock()
		for pv := range h.checking {
			pv.mu.Lock()
			n := len(pv.instances)
			pv.mu.Unlock()
			if n > 0 {
				return nil
			}
		}
		return errors.New("no check with an instance yet")
	})
	ctx, cancel := context.WithTimeout(context.Background(), testpoll.MinWait)
	defer cancel()
	if err := h.Close(ctx); err != nil {
		t.Fatalf("Close with a start function looping: %v", err)
	}
	select {
	case err := <-done:
		wantErr(t, err, weirerr.Invalid, "does not start")
	case <-time.After(testpoll.MinWait):
		t.Fatal("the interrupted check did not return")
	}
}
