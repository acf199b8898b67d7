package plugins

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/weirhq/weir/internal/artifacts"
	"github.com/weirhq/weir/internal/weirerr"
)

// Artifact attributes of a plugin version: its limits, set on upload.
const (
	attrMemoryPages = "memory_pages"
	attrTimeout     = "timeout"
)

// Registry keeps a Host in step with the plugin artifacts in NATS: a plugin
// pushed to any replica is loaded (compiled once per digest, instances
// pooled) on every replica. It is the plugins' counterpart of
// models.Registry.
type Registry struct {
	host  *Host
	store *artifacts.Store
	log   *slog.Logger
	watch *artifacts.Watcher
	// ctx is the watch's: Close cancels a load under way.
	ctx    context.Context
	cancel context.CancelFunc

	// loadMu orders the watch's loads with a failed push's unload, so
	// that a push never unloads what the watch loaded from its record.
	loadMu sync.Mutex

	mu       sync.RWMutex
	versions map[string]map[string]registered // name -> version
}

type registered struct {
	meta   artifacts.Meta
	limits Limits
	err    string // load failure on this replica
}

// NewRegistry loads every stored plugin version into host and keeps
// following the store until Close.
func NewRegistry(ctx context.Context, host *Host, store *artifacts.Store, log *slog.Logger) (*Registry, error) {
	r := &Registry{host: host, store: store, log: log, versions: map[string]map[string]registered{}}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	var err error
	if r.watch, err = store.Watch(r.ctx, r.apply); err != nil {
		r.cancel()
		return nil, err
	}
	select {
	case <-r.watch.Ready():
	case <-ctx.Done():
		r.cancel()
		_ = r.watch.Stop(context.Background())
		return nil, ctx.Err()
	}
	return r, nil
}

// LoadTimeout bounds fetching and loading one plugin version announced in
// NATS: a stalled fetch fails the load (listed with its error) instead of
// holding the registry's watch.
const LoadTimeout = time.Minute

// Close stops following the store and waits (until ctx ends) for a load
// under way; the Host is its owner's to close.
func (r *Registry) Close(ctx context.Context) error {
	r.cancel()
	return r.watch.Stop(ctx)
}

func limitsOf(m artifacts.Meta) Limits {
	var l Limits
	if n, err := strconv.ParseUint(m.Attrs[attrMemoryPages], 10, 32); err == nil {
		l.MemoryPages = uint32(n)
	}
	if d, err := time.ParseDuration(m.Attrs[attrTimeout]); err == nil {
		l.Timeout = d
	}
	return l
}

func (r *Registry) apply(c artifacts.Change) {
	r.loadMu.Lock()
	defer r.loadMu.Unlock()
	if c.Deleted {
		r.mu.Lock()
		delete(r.versions[c.Name], c.Version)
		if len(r.versions[c.Name]) == 0 {
			delete(r.versions, c.Name)
		}
		r.mu.Unlock()
		if err := r.host.Unload(c.Name, c.Version); err != nil {
			r.log.Warn("plugin unload", "plugin", c.Name, "version", c.Version, "err", err)
		}
		return
	}
	pv := registered{meta: c.Meta, limits: limitsOf(c.Meta)}
	cur, had := r.lookup(c.Name, c.Version)
	if !had || cur.meta.Blob != c.Meta.Blob || cur.limits != pv.limits || !r.host.Loaded(c.Name, c.Version) {
		ctx, cancel := context.WithTimeout(r.ctx, LoadTimeout)
		wasm, err := r.store.Blob(ctx, c.Meta.Blob)
		if err == nil {
			err = r.host.Load(ctx, c.Name, c.Version, wasm, pv.limits)
		}
		cancel()
		if err != nil {
			pv.err = err.Error()
			r.log.Error("plugin load failed", "plugin", c.Name, "version", c.Version, "err", err)
		}
	}
	r.put(c.Name, c.Version, pv)
}

func (r *Registry) put(name, version string, pv registered) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.versions[name] == nil {
		r.versions[name] = map[string]registered{}
	}
	r.versions[name][version] = pv
}

// Upload validates Wasm bytes by loading them here, then records them as
// name@version for every replica. Versions are immutable: when name@version
// is stored already, the same bytes change nothing (created is false) and
// other bytes are a Conflict. Limits belong to the version but are not its
// bytes: the same bytes with limits (l's non-zero fields) other than the
// stored ones change those limits on every replica, and the stored limits
// are what every replica, and this one after a restart, applies. The
// record is the truth every replica follows: the version is served here
// only once it is recorded, and a push whose record cannot be written
// (Unavailable once ctx ends) leaves nothing loaded.
func (r *Registry) Upload(ctx context.Context, name, version string, wasm []byte, l Limits) (m artifacts.Meta, created bool, err error) {
	if len(wasm) == 0 {
		return artifacts.Meta{}, false, weirerr.Invalidf("the request body is empty: send the plugin's Wasm bytes")
	}
	digest := artifacts.Digest(wasm)
	if prev, had, err := r.store.Meta(ctx, name, version); err != nil {
		return artifacts.Meta{}, false, err
	} else if had {
		m, err := r.existing(ctx, prev, digest, l)
		return m, false, err
	}
	// Load validates (exports, imports, ABI version) before it keeps
	// anything: an invalid plugin is refused here, with nothing stored.
	if err := r.host.Load(ctx, name, version, wasm, l); err != nil {
		return artifacts.Meta{}, false, err
	}
	m = artifacts.Meta{Name: name, Version: version, Blob: digest, Size: int64(len(wasm)), Uploaded: time.Now().UTC(), Attrs: map[string]string{}}
	setLimits(&m, l)
	if _, err = r.store.PutBlob(ctx, wasm); err == nil {
		var found artifacts.Meta
		if found, err = r.store.CreateMeta(ctx, m); errors.Is(err, artifacts.ErrExists) {
			if found.Blob == digest { // this push's own record (a try that timed out), or a twin's
				m, err = found, nil
			} else {
				_, err = r.existing(ctx, found, digest, Limits{})
			}
		}
	}
	r.loadMu.Lock()
	defer r.loadMu.Unlock()
	if err != nil {
		if _, seen := r.lookup(name, version); !seen { // not recorded after all (else the watch put it)
			_ = r.host.Unload(name, version)
		}
		return artifacts.Meta{}, false, err
	}
	r.put(name, version, registered{meta: m, limits: limitsOf(m)})
	return m, true, nil
}

// existing answers a push of bytes with this digest and limits l to a
// version stored as prev: the same bytes change nothing but the limits l
// sets, other bytes are a Conflict.
func (r *Registry) existing(ctx context.Context, prev artifacts.Meta, digest string, l Limits) (artifacts.Meta, error) {
	if prev.Blob != digest {
		return prev, weirerr.Conflictf("plugin %s@%s exists already with other bytes (sha256 %.12s, this upload's %.12s): versions are immutable, so push these bytes as a new version",
			prev.Name, prev.Version, prev.Blob, digest)
	}
	stored := limitsOf(prev)
	if l.MemoryPages == 0 {
		l.MemoryPages = stored.MemoryPages
	}
	if l.Timeout == 0 {
		l.Timeout = stored.Timeout
	}
	if l == stored {
		return prev, nil
	}
	m := prev
	m.Attrs = map[string]string{}
	for k, v := range prev.Attrs {
		m.Attrs[k] = v
	}
	setLimits(&m, l)
	return m, r.store.PutMeta(ctx, m) // every replica, this one too, reloads with them
}

// setLimits records l's non-zero limits in m's attributes.
func setLimits(m *artifacts.Meta, l Limits) {
	if l.MemoryPages > 0 {
		m.Attrs[attrMemoryPages] = strconv.FormatUint(uint64(l.MemoryPages), 10)
	}
	if l.Timeout > 0 {
		m.Attrs[attrTimeout] = l.Timeout.String()
	}
}

func (r *Registry) lookup(name, version string) (registered, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	pv, ok := r.versions[name][version]
	return pv, ok
}

// Delete removes name@version from the store (every replica unloads it).
func (r *Registry) Delete(ctx context.Context, name, version string) error {
	if _, ok, err := r.store.Meta(ctx, name, version); err != nil {
		return err
	} else if !ok {
		return weirerr.NotFoundf("plugin %q has no version %q", name, version)
	}
	return r.store.Delete(ctx, name, version)
}

// Versions is how many versions of name this replica knows.
func (r *Registry) Versions(name string) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.versions[name])
}

// Resolve maps "" and "latest" to the most recently uploaded version that
// loaded here, and checks that a named version loaded.
func (r *Registry) Resolve(name, version string) (string, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	vs := r.versions[name]
	if len(vs) == 0 {
		return "", weirerr.NotFoundf("plugin %q not found", name)
	}
	if version != "" && version != "latest" {
		pv, ok := vs[version]
		if !ok {
			return "", weirerr.NotFoundf("plugin %q has no version %q", name, version)
		}
		if pv.err != "" {
			return "", weirerr.Unavailablef("plugin %s@%s failed to load on this gateway: %s", name, version, pv.err)
		}
		return version, nil
	}
	best, bestAt := "", time.Time{}
	for v, pv := range vs {
		if pv.err == "" && pv.meta.Uploaded.After(bestAt) {
			best, bestAt = v, pv.meta.Uploaded
		}
	}
	if best == "" {
		return "", weirerr.Unavailablef("plugin %q has no version that loaded", name)
	}
	return best, nil
}

// Info is one plugin in GET /v1/plugins.
type Info struct {
	Name     string        `json:"name"`
	Latest   string        `json:"latest,omitempty"`
	Versions []string      `json:"versions"`
	Details  []VersionInfo `json:"details"`
}

// VersionInfo is one version of a plugin in GET /v1/plugins.
type VersionInfo struct {
	Version     string    `json:"version"`
	SHA256      string    `json:"sha256"`
	Size        int64     `json:"size"`
	Uploaded    time.Time `json:"uploaded"`
	MemoryPages uint32    `json:"memory_pages,omitempty"`
	Timeout     string    `json:"timeout,omitempty"`
	Error       string    `json:"error,omitempty"`
}

// List describes every plugin, by name, its versions by upload time.
func (r *Registry) List() []Info {
	r.mu.RLock()
	names := make([]string, 0, len(r.versions))
	for n := range r.versions {
		names = append(names, n)
	}
	r.mu.RUnlock()
	sort.Strings(names)
	out := make([]Info, 0, len(names))
	for _, n := range names {
		info := Info{Name: n}
		info.Latest, _ = r.Resolve(n, "")
		r.mu.RLock()
		for v, pv := range r.versions[n] {
			d := VersionInfo{Version: v, SHA256: pv.meta.Blob, Size: pv.meta.Size, Uploaded: pv.meta.Uploaded,
				MemoryPages: pv.limits.MemoryPages, Error: pv.err}
			if pv.limits.Timeout > 0 {
				d.Timeout = pv.limits.Timeout.String()
			}
			info.Details = append(info.Details, d)
		}
		r.mu.RUnlock()
		sort.Slice(info.Details, func(i, j int) bool { return info.Details[i].Uploaded.Before(info.Details[j].Uploaded) })
		for _, d := range info.Details {
			info.Versions = append(info.Versions, d.Version)
		}
		out = append(out, info)
	}
	return out
}
