package features

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weirhq/weir/internal/lifecycle"
	"github.com/weirhq/weir/internal/weirerr"
)

// Names fixed by the external contract or owned by this package.
const (
	BucketFeatures      = "weir-features"
	BucketSets          = "weir-featuresets"
	BucketAgg           = "weir-features-agg"
	StreamIngest        = "WEIR_INGEST"
	SubjectIngestPrefix = "weir.ingest."   // + feature set
	SubjectFeatPrefix   = "weir.features." // + entity
	// reservedPrefix starts keys that users may not write: the store keeps
	// its metadata (per feature set expiry) under reservedPrefix+"exp".
	reservedPrefix = "_weir"
	metaKey        = reservedPrefix + "_exp"
)

// Options configure a Store. JS and NC are required; the rest have defaults.
type Options struct {
	NC *nats.Conn
	JS jetstream.JetStream
	// Registerer receives the metrics; nil registers nothing.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// CacheMaxBytes bounds the feature cache (default 64 MiB).
	CacheMaxBytes int64
	// Aggregate runs feature set aggregators in this process. Several
	// processes may set it: a KV lease lets one at a time aggregate a set.
	Aggregate bool
	// FlushInterval is how often aggregates are written to KV (default
	// 200ms): the staleness of aggregates, traded against KV writes.
	FlushInterval time.Duration
	// FlushEvents forces a flush after this many events (default 20000).
	FlushEvents int
	// IngestMaxAge is how long raw events stay in WEIR_INGEST (default 72h).
	IngestMaxAge time.Duration
	// Owner names this process in aggregator leases (natsx.Lease, one per
	// set, LeaseName; default: a random id).
	Owner string
}

func (o *Options) validate() error {
	if o.NC == nil || o.JS == nil {
		return errors.New("features: Options.NC and Options.JS are required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.CacheMaxBytes == 0 {
		o.CacheMaxBytes = 64 << 20
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = 200 * time.Millisecond
	}
	if o.FlushEvents == 0 {
		o.FlushEvents = 20000
	}
	if o.IngestMaxAge == 0 {
		o.IngestMaxAge = 72 * time.Hour
	}
	if o.Owner == "" {
		o.Owner = nats.NewInbox()[len(nats.InboxPrefix):]
	}
	if o.CacheMaxBytes < 0 || o.FlushInterval < 0 || o.FlushEvents < 0 || o.IngestMaxAge < 0 {
		return errors.New("features: negative option")
	}
	return nil
}

// entry is what the cache holds for one entity: the encoded features (nil
// when the entity has none), the KV revision it came from and the earliest
// time some of its fields expire (unix ms, 0 = never).
type entry struct {
	rev  uint64
	data []byte
	exp  int64
	// meta is the live expiry metadata, kept so that an aggregator can
	// rebuild the stored object without reading KV.
	meta map[string]expMeta
}

// Store is the online feature store. It owns a cache, a KV watch, a NATS
// subscription and (with Options.Aggregate) the aggregators; Close stops them.
type Store struct {
	o          Options
	log        *slog.Logger
	m          *metrics
	kv         jetstream.KeyValue
	setsKV     jetstream.KeyValue
	aggKV      jetstream.KeyValue
	stream     jetstream.Stream
	cache      *ristretto.Cache[string, *entry]
	cacheClose sync.Once
	sub        *nats.Subscription
	ctx        context.Context
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	statsMu    sync.Mutex
	stats      map[string]*setStats

	// testSkipCursor makes flushes skip the cursor write, as if the
	// process died right after writing entity states.
	testSkipCursor atomic.Bool

	mu      sync.Mutex
	closed  bool
	sets    map[string]*FeatureSet
	workers map[string]*worker
}

// Open creates (or opens) the buckets and the ingest stream, starts the
// cache-coherence watch and the weir.features.> subscription, and, with
// Options.Aggregate, the aggregators of every feature set.
func Open(ctx context.Context, o Options) (*Store, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, fmt.Errorf("features: register metrics: %w", err)
	}
	s := &Store{o: o, log: o.Logger.With("component", "features"), m: m,
		stats: map[string]*setStats{}, sets: map[string]*FeatureSet{}, workers: map[string]*worker{}}
	if s.kv, err = o.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: BucketFeatures, History: 1}); err != nil {
		return nil, fmt.Errorf("features: open bucket %s: %w", BucketFeatures, err)
	}
	if s.setsKV, err = o.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: BucketSets, History: 1}); err != nil {
		return nil, fmt.Errorf("features: open bucket %s: %w", BucketSets, err)
	}
	if s.aggKV, err = o.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: BucketAgg, History: 1}); err != nil {
		return nil, fmt.Errorf("features: open bucket %s: %w", BucketAgg, err)
	}
	if s.stream, err = o.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       StreamIngest,
		Subjects:   []string{SubjectIngestPrefix + ">"},
		Storage:    jetstream.FileStorage,
		MaxAge:     o.IngestMaxAge,
		Duplicates: 2 * time.Minute,
	}); err != nil {
		return nil, fmt.Errorf("features: open stream %s: %w", StreamIngest, err)
	}
	s.cache, err = ristretto.NewCache(&ristretto.Config[string, *entry]{
		NumCounters: 1 << 20,
		MaxCost:     o.CacheMaxBytes,
		BufferItems: 64,
		// Never let an older revision replace a newer one: the watch and a
		// read-through fill may race.
		ShouldUpdate: func(cur, prev *entry) bool { return cur.rev >= prev.rev },
	})
	if err != nil {
		return nil, fmt.Errorf("features: cache: %w", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	// Deletes are watched too: they invalidate the cache. The watches live
	// as long as the store, not as long as Open's ctx: a watch holds a
	// goroutine until its context ends, so it gets the store's, which Close
	// cancels.
	fw, err := s.kv.WatchAll(s.ctx, jetstream.UpdatesOnly())
	if err != nil {
		s.Close(context.Background())
		return nil, fmt.Errorf("features: watch %s: %w", BucketFeatures, err)
	}
	s.goWatch(fw, s.onFeatureUpdate)
	sw, err := s.setsKV.WatchAll(s.ctx)
	if err != nil {
		s.Close(context.Background())
		return nil, fmt.Errorf("features: watch %s: %w", BucketSets, err)
	}
	s.goWatch(sw, s.onSetUpdate)
	// A queue group: each published object is merged once, by one replica.
	s.sub, err = o.NC.QueueSubscribe(SubjectFeatPrefix+">", "weir-features", s.onFeatureMsg)
	if err == nil {
		// A round trip, so that the server has the subscription when Open
		// returns: a feature object published after that is not dropped
		// for want of interest.
		err = o.NC.FlushTimeout(10 * time.Second)
	}
	if err != nil {
		s.Close(context.Background())
		return nil, fmt.Errorf("features: subscribe %s>: %w", SubjectFeatPrefix, err)
	}
	return s, nil
}

// Close stops the aggregators (flushing what they hold), the watches and the
// subscription. It is safe after a partial Open and more than once.
func (s *Store) Close(ctx context.Context) error {
	if s.sub != nil {
		_ = s.sub.Unsubscribe()
	}
	s.mu.Lock()
	s.closed = true // no new aggregators from the set watch
	ws := s.workers
	s.workers = map[string]*worker{}
	s.mu.Unlock()
	for _, w := range ws {
		w.stop()
	}
	if s.cancel != nil {
		s.cancel()
	}
	if err := lifecycle.WaitGroup(ctx, "the feature store's watches", &s.wg); err != nil {
		// The watches end soon, their context cancelled; the cache they
		// fill closes after them, or its goroutines outlive the store.
		go func() {
			s.wg.Wait()
			s.closeCache()
		}()
		return err
	}
	s.closeCache()
	return nil
}

// closeCache stops the cache's goroutines, once.
func (s *Store) closeCache() {
	s.cacheClose.Do(func() {
		if s.cache != nil {
			s.cache.Close()
		}
	})
}

func (s *Store) goWatch(w jetstream.KeyWatcher, fn func(jetstream.KeyValueEntry)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer w.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e != nil { // nil marks the end of the initial values
					fn(e)
				}
			}
		}
	}()
}

// onFeatureUpdate keeps the cache coherent with writes from any replica.
func (s *Store) onFeatureUpdate(e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		s.cachePut(e.Key(), &entry{rev: e.Revision()})
		return
	}
	en, err := buildEntry(e.Revision(), e.Value(), time.Now().UnixMilli())
	if err != nil {
		s.log.Warn("undecodable feature object in KV", "key", e.Key(), "err", err)
		s.cache.Del(e.Key())
		return
	}
	s.cachePut(e.Key(), en)
}

// cachePut stores an authoritative entry (from the watch or our own write).
// ristretto applies a Set of a present key at once, but queues a new key and
// drops the second of two queued Sets of one key, whatever their order; so
// after queueing a new key we wait and check that an older read-through fill
// did not win, and overwrite it if it did.
func (s *Store) cachePut(key string, en *entry) {
	cost := int64(len(en.data)) + 64
	if _, ok := s.cache.Get(key); ok {
		s.cache.Set(key, en, cost) // in place; ShouldUpdate keeps the newest
		return
	}
	s.cache.Set(key, en, cost)
	s.cache.Wait()
	if cur, ok := s.cache.Get(key); ok && cur.rev < en.rev {
		s.cache.Set(key, en, cost)
	}
}

// cacheFill stores an entry read from KV on a miss. Waiting makes it visible
// before a watch update of the same key can be queued behind it.
func (s *Store) cacheFill(key string, en *entry) {
	s.cache.SetWithTTL(key, en, int64(len(en.data))+64, fillTTL)
	s.cache.Wait()
}

// expMeta is the store's per feature set expiry record, kept in the entity
// object under metaKey and never shown to readers.
type expMeta struct {
	At     int64    `json:"at"`
	Fields []string `json:"fields"`
}

// splitObject decodes a stored object into features (expired fields
// dropped) and metadata.
func splitObject(raw []byte, now int64) (map[string]any, map[string]expMeta, error) {
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		return nil, nil, err
	}
	var meta map[string]expMeta
	if mv, ok := obj[metaKey]; ok {
		delete(obj, metaKey)
		b, _ := json.Marshal(mv)
		_ = json.Unmarshal(b, &meta)
	}
	for set, m := range meta {
		if m.At <= now {
			for _, f := range m.Fields {
				delete(obj, f)
			}
			delete(meta, set)
		}
	}
	if obj == nil {
		obj = map[string]any{}
	}
	return obj, meta, nil
}

func buildEntry(rev uint64, raw []byte, now int64) (*entry, error) {
	obj, meta, err := splitObject(raw, now)
	if err != nil {
		return nil, err
	}
	en := &entry{rev: rev, meta: meta}
	for _, m := range meta {
		if en.exp == 0 || m.At < en.exp {
			en.exp = m.At
		}
	}
	if len(obj) > 0 {
		if en.data, err = json.Marshal(obj); err != nil {
			return nil, err
		}
	}
	return en, nil
}

// ReadFeatures returns the entity's features as a JSON object, from the
// cache when it can: the hot path for plugins. The bytes are shared: callers
// must not modify them. found is false when the entity has no features.
func (s *Store) ReadFeatures(ctx context.Context, entity string) ([]byte, bool, error) {
	if len(entity) == 0 || len(entity) > MaxEntityLen {
		return nil, false, validateEntity(entity)
	}
	key := encodeKey(entity)
	if en, ok := s.cache.Get(key); ok && (en.exp == 0 || en.exp > time.Now().UnixMilli()) {
		s.m.cacheHits.Inc()
		return en.data, en.data != nil, nil
	}
	s.m.cacheMisses.Inc()
	en, err := s.load(ctx, key)
	if err != nil {
		return nil, false, err
	}
	return en.data, en.data != nil, nil
}

// fillTTL bounds how long a read-through entry may live: the watch keeps
// entries current, and this caps the damage of a race we cannot rule out
// (the cache's admission policy refusing a watch update's new key while
// admitting an older fill).
const fillTTL = time.Minute

func (s *Store) load(ctx context.Context, key string) (*entry, error) {
	e, err := s.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		en := &entry{}
		s.cacheFill(key, en)
		return en, nil
	case err != nil:
		return nil, weirerr.Unavailablef("feature store unavailable: %w", err)
	}
	en, err := buildEntry(e.Revision(), e.Value(), time.Now().UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("features: decode %s: %w", key, err)
	}
	s.cacheFill(key, en)
	return en, nil
}

// Get returns a copy of the entity's features.
func (s *Store) Get(ctx context.Context, entity string) (map[string]any, bool, error) {
	b, ok, err := s.ReadFeatures(ctx, entity)
	if err != nil || !ok {
		return nil, false, err
	}
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		return nil, false, fmt.Errorf("features: decode cached %q: %w", entity, err)
	}
	return obj, true, nil
}

// Lookup is Get under the name the gateway's feature join uses: the
// entity's features, to merge into a predict request's event.
func (s *Store) Lookup(ctx context.Context, entity string) (map[string]any, bool, error) {
	return s.Get(ctx, entity)
}

// Merge merges obj's fields into the entity's features (a top-level JSON
// merge patch: a null value removes the field) and returns the result.
// Concurrent writers are serialised by compare-and-swap on the KV revision.
func (s *Store) Merge(ctx context.Context, entity string, obj map[string]any) (map[string]any, error) {
	if err := validateEntity(entity); err != nil {
		return nil, err
	}
	for k := range obj {
		if k == "" || strings.HasPrefix(k, reservedPrefix) {
			return nil, weirerr.Invalidf("feature name %q is not allowed: names must be non-empty and not start with %q", k, reservedPrefix)
		}
	}
	return s.merge(ctx, encodeKey(entity), obj, "", expMeta{})
}

// merge is Merge on an encoded key; a non-empty set also records that set's
// expiry metadata.
func (s *Store) merge(ctx context.Context, key string, obj map[string]any, set string, meta expMeta) (map[string]any, error) {
	for attempt := 0; ; attempt++ {
		var (
			cur   map[string]any
			metas map[string]expMeta
			rev   uint64
		)
		now := time.Now().UnixMilli()
		e, err := s.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			cur = map[string]any{}
		case err != nil:
			return nil, weirerr.Unavailablef("feature store unavailable: %w", err)
		default:
			rev = e.Revision()
			if cur, metas, err = splitObject(e.Value(), now); err != nil {
				// A corrupt object is replaced rather than wedging the entity.
				s.log.Warn("replacing undecodable feature object", "key", key, "err", err)
				cur = map[string]any{}
			}
		}
		for k, v := range obj {
			if v == nil {
				delete(cur, k)
			} else {
				cur[k] = v
			}
		}
		if set != "" {
			if metas == nil {
				metas = map[string]expMeta{}
			}
			if meta.At == 0 {
				delete(metas, set)
			} else {
				metas[set] = meta
			}
		}
		stored := cur
		if len(metas) > 0 {
			stored = maps.Clone(cur)
			stored[metaKey] = metas
		}
		b, err := json.Marshal(stored)
		if err != nil {
			return nil, weirerr.Invalidf("features for %q cannot be encoded as JSON: %w", key, err)
		}
		if rev == 0 {
			_, err = s.kv.Create(ctx, key, b)
		} else {
			_, err = s.kv.Update(ctx, key, b, rev)
		}
		if err == nil {
			s.m.writes.Inc()
			return cur, nil
		}
		if !isConflict(err) || attempt >= 50 {
			return nil, weirerr.Unavailablef("write features of %q: %w", key, err)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// isConflict reports a failed compare-and-swap.
func isConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// onFeatureMsg merges a JSON object published on weir.features.<entity>. A
// request (with a reply subject) gets the merged object or {"error":...}.
func (s *Store) onFeatureMsg(msg *nats.Msg) {
	entity := strings.TrimPrefix(msg.Subject, SubjectFeatPrefix)
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(msg.Data))
	dec.UseNumber()
	err := dec.Decode(&obj)
	if err != nil || obj == nil {
		err = weirerr.Invalidf("message on %s is not a JSON object: %w", msg.Subject, err)
	}
	var res map[string]any
	if err == nil {
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		res, err = s.Merge(ctx, entity, obj)
		cancel()
	}
	if err != nil {
		s.log.Warn("feature message not merged", "subject", msg.Subject, "err", err)
	}
	if msg.Reply != "" {
		var b []byte
		if err != nil {
			b, _ = json.Marshal(map[string]string{"error": err.Error()})
		} else {
			b, _ = json.Marshal(res)
		}
		_ = msg.Respond(b)
	}
}

// SubjectKVPrefix is where JetStream KV buckets keep their keys
// ($KV.<bucket>.<key>); the aggregator publishes there directly to pipeline
// compare-and-swap writes.
const SubjectKVPrefix = "$KV."

// applyPatch applies values (null removes) and a set's expiry metadata to a
// cached entity, returning the object to store and the cache entry it makes
// (its rev still to be filled in).
func applyPatch(en *entry, values map[string]any, set string, meta expMeta, now int64) (stored []byte, next *entry, err error) {
	obj := map[string]any{}
	if en.data != nil {
		dec := json.NewDecoder(bytes.NewReader(en.data))
		dec.UseNumber()
		if err := dec.Decode(&obj); err != nil {
			return nil, nil, fmt.Errorf("features: decode cached entity: %w", err)
		}
	}
	for k, v := range values {
		if v == nil {
			delete(obj, k)
		} else {
			obj[k] = v
		}
	}
	metas := make(map[string]expMeta, len(en.meta)+1)
	for k, m := range en.meta {
		if m.At > now {
			metas[k] = m
		}
	}
	if meta.At == 0 {
		delete(metas, set)
	} else {
		metas[set] = meta
	}
	next = &entry{meta: metas}
	for _, m := range metas {
		if next.exp == 0 || m.At < next.exp {
			next.exp = m.At
		}
	}
	if len(obj) > 0 {
		if next.data, err = json.Marshal(obj); err != nil {
			return nil, nil, err
		}
	}
	if len(metas) > 0 {
		obj[metaKey] = metas
	}
	stored, err = json.Marshal(obj)
	return stored, next, err
}
