// Reading the Registry and changing what this process serves: Get, Has, the
// listing (List, Model) and Load/Unload.

package models

import (
	"sort"
	"strings"
	"time"

	"github.com/weirhq/weir/internal/weirerr"
)

// Get returns name@version; version "" or "latest" means the most recently
// uploaded version that loaded. Errors: NotFound for unknown names and
// versions, Unavailable while the version is loading, Upstream when it
// failed to load here.
func (r *Registry) Get(name, version string) (*Version, error) {
	r.mu.RLock()
	vs := r.versions[name]
	n := len(vs)
	var v *Version
	var known string
	if version == "" || version == "latest" {
		v = latest(vs)
	} else if v = vs[version]; v == nil && n > 0 {
		known = strings.Join(versionNames(vs), ", ")
	}
	r.mu.RUnlock() // vs is written under the lock: read nothing of it past here
	switch {
	case n == 0:
		return nil, weirerr.NotFoundf("model %q not found", name)
	case v == nil && (version == "" || version == "latest"):
		return nil, weirerr.Unavailablef("model %q has no version ready yet", name)
	case v == nil:
		return nil, weirerr.NotFoundf("model %q has no version %q (versions: %s)", name, version, known)
	case v.State == Loading:
		return v, weirerr.Unavailablef("model %s@%s is loading", name, v.Version)
	case v.State == Failed:
		return v, weirerr.Unavailablef("model %s@%s failed to load on this gateway: %s", name, v.Version, v.Err)
	case v.State == Unloaded:
		return v, weirerr.Unavailablef("model %s@%s is unloaded on this gateway (POST /v2/repository/models/%s/load serves it again)", name, v.Version, name)
	}
	return v, nil
}

// Unload stops serving name@version in this process and frees its session
// once the requests in flight on it finish; the stored version stays, and
// Load serves it again. A load under way installs nothing.
func (r *Registry) Unload(name, version string) error {
	r.mu.Lock()
	cur := r.versions[name][version]
	if cur == nil {
		r.mu.Unlock()
		return weirerr.NotFoundf("model %q has no version %q", name, version)
	}
	v := &Version{Name: name, Version: version, Meta: cur.Meta, Features: cur.Features, State: Unloaded}
	delete(r.want, key(name, version))
	r.putLocked(v)
	r.mu.Unlock()
	if cur.State != Unloaded {
		r.retire(cur, v)
		r.loads.WithLabelValues(name, version, "unloaded").Inc()
		r.log.Info("model unloaded on request", "model", name, "version", version)
	}
	return nil
}

// Load serves a stored name@version in this process again (after Unload,
// or a failed load) and returns once it is ready or has failed. A version
// ready or loading already is left as it is.
func (r *Registry) Load(name, version string) error {
	r.mu.Lock()
	cur := r.versions[name][version]
	if cur == nil {
		r.mu.Unlock()
		return weirerr.NotFoundf("model %q has no version %q", name, version)
	}
	if cur.State == Ready || cur.State == Loading {
		r.mu.Unlock()
		return nil
	}
	meta := cur.Meta
	r.want[key(name, version)] = meta.Blob
	r.putLocked(&Version{Name: name, Version: version, Meta: meta, Features: cur.Features, State: Loading})
	r.wg.Add(1)
	r.mu.Unlock()
	defer r.wg.Done()
	r.load(meta)
	_, err := r.Get(name, version)
	return err
}

// Has reports whether a model of that name exists (in any state).
func (r *Registry) Has(name string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.versions[name]) > 0
}

func latest(vs map[string]*Version) *Version {
	var best *Version
	for _, v := range vs {
		if v.State != Ready {
			continue
		}
		if best == nil || v.Meta.Uploaded.After(best.Meta.Uploaded) {
			best = v
		}
	}
	return best
}

func versionNames(vs map[string]*Version) []string {
	out := make([]string, 0, len(vs))
	for k := range vs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Model summarises one model for listings.
type Model struct {
	Name     string         `json:"name"`
	Latest   string         `json:"latest,omitempty"`
	Versions []VersionState `json:"versions"`
}

// VersionState is one version in a listing.
type VersionState struct {
	Version   string       `json:"version"`
	State     State        `json:"state"`
	Error     string       `json:"error,omitempty"`
	Features  []string     `json:"features,omitempty"`
	SHA256    string       `json:"sha256"`
	Size      int64        `json:"size"`
	Uploaded  time.Time    `json:"uploaded"`
	Reference bool         `json:"reference"`
	Inputs    []TensorInfo `json:"inputs,omitempty"`
	Outputs   []TensorInfo `json:"outputs,omitempty"`
	// Batching is the dynamic batching setting, absent when off.
	Batching *Batching `json:"batching,omitempty"`
}

// List returns every model with its versions, oldest version first.
func (r *Registry) List() []Model {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Model, 0, len(r.versions))
	for name, vs := range r.versions {
		m := Model{Name: name}
		if l := latest(vs); l != nil {
			m.Latest = l.Version
		}
		for _, v := range vs {
			m.Versions = append(m.Versions, v.summary())
		}
		sort.Slice(m.Versions, func(i, j int) bool { return m.Versions[i].Uploaded.Before(m.Versions[j].Uploaded) })
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Model returns one model's listing.
func (r *Registry) Model(name string) (Model, bool) {
	for _, m := range r.List() {
		if m.Name == name {
			return m, true
		}
	}
	return Model{}, false
}

func (v *Version) summary() VersionState {
	s := VersionState{Version: v.Version, State: v.State, Error: v.Err, Features: v.Features,
		SHA256: v.Meta.Blob, Size: v.Meta.Size, Uploaded: v.Meta.Uploaded, Reference: v.HasReference()}
	if v.Session != nil {
		s.Inputs, s.Outputs = v.Session.Inputs(), v.Session.Outputs()
	}
	if a := v.Meta.Attrs[attrBatching]; a != "" {
		if b, err := parseBatching(a); err == nil && b.Enabled() {
			s.Batching = &b
		}
	}
	return s
}
