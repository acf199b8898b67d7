package canary

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weirhq/weir/internal/lifecycle"
	"github.com/weirhq/weir/internal/natsx"
	"github.com/weirhq/weir/internal/promx"
	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/monitor/event"
)

// Bucket is the JetStream KV bucket holding rollout state ("route.<name>").
const Bucket = "weir-rollouts"

// LeaseName is the controller lease's name in natsx.LeaseBucket: the one
// replica that holds it drives rollouts.
const LeaseName = "rollouts"

const (
	routeKeyPrefix = "route."
	maxCASRetries  = 16
	// maxRetryDelay caps the back-off of a rollout that keeps failing to
	// reconcile (it starts at one Tick and doubles).
	maxRetryDelay = time.Minute
)

// Options configure a Controller. JS, Conn, Routes and Metrics are required.
type Options struct {
	JS      jetstream.JetStream
	Conn    *nats.Conn // transitions are published on weir.rollouts.<route>
	Routes  Routes
	Metrics Metrics
	Drift   Drift // optional: without it drift is not judged
	Logger  *slog.Logger
	// Registerer receives weir_rollout_transitions_total; nil: not exported.
	Registerer prometheus.Registerer
	// Tick is how often the lease holder looks at active rollouts; keep it a
	// fraction of the shortest interval. Default 1s.
	Tick time.Duration
	// Owner names this replica in the lease (natsx.Lease, which expires on
	// the server's clock); default host-pid-random.
	Owner string
}

func (o *Options) validate() error {
	switch {
	case o.JS == nil:
		return errors.New("canary: Options.JS is required")
	case o.Conn == nil:
		return errors.New("canary: Options.Conn is required")
	case o.Routes == nil:
		return errors.New("canary: Options.Routes is required")
	case o.Metrics == nil:
		return errors.New("canary: Options.Metrics is required")
	case o.Tick < 0:
		return errors.New("canary: Options.Tick must not be negative")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Tick == 0 {
		o.Tick = time.Second
	}
	if o.Owner == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		o.Owner = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	return nil
}

// Controller drives rollouts. Every replica can start, inspect and change
// rollouts (all state is in KV, written compare-and-swap); only the holder
// of the lease runs the analysis loop. See the package doc.
type Controller struct {
	o           Options
	kv          jetstream.KeyValue
	log         *slog.Logger
	transitions *prometheus.CounterVec

	watcher jetstream.KeyWatcher
	mu      sync.Mutex
	active  map[string]bool // routes whose rollout needs the loop's attention

	// lease lets one replica at a time run the analysis loop. It expires on
	// the NATS server's clock (the bucket's TTL), never by comparing a
	// stored expiry with this machine's clock.
	lease *natsx.Lease

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// New opens the rollout bucket and starts the loop. Close stops it.
func New(ctx context.Context, o Options) (*Controller, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	kv, err := o.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "weir canary rollouts",
		History:     5,
	})
	if err != nil {
		return nil, fmt.Errorf("open kv bucket %s: %w", Bucket, err)
	}
	c := &Controller{
		o:      o,
		kv:     kv,
		log:    o.Logger.With("component", "canary", "owner", o.Owner),
		active: map[string]bool{},
		done:   make(chan struct{}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_rollout_transitions_total",
			Help: "Canary rollout state transitions (including step advances), by route and new state.",
		}, []string{"route", "to"}),
	}
	if o.Registerer != nil {
		var err error
		if c.transitions, err = promx.Register(o.Registerer, c.transitions); err != nil {
			return nil, fmt.Errorf("register rollout metrics: %w", err)
		}
	}
	if c.lease, err = natsx.NewLease(ctx, o.JS, LeaseName, o.Owner, c.log); err != nil {
		return nil, fmt.Errorf("open the rollout lease: %w", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	w, err := kv.Watch(lctx, routeKeyPrefix+">")
	if err != nil {
		cancel()
		_ = c.lease.Close(ctx)
		return nil, fmt.Errorf("watch kv bucket %s: %w", Bucket, err)
	}
	c.watcher = w
	go c.run(lctx)
	return c, nil
}

// Close stops the loop and, if this replica holds the lease, releases it so
// another replica takes over at once rather than after LeaseTTL.
func (c *Controller) Close(ctx context.Context) error {
	var err error
	c.once.Do(func() {
		c.cancel()
		_ = c.watcher.Stop()
		if err = lifecycle.Wait(ctx, "the rollout loop", c.done); err != nil {
			return
		}
		err = c.lease.Close(ctx)
	})
	return err
}

func (c *Controller) run(ctx context.Context) {
	defer close(c.done)
	t := time.NewTicker(c.o.Tick)
	defer t.Stop()
	failing := newRetries(c.o.Tick, maxRetryDelay)
	updates := c.watcher.Updates()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-updates:
			if !ok {
				updates = nil // watcher stopped; Close is on its way
				continue
			}
			c.track(e)
		case <-t.C:
			if !c.lease.Held() {
				continue
			}
			c.mu.Lock()
			routes := make([]string, 0, len(c.active))
			for r := range c.active {
				routes = append(routes, r)
			}
			c.mu.Unlock()
			now := time.Now()
			for _, r := range routes {
				if !failing.due(r, now) {
					continue
				}
				_, err := c.Reconcile(ctx, r)
				switch {
				case ctx.Err() != nil:
					return
				case err != nil:
					if logIt, wait := failing.failed(r, now, err); logIt {
						c.log.Error("reconcile rollout; retrying with back-off", "route", r, "retry_in", wait, "err", err)
					}
				case failing.succeeded(r):
					c.log.Info("reconcile rollout recovered", "route", r)
				}
			}
		}
	}
}

// track keeps the set of rollouts that need the loop: progressing ones and
// any whose route change is still pending.
func (c *Controller) track(e jetstream.KeyValueEntry) {
	if e == nil {
		return
	}
	route := keyRoute(e.Key())
	need := false
	if e.Operation() == jetstream.KeyValuePut {
		var st Status
		if err := json.Unmarshal(e.Value(), &st); err == nil {
			need = st.State == Progressing || st.Generation != st.AppliedGeneration
		}
	}
	c.mu.Lock()
	if need {
		c.active[route] = true
	} else {
		delete(c.active, route)
	}
	c.mu.Unlock()
}

// Leader reports whether this replica currently holds the lease.
func (c *Controller) Leader() bool { return c.lease.Held() }

var errUnchanged = errors.New("unchanged")

// update is the one way rollout state is written: read, apply fn, write
// compare-and-swap on the KV revision, retry on conflict. A non-nil
// Transition from fn is recorded in History, bumps Generation (so the route
// is rewritten), and once written is published, logged and counted. fn
// returning errUnchanged skips the write.
func (c *Controller) update(ctx context.Context, route string, fn func(st *Status, exists bool) (*Transition, error)) (*Status, error) {
	key := routeKey(route)
	for range maxCASRetries {
		var st Status
		var rev uint64
		e, err := c.kv.Get(ctx, key)
		exists := err == nil
		switch {
		case exists:
			rev = e.Revision()
			if err := json.Unmarshal(e.Value(), &st); err != nil {
				return nil, fmt.Errorf("rollout state of route %q is corrupt: %w", route, err)
			}
		case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		default:
			return nil, weirerr.Unavailablef("read rollout state of route %q: %w", route, err)
		}
		tr, err := fn(&st, exists)
		if errors.Is(err, errUnchanged) {
			return finish(&st), nil
		}
		if err != nil {
			return nil, err
		}
		now := time.Now().UTC()
		st.UpdatedAt = now
		if tr != nil {
			if tr.TS.IsZero() {
				tr.TS = now
			}
			tr.Route, tr.To, tr.Step, tr.Weight, tr.By = route, st.State, st.Step, st.Weight, c.o.Owner
			st.History = append(st.History, *tr)
			if n := len(st.History); n > maxHistory {
				st.History = append([]Transition(nil), st.History[n-maxHistory:]...)
			}
			st.Generation++
		}
		data, err := json.Marshal(finish(&st))
		if err != nil {
			return nil, err
		}
		if exists {
			_, err = c.kv.Update(ctx, key, data, rev)
		} else {
			_, err = c.kv.Create(ctx, key, data)
		}
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			return nil, weirerr.Unavailablef("write rollout state of route %q: %w", route, err)
		}
		if tr != nil {
			c.announce(*tr)
		}
		return &st, nil
	}
	return nil, weirerr.Conflictf("rollout of route %q kept changing: gave up after %d attempts", route, maxCASRetries)
}

func finish(st *Status) *Status {
	st.RouteApplied = st.Generation == st.AppliedGeneration
	return st
}

// announce publishes, logs and counts a transition: no silent rollback.
func (c *Controller) announce(tr Transition) {
	c.transitions.WithLabelValues(tr.Route, string(tr.To)).Inc()
	lvl := slog.LevelInfo
	if tr.To == RolledBack {
		lvl = slog.LevelWarn
	}
	c.log.Log(context.Background(), lvl, "rollout transition", "route", tr.Route, "from", tr.From, "to", tr.To,
		"step", tr.Step, "weight", tr.Weight, "reason", tr.Reason)
	data, _ := json.Marshal(tr)
	if err := c.o.Conn.Publish(event.SubjectRolloutPrefix+tr.Route, data); err != nil {
		c.log.Error("publish rollout transition", "route", tr.Route, "err", err)
	}
}

func routeKey(route string) string { return routeKeyPrefix + strings.ReplaceAll(route, ".", "=2E") }
func keyRoute(key string) string {
	return strings.ReplaceAll(strings.TrimPrefix(key, routeKeyPrefix), "=2E", ".")
}
