package natsx

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/internal/retry"
)

// WithReplicas returns js such that every KV bucket, object store and
// stream created or updated through it gets at least n replicas: the one
// place where weir's --nats-replicas is applied, so the packages that own
// buckets keep calling CreateOrUpdateKeyValue and friends as before. An
// existing asset with fewer replicas is raised (JetStream moves the data);
// one with more keeps them; either mismatch is logged. n <= 1 changes
// nothing.
func WithReplicas(js jetstream.JetStream, n int, log *slog.Logger) jetstream.JetStream {
	if n <= 1 {
		return js
	}
	if log == nil {
		log = slog.Default()
	}
	return &replicated{JetStream: js, n: n, log: log}
}

type replicated struct {
	jetstream.JetStream
	n   int
	log *slog.Logger
}

// Replicas is the replica count to ask for an asset backed by stream that
// was configured with asked: the larger of asked, want and what the asset
// already has.
func Replicas(ctx context.Context, js jetstream.JetStream, stream string, asked, want int, log *slog.Logger) int {
	want = max(asked, want, 1)
	if log == nil {
		log = slog.Default()
	}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			log.Debug("nats: could not look at an asset's replicas", "stream", stream, "err", err)
		}
		return want
	}
	have := s.CachedInfo().Config.Replicas
	switch {
	case have > want:
		log.Warn("nats: asset keeps more replicas than --nats-replicas asks", "stream", stream, "replicas", have, "nats_replicas", want)
		return have
	case have < want:
		log.Warn("nats: raising an asset's replicas to --nats-replicas", "stream", stream, "replicas", have, "nats_replicas", want)
	}
	return want
}

func (r *replicated) replicas(ctx context.Context, stream string, asked int) int {
	return Replicas(ctx, r.JetStream, stream, asked, r.n, r.log)
}

func (r *replicated) CreateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	cfg.Replicas = r.replicas(ctx, cfg.Name, cfg.Replicas)
	return placed(ctx, r.log, cfg.Name, func() (jetstream.Stream, error) { return r.JetStream.CreateStream(ctx, cfg) })
}

func (r *replicated) UpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	cfg.Replicas = r.replicas(ctx, cfg.Name, cfg.Replicas)
	return placed(ctx, r.log, cfg.Name, func() (jetstream.Stream, error) { return r.JetStream.UpdateStream(ctx, cfg) })
}

func (r *replicated) CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	cfg.Replicas = r.replicas(ctx, cfg.Name, cfg.Replicas)
	return placed(ctx, r.log, cfg.Name, func() (jetstream.Stream, error) { return r.JetStream.CreateOrUpdateStream(ctx, cfg) })
}

func (r *replicated) CreateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	cfg.Replicas = r.replicas(ctx, "KV_"+cfg.Bucket, cfg.Replicas)
	return r.wrapKV(placed(ctx, r.log, "KV_"+cfg.Bucket, func() (jetstream.KeyValue, error) { return r.JetStream.CreateKeyValue(ctx, cfg) }))
}

func (r *replicated) UpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	cfg.Replicas = r.replicas(ctx, "KV_"+cfg.Bucket, cfg.Replicas)
	return r.wrapKV(placed(ctx, r.log, "KV_"+cfg.Bucket, func() (jetstream.KeyValue, error) { return r.JetStream.UpdateKeyValue(ctx, cfg) }))
}

func (r *replicated) CreateOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	cfg.Replicas = r.replicas(ctx, "KV_"+cfg.Bucket, cfg.Replicas)
	return r.wrapKV(placed(ctx, r.log, "KV_"+cfg.Bucket, func() (jetstream.KeyValue, error) { return r.JetStream.CreateOrUpdateKeyValue(ctx, cfg) }))
}

func (r *replicated) CreateObjectStore(ctx context.Context, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	cfg.Replicas = r.replicas(ctx, "OBJ_"+cfg.Bucket, cfg.Replicas)
	return placed(ctx, r.log, "OBJ_"+cfg.Bucket, func() (jetstream.ObjectStore, error) { return r.JetStream.CreateObjectStore(ctx, cfg) })
}

func (r *replicated) UpdateObjectStore(ctx context.Context, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	cfg.Replicas = r.replicas(ctx, "OBJ_"+cfg.Bucket, cfg.Replicas)
	return placed(ctx, r.log, "OBJ_"+cfg.Bucket, func() (jetstream.ObjectStore, error) { return r.JetStream.UpdateObjectStore(ctx, cfg) })
}

func (r *replicated) CreateOrUpdateObjectStore(ctx context.Context, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	cfg.Replicas = r.replicas(ctx, "OBJ_"+cfg.Bucket, cfg.Replicas)
	return placed(ctx, r.log, "OBJ_"+cfg.Bucket, func() (jetstream.ObjectStore, error) { return r.JetStream.CreateOrUpdateObjectStore(ctx, cfg) })
}

// PlacementWait bounds how long creating or updating a replicated asset
// waits for the cluster to have enough peers online (a gateway started
// with the NATS nodes that are still forming their cluster), unless the
// caller's context ends first.
const PlacementWait = time.Minute

// errNoPeers is JetStream's "no suitable peers for placement": fewer
// servers are online (or known to the meta leader yet) than the asset
// has replicas.
const errNoPeers = 10005

// placed calls create until it succeeds, fails for another reason than
// missing peers, or PlacementWait or ctx ends, logging the wait once.
func placed[T any](ctx context.Context, log *slog.Logger, stream string, create func() (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, PlacementWait)
	defer cancel()
	backoff := retry.Backoff{Base: 50 * time.Millisecond, Max: time.Second}
	for logged := false; ; logged = true {
		v, err := create()
		var apiErr *jetstream.APIError
		if err == nil || !errors.As(err, &apiErr) || apiErr.ErrorCode != errNoPeers {
			return v, err
		}
		if !logged {
			log.Warn("nats: waiting for enough cluster peers to place an asset's replicas", "stream", stream, "err", err)
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(backoff.Next()):
		}
	}
}

// Asset is one JetStream asset as `weir status` shows it.
type Asset struct {
	Kind     string `json:"kind"` // kv | object_store | stream
	Name     string `json:"name"` // bucket or stream name
	Replicas int    `json:"replicas"`
	// Leader is the server that leads the asset's Raft group ("" on a
	// single server, or while there is none).
	Leader   string `json:"leader,omitempty"`
	Cluster  string `json:"cluster,omitempty"`
	Peers    []Peer `json:"peers,omitempty"` // the other replicas
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
}

// Peer is a replica other than the leader.
type Peer struct {
	Name    string `json:"name"`
	Current bool   `json:"current"`
	Offline bool   `json:"offline,omitempty"`
}

// Assets lists every stream of the account as a KV bucket, object store or
// stream, sorted by kind and name.
func Assets(ctx context.Context, js jetstream.JetStream) ([]Asset, error) {
	l := js.ListStreams(ctx)
	var out []Asset
	for info := range l.Info() {
		a := Asset{Kind: "stream", Name: info.Config.Name, Replicas: info.Config.Replicas,
			Messages: info.State.Msgs, Bytes: info.State.Bytes}
		if b, ok := strings.CutPrefix(a.Name, "KV_"); ok {
			a.Kind, a.Name = "kv", b
		} else if b, ok := strings.CutPrefix(a.Name, "OBJ_"); ok {
			a.Kind, a.Name = "object_store", b
		}
		if c := info.Cluster; c != nil {
			a.Leader, a.Cluster = c.Leader, c.Name
			for _, p := range c.Replicas {
				a.Peers = append(a.Peers, Peer{Name: p.Name, Current: p.Current, Offline: p.Offline})
			}
		}
		out = append(out, a)
	}
	if err := l.Err(); err != nil {
		return out, err
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}
