package features

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/internal/weirerr"
)

// DefineSet validates and stores a feature set (PUT /v1/featuresets/{name}).
// Every replica learns it through the KV watch. Redefining a set restarts
// its aggregates from empty (the old state belongs to the old definition).
func (s *Store) DefineSet(ctx context.Context, name string, raw []byte) (*FeatureSet, error) {
	fs, err := ParseSet(name, raw)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(fs)
	if err != nil {
		return nil, fmt.Errorf("features: encode set %q: %w", name, err)
	}
	rev, err := s.setsKV.Put(ctx, name, b)
	if err != nil {
		return nil, weirerr.Unavailablef("store feature set %q: %w", name, err)
	}
	fs.Revision = rev
	s.installSet(fs)
	return fs, nil
}

// GetSet returns a stored feature set, or a weirerr.NotFound.
func (s *Store) GetSet(ctx context.Context, name string) (*FeatureSet, error) {
	if err := validateSetName(name); err != nil {
		return nil, err
	}
	e, err := s.setsKV.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, weirerr.NotFoundf("feature set %q not found", name)
	}
	if err != nil {
		return nil, weirerr.Unavailablef("read feature set %q: %w", name, err)
	}
	return decodeSet(e)
}

func decodeSet(e jetstream.KeyValueEntry) (*FeatureSet, error) {
	var fs FeatureSet
	if err := json.Unmarshal(e.Value(), &fs); err != nil {
		return nil, fmt.Errorf("features: decode set %q: %w", e.Key(), err)
	}
	fs.Name = e.Key()
	if err := fs.compile(); err != nil {
		return nil, err
	}
	fs.Revision = e.Revision()
	return &fs, nil
}

// ListSets returns all feature sets, sorted by name.
func (s *Store) ListSets(ctx context.Context) ([]*FeatureSet, error) {
	lister, err := s.setsKV.ListKeys(ctx)
	if err != nil {
		return nil, weirerr.Unavailablef("list feature sets: %w", err)
	}
	var out []*FeatureSet
	for k := range lister.Keys() {
		fs, err := s.GetSet(ctx, k)
		if weirerr.KindOf(err) == weirerr.NotFound {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, fs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// DeleteSet removes a feature set; its aggregator stops on every replica.
// Features already written stay until their TTL.
func (s *Store) DeleteSet(ctx context.Context, name string) error {
	if _, err := s.GetSet(ctx, name); err != nil {
		return err
	}
	if err := s.setsKV.Delete(ctx, name); err != nil {
		return weirerr.Unavailablef("delete feature set %q: %w", name, err)
	}
	s.removeSet(name)
	return nil
}

// set returns the current definition known to this process.
func (s *Store) set(name string) *FeatureSet {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sets[name]
}

func (s *Store) onSetUpdate(e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		s.removeSet(e.Key())
		return
	}
	fs, err := decodeSet(e)
	if err != nil {
		s.log.Warn("ignoring invalid feature set in KV", "set", e.Key(), "err", err)
		return
	}
	s.installSet(fs)
}

// installSet records a definition (if newer) and starts or updates its
// aggregator.
func (s *Store) installSet(fs *FeatureSet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if old := s.sets[fs.Name]; old != nil && old.Revision >= fs.Revision {
		return
	}
	s.sets[fs.Name] = fs
	if !s.o.Aggregate {
		return
	}
	if w := s.workers[fs.Name]; w != nil {
		w.def.Store(fs)
		return
	}
	w := newWorker(s, fs)
	s.workers[fs.Name] = w
	w.start()
}

func (s *Store) removeSet(name string) {
	s.mu.Lock()
	delete(s.sets, name)
	w := s.workers[name]
	delete(s.workers, name)
	s.mu.Unlock()
	if w != nil {
		w.stop()
	}
}
