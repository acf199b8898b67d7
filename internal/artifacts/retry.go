package artifacts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/internal/retry"
	"github.com/weirhq/weir/internal/weirerr"
)

// A write to JetStream fails for a while when the stream it goes to has no
// leader (a node died and the others elect a new one, a matter of seconds)
// or the connection is moving to another node. Such a failure is retried
// until the caller's context ends; only then is it given up, as
// Unavailable (503), so that a client retries later rather than reading
// "internal error".
const (
	// attemptTimeout bounds one small request (a metadata record): a
	// request to a stream without a leader is not answered, and waiting
	// the caller's whole deadline on it would leave no time for another
	// try once a leader is elected.
	attemptTimeout = 3 * time.Second
	retryFirst     = 100 * time.Millisecond
	retryMax       = time.Second
)

// transient reports whether err is a NATS failure that may pass by itself:
// no answer in time, nobody to answer yet, JetStream unavailable for now.
func transient(err error) bool {
	var api *jetstream.APIError
	switch {
	case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, nats.ErrDisconnected), errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, errDeletedMeanwhile):
		return true
	case errors.As(err, &api):
		return api.Code == 503
	}
	return false
}

// RetryFor bounds how long failures that may pass are retried, each
// operation: the gateway's request timeout, so that an upload's context,
// which also covers receiving the body, does not hold a client for minutes
// while NATS has no leader. It bounds the retrying, not a try under way (a
// large blob takes what it takes). Zero: until the context ends. Call it
// before the store is used.
func (s *Store) RetryFor(d time.Duration) { s.retryFor = d }

// retry runs op until it succeeds, fails for good, or the time to retry is
// up (ctx ends, or s.retryFor has passed since the first try); attempt,
// when not zero, bounds each try. what names the operation in the error.
func (s *Store) retry(ctx context.Context, what string, attempt time.Duration, op func(context.Context) error) error {
	var until <-chan time.Time
	if s.retryFor > 0 {
		t := time.NewTimer(s.retryFor)
		defer t.Stop()
		until = t.C
	}
	backoff := retry.Backoff{Base: retryFirst, Max: retryMax}
	for tries := 1; ; tries++ {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if attempt > 0 {
			actx, cancel = context.WithTimeout(ctx, attempt)
		}
		err := op(actx)
		cancel()
		if err == nil || !transient(err) {
			return err
		}
		if ctx.Err() != nil {
			return unavailable(what, tries, err)
		}
		select {
		case <-ctx.Done():
			return unavailable(what, tries, err)
		case <-until:
			return unavailable(what, tries, err)
		case <-time.After(backoff.Next()):
		}
	}
}

func unavailable(what string, tries int, err error) error {
	return weirerr.Unavailablef("%s: NATS did not take it in time (%d tries); try again: %w", what, tries, err)
}

// errDeletedMeanwhile: a key that existed a moment ago is gone; creating
// it is worth another try.
var errDeletedMeanwhile = errors.New("deleted meanwhile")

// ErrExists is CreateMeta's answer when name@version is recorded already.
var ErrExists = errors.New("already recorded")

// CreateMeta records m unless name@version is recorded already; then it
// returns what is recorded and ErrExists. A try that timed out may have
// been stored all the same: the next try then finds m itself recorded,
// which the caller recognises by its digest.
func (s *Store) CreateMeta(ctx context.Context, m Meta) (Meta, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return Meta{}, err
	}
	var found Meta
	err = s.retry(ctx, fmt.Sprintf("record %s %s@%s", s.kind, m.Name, m.Version), attemptTimeout, func(ctx context.Context) error {
		_, err := s.kv.Create(ctx, Key(m.Name, m.Version), b)
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return err
		}
		var ok bool
		if found, ok, err = s.meta(ctx, m.Name, m.Version); err != nil {
			return err
		} else if !ok {
			return errDeletedMeanwhile
		}
		return ErrExists
	})
	if errors.Is(err, ErrExists) {
		return found, ErrExists
	}
	if err != nil && weirerr.KindOf(err) == weirerr.Internal {
		return Meta{}, fmt.Errorf("record %s %s@%s: %w", s.kind, m.Name, m.Version, err)
	}
	return Meta{}, err
}
