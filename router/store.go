package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/internal/lifecycle"
	"github.com/weirhq/weir/internal/weirerr"
)

// Bucket is the JetStream KV bucket holding routes: key = route name (with
// "." escaped), value = the route's JSON as GET returns it.
const Bucket = "weir-routes"

// maxCASRetries bounds UpdateVariants' compare-and-swap loop.
const maxCASRetries = 16

// Store keeps routes in JetStream KV and serves them from memory. A KV watch
// keeps every replica's table current; the table is an immutable map
// replaced atomically, so a request keeps the *Route it started with.
type Store struct {
	kv     jetstream.KeyValue
	logger *slog.Logger

	table atomic.Pointer[map[string]*Route]

	mu      sync.Mutex
	applied uint64        // highest KV revision applied to table
	notify  chan struct{} // closed and replaced after each apply
	hooks   map[int]func(name string)
	nextID  int

	watcher jetstream.KeyWatcher
	cancel  context.CancelFunc
	done    chan struct{}
	closed  atomic.Bool
}

// OpenStore opens (creating if needed) the routes bucket, loads every route
// and starts watching for changes. It returns once the table holds all
// routes present at open time. Close stops the watch.
func OpenStore(ctx context.Context, js jetstream.JetStream, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.Default()
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "weir routes (router package)",
		History:     5,
	})
	if err != nil {
		return nil, fmt.Errorf("open kv bucket %s: %w", Bucket, err)
	}
	s := &Store{
		kv:     kv,
		logger: logger.With("component", "router"),
		notify: make(chan struct{}),
		hooks:  map[int]func(string){},
		done:   make(chan struct{}),
	}
	empty := map[string]*Route{}
	s.table.Store(&empty)

	wctx, cancel := context.WithCancel(context.Background())
	w, err := kv.WatchAll(wctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch kv bucket %s: %w", Bucket, err)
	}
	s.watcher, s.cancel = w, cancel

	// The watcher sends every current value, then nil; apply those before
	// returning so Get works at once.
	initial := map[string]*Route{}
	var last uint64
loop:
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				cancel()
				return nil, fmt.Errorf("watch kv bucket %s: closed during initial load", Bucket)
			}
			if e == nil {
				break loop
			}
			last = e.Revision()
			if r := s.decode(e); r != nil {
				initial[r.name] = r
			}
		case <-ctx.Done():
			_ = w.Stop()
			cancel()
			return nil, fmt.Errorf("load routes: %w", ctx.Err())
		}
	}
	s.table.Store(&initial)
	s.applied = last
	go s.watch()
	return s, nil
}

// decode turns a KV put into a Route; nil for deletes and corrupt values.
func (s *Store) decode(e jetstream.KeyValueEntry) *Route {
	if e.Operation() != jetstream.KeyValuePut {
		return nil
	}
	name := keyName(e.Key())
	r, err := Parse(name, e.Value())
	if err != nil {
		s.logger.Error("skipping invalid route in kv", "route", name, "revision", e.Revision(), "err", err)
		return nil
	}
	var meta struct {
		UpdatedAt time.Time `json:"updated_at"`
	}
	_ = json.Unmarshal(e.Value(), &meta) // Parse already checked it decodes
	r.revision = e.Revision()
	r.updatedAt = meta.UpdatedAt
	if r.updatedAt.IsZero() {
		r.updatedAt = e.Created()
	}
	return r
}

func (s *Store) watch() {
	defer close(s.done)
	for e := range s.watcher.Updates() {
		if e == nil {
			continue
		}
		name := keyName(e.Key())
		r := s.decode(e)
		old := *s.table.Load()
		next := make(map[string]*Route, len(old)+1)
		for k, v := range old {
			next[k] = v
		}
		if r != nil {
			next[name] = r
		} else {
			delete(next, name)
		}
		s.table.Store(&next)

		s.mu.Lock()
		s.applied = e.Revision()
		close(s.notify)
		s.notify = make(chan struct{})
		hooks := make([]func(string), 0, len(s.hooks))
		for _, h := range s.hooks {
			hooks = append(hooks, h)
		}
		s.mu.Unlock()
		for _, h := range hooks {
			h(name)
		}
	}
}

// waitApplied blocks until the watcher has applied KV revision rev, so a
// caller reads its own writes.
func (s *Store) waitApplied(ctx context.Context, rev uint64) error {
	for {
		s.mu.Lock()
		applied, ch := s.applied, s.notify
		s.mu.Unlock()
		if applied >= rev {
			return nil
		}
		select {
		case <-ch:
		case <-s.done:
			return errors.New("route store closed")
		case <-ctx.Done():
			return fmt.Errorf("waiting for route revision %d: %w", rev, ctx.Err())
		}
	}
}

// Get returns the current route named name.
func (s *Store) Get(name string) (*Route, bool) {
	r, ok := (*s.table.Load())[name]
	return r, ok
}

// List returns every route, sorted by name.
func (s *Store) List() []*Route {
	t := *s.table.Load()
	out := make([]*Route, 0, len(t))
	for _, r := range t {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *Route) int { return strings.Compare(a.name, b.name) })
	return out
}

// Put validates raw (the body of PUT /v1/routes/{name}) and stores it,
// replacing any route of that name. It returns the stored route once this
// Store serves it. Validation errors are weirerr Invalid (400).
func (s *Store) Put(ctx context.Context, name string, raw []byte) (*Route, error) {
	r, err := Parse(name, raw)
	if err != nil {
		return nil, err
	}
	data, err := storedJSON(r)
	if err != nil {
		return nil, err
	}
	rev, err := s.kv.Put(ctx, nameKey(name), data)
	if err != nil {
		return nil, weirerr.Unavailablef("store route %q: %w", name, err)
	}
	return s.afterWrite(ctx, name, rev)
}

func (s *Store) afterWrite(ctx context.Context, name string, rev uint64) (*Route, error) {
	if err := s.waitApplied(ctx, rev); err != nil {
		return nil, err
	}
	r, ok := s.Get(name)
	if !ok {
		// Deleted again by someone else between our write and now.
		return nil, weirerr.Conflictf("route %q was deleted while being written", name)
	}
	return r, nil
}

func storedJSON(r *Route) ([]byte, error) {
	c := *r
	c.revision = 0 // the KV revision is the truth
	c.updatedAt = time.Now().UTC()
	return json.Marshal(&c)
}

// Delete removes the route. Unknown route: weirerr NotFound (404).
func (s *Store) Delete(ctx context.Context, name string) error {
	r, ok := s.Get(name)
	if !ok {
		return weirerr.NotFoundf("route %q not found", name)
	}
	if err := s.kv.Delete(ctx, nameKey(name), jetstream.LastRevision(r.revision)); err != nil {
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			return weirerr.Conflictf("route %q changed while being deleted: try again", name)
		}
		return weirerr.Unavailablef("delete route %q: %w", name, err)
	}
	// Wait until the watcher has seen the delete (or anything newer).
	for {
		s.mu.Lock()
		ch := s.notify
		s.mu.Unlock()
		cur, ok := s.Get(name)
		if !ok || cur.revision != r.revision {
			return nil
		}
		select {
		case <-ch:
		case <-s.done:
			return errors.New("route store closed")
		case <-ctx.Done():
			return fmt.Errorf("waiting for delete of route %q: %w", name, ctx.Err())
		}
	}
}

// UpdateVariants rewrites the route's variants with fn (see Update).
func (s *Store) UpdateVariants(ctx context.Context, name string, fn func(vs []Variant) ([]Variant, error)) error {
	return s.Update(ctx, name, func(cfg Config) (Config, error) {
		vs, err := fn(cfg.Variants)
		cfg.Variants = vs
		return cfg, err
	})
}

// Update rewrites the route's configuration with fn, compare-and-swap on
// the KV revision: on a concurrent change it re-reads the route and calls fn
// again. fn gets a copy it may modify; its result is validated like a PUT.
// When fn returns the configuration unchanged nothing is written.
func (s *Store) Update(ctx context.Context, name string, fn func(cfg Config) (Config, error)) error {
	for range maxCASRetries {
		e, err := s.kv.Get(ctx, nameKey(name))
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			return weirerr.NotFoundf("route %q not found", name)
		}
		if err != nil {
			return weirerr.Unavailablef("read route %q: %w", name, err)
		}
		cur, err := Parse(name, e.Value())
		if err != nil {
			return fmt.Errorf("route %q in kv is invalid: %w", name, err)
		}
		cfg, err := fn(cur.Config())
		if err != nil {
			return err
		}
		if reflect.DeepEqual(cfg, cur.cfg) {
			return s.waitApplied(ctx, e.Revision())
		}
		next, err := Compile(name, cfg)
		if err != nil {
			return err
		}
		data, err := storedJSON(next)
		if err != nil {
			return err
		}
		rev, err := s.kv.Update(ctx, nameKey(name), data, e.Revision())
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			return weirerr.Unavailablef("store route %q: %w", name, err)
		}
		return s.waitApplied(ctx, rev)
	}
	return weirerr.Conflictf("route %q kept changing: gave up after %d attempts", name, maxCASRetries)
}

// References lists the routes that send traffic to model/version: a variant
// with weight > 0 or a shadow naming exactly that version. Versions compare
// literally: a route on "latest" (or no version) is listed only for
// version "latest" or "", because deleting one concrete version does not
// break it while another remains. The gateway uses this for the 409 on
// DELETE /v1/models/{name}/versions/{v}.
func (s *Store) References(model, version string) []string {
	var out []string
	for _, r := range s.List() {
		hit := false
		for _, v := range r.cfg.Variants {
			if v.Weight > 0 && v.Model == model && sameVersion(v.Version, version) {
				hit = true
			}
		}
		if sh := r.cfg.Shadow; sh != nil && sh.Model == model && sameVersion(sh.Version, version) {
			hit = true
		}
		if hit {
			out = append(out, r.name)
		}
	}
	return out
}

// PluginReferences lists the routes whose plugin or postprocess chains (the
// route's or a variant's) name plugin name/version (versions compare as in
// References).
func (s *Store) PluginReferences(name, version string) []string {
	var out []string
	for _, r := range s.List() {
		uses := func(ps []PluginRef) bool {
			for _, p := range ps {
				if p.Name == name && sameVersion(p.Version, version) {
					return true
				}
			}
			return false
		}
		hit := uses(r.cfg.Plugins) || uses(r.cfg.Postprocess)
		for _, v := range r.cfg.Variants {
			hit = hit || (v.Plugins != nil && uses(*v.Plugins)) || (v.Postprocess != nil && uses(*v.Postprocess))
		}
		if hit {
			out = append(out, r.name)
		}
	}
	return out
}

func sameVersion(a, b string) bool {
	if a == "" {
		a = "latest"
	}
	if b == "" {
		b = "latest"
	}
	return a == b
}

// OnChange registers fn to be called with a route's name after every change
// to it seen by this Store (from any replica), once the new table is in
// place. fn runs on the watch goroutine and must not block nor write to
// the Store (Put, Delete and UpdateVariants wait for that goroutine). The returned
// func unregisters it.
func (s *Store) OnChange(fn func(name string)) (unregister func()) {
	s.mu.Lock()
	id := s.nextID
	s.nextID++
	s.hooks[id] = fn
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.hooks, id)
		s.mu.Unlock()
	}
}

// Close stops the KV watch and waits for the watch goroutine to end. The
// table keeps serving its last value.
func (s *Store) Close(ctx context.Context) error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	_ = s.watcher.Stop()
	s.cancel()
	return lifecycle.Wait(ctx, "the route watch", s.done)
}

// KV keys may not contain "..", start or end with "."; route names may. The
// escape cannot collide because names never contain "=".
func nameKey(name string) string { return strings.ReplaceAll(name, ".", "=2E") }
func keyName(key string) string  { return strings.ReplaceAll(key, "=2E", ".") }
