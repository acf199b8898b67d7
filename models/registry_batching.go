// A version's dynamic batching setting as the Registry stores it (an
// artifact attribute) and applies it to the version's session.

package models

import (
	"context"
	"encoding/json"

	"github.com/weirhq/weir/internal/artifacts"
	"github.com/weirhq/weir/internal/weirerr"
)

// SetBatching changes name@version's dynamic batching setting everywhere:
// here at once, on other replicas when they see the change. It fails,
// naming the tensor, for a model that cannot be batched, and while the
// version is not loaded here (nothing could check it).
func (r *Registry) SetBatching(ctx context.Context, name, version string, b Batching) error {
	if err := b.Validate(); err != nil {
		return err
	}
	meta, ok, err := r.store.Meta(ctx, name, version)
	if err != nil {
		return err
	}
	if !ok {
		return weirerr.NotFoundf("model %q has no version %q", name, version)
	}
	v, err := r.Get(name, version)
	if err != nil {
		return err
	}
	if v.Meta.Blob != meta.Blob {
		return weirerr.Unavailablef("model %s@%s is being replaced on this gateway; try again shortly", name, version)
	}
	if err := r.setBatching(v.Session, name, version, b); err != nil {
		return err
	}
	attrs := map[string]string{}
	for k, val := range meta.Attrs {
		attrs[k] = val
	}
	delete(attrs, attrBatching)
	if b.Enabled() {
		attrs[attrBatching] = batchingAttr(b)
	}
	meta.Attrs = attrs
	r.mu.Lock()
	if cur := r.versions[name][version]; cur != nil {
		nv := *cur
		nv.Meta = meta
		r.versions[name][version] = &nv
	}
	r.mu.Unlock()
	r.log.Info("model batching set", "model", name, "version", version, "batching", b.String())
	return r.store.PutMeta(ctx, meta)
}

// setBatching applies b to name@version's session, capped by this
// replica's MaxBatchRows.
func (r *Registry) setBatching(s *Session, name, version string, b Batching) error {
	if err := b.Validate(); err != nil {
		return err
	}
	if b.Enabled() {
		if err := s.CheckBatchable(); err != nil {
			return err
		}
	}
	limit := r.opts.MaxBatchRows
	if limit <= 0 || limit > MaxBatchRows {
		limit = MaxBatchRows
	}
	if b.MaxBatchSize > limit {
		b.MaxBatchSize = max(limit, 2)
		var kept []int
		for _, p := range b.PreferredBatchSizes {
			if p <= b.MaxBatchSize {
				kept = append(kept, p)
			}
		}
		b.PreferredBatchSizes = kept
	}
	obs := r.batchN.WithLabelValues(name, version)
	s.observeBatches(func(n int) { obs.Observe(float64(n)) })
	return s.SetBatching(b)
}

// applyBatching applies the setting stored in meta (none: off) to a
// session loaded or changed by another replica's announcement.
func (r *Registry) applyBatching(s *Session, meta artifacts.Meta) {
	var b Batching
	if a := meta.Attrs[attrBatching]; a != "" {
		var err error
		if b, err = parseBatching(a); err != nil {
			r.log.Error("stored batching setting is unreadable; batching stays off", "model", meta.Name, "version", meta.Version, "err", err)
			b = Batching{}
		}
	}
	if err := r.setBatching(s, meta.Name, meta.Version, b); err != nil {
		r.log.Error("stored batching setting does not fit the model; batching stays off", "model", meta.Name, "version", meta.Version, "err", err)
		_ = s.SetBatching(Batching{})
	}
}

func batchingAttr(b Batching) string {
	j, _ := json.Marshal(b)
	return string(j)
}

func parseBatching(s string) (Batching, error) {
	var b Batching
	if err := json.Unmarshal([]byte(s), &b); err != nil {
		return Batching{}, err
	}
	return b, b.Validate()
}
