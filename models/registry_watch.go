// Keeping the Registry in step with the artifact store: applying each watched
// change, loading versions other replicas announced, and installing or
// retiring what name@version serves.

package models

import (
	"context"
	"os"
	"path/filepath"

	"github.com/weirhq/weir/internal/artifacts"
)

// apply handles one change from the artifact store's watch.
func (r *Registry) apply(c artifacts.Change) {
	if c.Deleted {
		r.remove(c.Name, c.Version)
		return
	}
	// The load this change may start is counted before the change shows
	// in want, so whoever sees it there can wait for the load (r.wg): a
	// WaitGroup's Add must not race its Wait.
	r.wg.Add(1)
	loading := false
	defer func() {
		if !loading {
			r.wg.Done()
		}
	}()
	r.mu.Lock()
	cur := r.versions[c.Name][c.Version]
	unloaded := cur != nil && cur.State == Unloaded
	if !unloaded {
		r.want[key(c.Name, c.Version)] = c.Meta.Blob
	}
	pushed := cur == nil && r.pending[key(c.Name, c.Version)] == c.Meta.Blob
	r.mu.Unlock()
	if pushed { // this process's push installs it, session ready
		return
	}
	if ref := c.Meta.Attrs[attrReference]; ref != "" && r.opts.OnReference != nil &&
		(cur == nil || cur.Meta.Attrs[attrReference] != ref) {
		ctx, cancel := context.WithTimeout(r.ctx, FetchTimeout)
		data, err := r.store.Blob(ctx, ref)
		cancel()
		if err != nil {
			r.log.Error("reference data fetch failed", "model", c.Name, "version", c.Version, "err", err)
		} else {
			r.opts.OnReference(c.Name, c.Version, data)
		}
	}
	if unloaded {
		// Unloaded here on request (Unload): it stays so, with the new metadata.
		nv := *cur
		nv.Meta, nv.Features = c.Meta, splitList(c.Meta.Attrs[attrFeatures])
		r.mu.Lock()
		if r.versions[c.Name][c.Version] == cur {
			r.versions[c.Name][c.Version] = &nv
		}
		r.mu.Unlock()
		return
	}
	if cur != nil && cur.Meta.Blob == c.Meta.Blob && cur.State == Ready {
		// Metadata change only: feature list, reference. (While the version
		// is still loading, the load below runs again with the new metadata;
		// the load in flight would otherwise install the old feature list.)
		nv := *cur
		nv.Meta = c.Meta
		nv.Features = splitList(c.Meta.Attrs[attrFeatures])
		if c.Meta.Attrs[attrBatching] != cur.Meta.Attrs[attrBatching] {
			r.applyBatching(cur.Session, c.Meta)
		}
		r.mu.Lock()
		if r.versions[c.Name][c.Version] == cur {
			r.versions[c.Name][c.Version] = &nv
		}
		r.mu.Unlock()
		return
	}
	if cur == nil {
		r.install(&Version{Name: c.Name, Version: c.Version, Meta: c.Meta, State: Loading})
	}
	loading = true
	go func() {
		defer r.wg.Done()
		r.load(c.Meta)
	}()
}

// load fetches and loads a version announced by another replica. The old
// value of the same name@version (if any) keeps serving until it is ready.
func (r *Registry) load(meta artifacts.Meta) {
	r.loadMu.Lock()
	defer r.loadMu.Unlock()
	if !r.wanted(meta) { // a newer change came while this one waited
		return
	}
	v := &Version{Name: meta.Name, Version: meta.Version, Meta: meta, Features: splitList(meta.Attrs[attrFeatures])}
	path := filepath.Join(r.opts.CacheDir, meta.Blob+".onnx")
	if _, err := os.Stat(path); err != nil {
		if err := r.fetchWithRetry(meta); err != nil {
			v.State, v.Err = Failed, err.Error()
			r.installWanted(v)
			r.loads.WithLabelValues(meta.Name, meta.Version, "failed").Inc()
			r.log.Error("model fetch failed", "model", meta.Name, "version", meta.Version, "err", err)
			return
		}
	}
	sess, err := LoadSession(path, r.opts.Session)
	if err != nil {
		v.State, v.Err = Failed, err.Error()
		r.loads.WithLabelValues(meta.Name, meta.Version, "failed").Inc()
		r.log.Error("model load failed", "model", meta.Name, "version", meta.Version, "err", err)
	} else {
		r.applyBatching(sess, meta)
		v.State, v.Session = Ready, sess
		r.loads.WithLabelValues(meta.Name, meta.Version, "ok").Inc()
		r.log.Info("model loaded", "model", meta.Name, "version", meta.Version)
	}
	if !r.installWanted(v) { // deleted or replaced while loading
		if sess != nil {
			sess.Close()
		}
	}
}

// wanted reports whether meta's bytes are still what name@version should serve.
func (r *Registry) wanted(meta artifacts.Meta) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.want[key(meta.Name, meta.Version)] == meta.Blob
}

// installWanted installs v only if its bytes are still the ones wanted.
func (r *Registry) installWanted(v *Version) bool {
	r.mu.Lock()
	if r.want[key(v.Name, v.Version)] != v.Meta.Blob {
		r.mu.Unlock()
		return false
	}
	old := r.putLocked(v)
	r.mu.Unlock()
	r.retire(old, v)
	r.announce(old, v.Name, v.Version, true)
	return true
}

// install publishes v as what name@version serves from now on.
func (r *Registry) install(v *Version) {
	r.mu.Lock()
	r.want[key(v.Name, v.Version)] = v.Meta.Blob
	old := r.putLocked(v)
	r.mu.Unlock()
	r.retire(old, v)
	r.announce(old, v.Name, v.Version, true)
}

// announce calls OnVersion when name@version appeared (nothing was there
// before) or left (something was).
func (r *Registry) announce(before *Version, name, version string, present bool) {
	if r.opts.OnVersion != nil && (before == nil) == present {
		r.opts.OnVersion(name, version, present)
	}
}

// putLocked publishes v (r.mu held) and returns what it replaces.
func (r *Registry) putLocked(v *Version) (old *Version) {
	vs := r.versions[v.Name]
	if vs == nil {
		vs = map[string]*Version{}
		r.versions[v.Name] = vs
	}
	old = vs[v.Version]
	vs[v.Version] = v
	return old
}

// retire closes the session old served once the requests in flight on it
// finish, off the caller's path, unless v still uses it. Close waits for it.
func (r *Registry) retire(old, v *Version) {
	if old == nil || old.Session == nil || (v != nil && old.Session == v.Session) {
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		old.Session.Close()
	}()
}

func (r *Registry) remove(name, version string) {
	r.mu.Lock()
	old := r.versions[name][version]
	delete(r.want, key(name, version))
	delete(r.versions[name], version)
	if len(r.versions[name]) == 0 {
		delete(r.versions, name)
	}
	r.mu.Unlock()
	if old != nil {
		r.loads.WithLabelValues(name, version, "unloaded").Inc()
		r.log.Info("model unloaded", "model", name, "version", version)
		r.retire(old, nil)
		r.batchN.DeleteLabelValues(name, version)
	}
	r.announce(old, name, version, false)
}
