package natsx

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/internal/lifecycle"
)

// LeaseBucket is the KV bucket holding leases; its entries expire after
// LeaseTTL unless their holder renews them.
const LeaseBucket = "weir-leases"

// LeaseTTL is how long a lease outlives its holder's last renewal: the
// longest a crashed holder's duty goes undone.
const LeaseTTL = 10 * time.Second

// Lease lets one process of many hold a duty (e.g. publishing drift
// alerts) at a time, through a KV key that the holder renews every
// LeaseTTL/3 and that expires when it stops. Held answers whether this
// process is the holder now. See docs/rationale.md ("One alert per
// crossing").
type Lease struct {
	kv       jetstream.KeyValue
	key, id  string
	log      *slog.Logger
	rev      uint64
	until    atomic.Int64 // unix nanos until which the lease is ours
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	closeOne sync.Once
}

// NewLease opens the lease named name for the holder id (stable across
// restarts of one process, so a restart takes its own lease back at once),
// tries to take it, and keeps trying or renewing until Close.
func NewLease(ctx context.Context, js jetstream.JetStream, name, id string, log *slog.Logger) (*Lease, error) {
	if log == nil {
		log = slog.Default()
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      LeaseBucket,
		Description: "weir: which process holds which duty",
		History:     1,
		TTL:         LeaseTTL,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, err
	}
	l := &Lease{kv: kv, key: name, id: id, log: log}
	l.try(ctx)
	lctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.wg.Add(1)
	go l.run(lctx)
	return l, nil
}

// Held reports whether this process holds the lease now.
func (l *Lease) Held() bool { return time.Now().UnixNano() < l.until.Load() }

func (l *Lease) run(ctx context.Context) {
	defer l.wg.Done()
	t := time.NewTicker(LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.try(ctx)
		}
	}
}

// try renews a held lease or takes a free one. A renewal that fails for
// want of an answer keeps the lease until it would have expired anyway;
// one that finds another holder gives it up at once.
func (l *Lease) try(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, LeaseTTL/3)
	defer cancel()
	start := time.Now()
	held := l.Held()
	var rev uint64
	var err error
	if held {
		rev, err = l.kv.Update(ctx, l.key, []byte(l.id), l.rev)
	} else {
		rev, err = l.kv.Create(ctx, l.key, []byte(l.id))
		if errors.Is(err, jetstream.ErrKeyExists) {
			// Ours from before a restart? Then renew it.
			if e, gerr := l.kv.Get(ctx, l.key); gerr == nil && string(e.Value()) == l.id {
				rev, err = l.kv.Update(ctx, l.key, []byte(l.id), e.Revision())
			}
		}
	}
	switch {
	case err == nil:
		if !held {
			l.log.Info("nats: lease taken", "lease", l.key, "holder", l.id)
		}
		l.rev = rev
		l.until.Store(start.Add(LeaseTTL - LeaseTTL/5).UnixNano())
	case held && (errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyNotFound)):
		l.log.Info("nats: lease lost to another holder", "lease", l.key, "holder", l.id)
		l.until.Store(0)
	case held:
		l.log.Debug("nats: lease renewal failed; keeping it until it expires", "lease", l.key, "err", err)
	}
}

// Close stops renewing and frees the lease so another process takes it
// without waiting for it to expire.
func (l *Lease) Close(ctx context.Context) error {
	var err error
	l.closeOne.Do(func() {
		l.cancel()
		if err = lifecycle.WaitGroup(ctx, "the lease renewal", &l.wg); err != nil {
			return
		}
		if l.Held() {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			_ = l.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev))
			l.until.Store(0)
		}
	})
	return err
}
