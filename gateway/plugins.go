package gateway

import (
	"bytes"
	"context"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/weirhq/weir/internal/artifacts"
	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/plugins"
)

// Artifact attributes of a plugin version: its limits, set on upload.
const (
	attrMemoryPages = "memory_pages"
	attrTimeout     = "timeout"
)

// pluginSet keeps the wazero host in step with the plugin artifacts in
// NATS: a plugin pushed to any replica is loaded (compiled once per digest,
// instances pooled) on every replica.
type pluginSet struct {
	host  *plugins.Host
	store *artifacts.Store
	log   *slog.Logger

	mu       sync.RWMutex
	versions map[string]map[string]pluginVersion // name -> version
}

type pluginVersion struct {
	meta   artifacts.Meta
	limits plugins.Limits
	err    string // load failure on this replica
}

func newPluginSet(ctx context.Context, host *plugins.Host, store *artifacts.Store, log *slog.Logger) (*pluginSet, func(), error) {
	p := &pluginSet{host: host, store: store, log: log, versions: map[string]map[string]pluginVersion{}}
	wctx, cancel := context.WithCancel(context.Background())
	ready, err := store.Watch(wctx, p.apply)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	select {
	case <-ready:
	case <-ctx.Done():
		cancel()
		return nil, nil, ctx.Err()
	}
	return p, cancel, nil
}

func limitsOf(m artifacts.Meta) plugins.Limits {
	var l plugins.Limits
	if n, err := strconv.ParseUint(m.Attrs[attrMemoryPages], 10, 32); err == nil {
		l.MemoryPages = uint32(n)
	}
	if d, err := time.ParseDuration(m.Attrs[attrTimeout]); err == nil {
		l.Timeout = d
	}
	return l
}

func (p *pluginSet) apply(c artifacts.Change) {
	if c.Deleted {
		p.mu.Lock()
		delete(p.versions[c.Name], c.Version)
		if len(p.versions[c.Name]) == 0 {
			delete(p.versions, c.Name)
		}
		p.mu.Unlock()
		if err := p.host.Unload(c.Name, c.Version); err != nil {
			p.log.Warn("plugin unload", "plugin", c.Name, "version", c.Version, "err", err)
		}
		return
	}
	pv := pluginVersion{meta: c.Meta, limits: limitsOf(c.Meta)}
	p.mu.RLock()
	cur, had := p.versions[c.Name][c.Version]
	p.mu.RUnlock()
	if !had || cur.meta.Blob != c.Meta.Blob || cur.limits != pv.limits || !p.host.Loaded(c.Name, c.Version) {
		wasm, err := p.store.Blob(context.Background(), c.Meta.Blob)
		if err == nil {
			err = p.host.Load(context.Background(), c.Name, c.Version, wasm, pv.limits)
		}
		if err != nil {
			pv.err = err.Error()
			p.log.Error("plugin load failed", "plugin", c.Name, "version", c.Version, "err", err)
		}
	}
	p.put(c.Name, c.Version, pv)
}

func (p *pluginSet) put(name, version string, pv pluginVersion) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.versions[name] == nil {
		p.versions[name] = map[string]pluginVersion{}
	}
	p.versions[name][version] = pv
}

// upload loads Wasm bytes here (which validates them), then stores them.
// Limits belong to the version: a re-push of the same bytes keeps the
// stored limits it does not set (l's zero fields), and the stored limits
// are what every replica, and this one after a restart, applies.
func (p *pluginSet) upload(ctx context.Context, name, version string, wasm []byte, l plugins.Limits) (artifacts.Meta, error) {
	if len(wasm) == 0 {
		return artifacts.Meta{}, weirerr.Invalidf("the request body is empty: send the plugin's Wasm bytes")
	}
	prev, had, err := p.store.Meta(ctx, name, version)
	if err != nil {
		return artifacts.Meta{}, weirerr.Unavailablef("read plugin %s@%s: %w", name, version, err)
	}
	if had && prev.Blob == artifacts.Digest(wasm) {
		stored := limitsOf(prev)
		if l.MemoryPages == 0 {
			l.MemoryPages = stored.MemoryPages
		}
		if l.Timeout == 0 {
			l.Timeout = stored.Timeout
		}
	}
	// Load validates (exports, imports, ABI version) before it keeps
	// anything: an invalid plugin is refused here, with nothing stored.
	if err := p.host.Load(ctx, name, version, wasm, l); err != nil {
		return artifacts.Meta{}, err
	}
	m := artifacts.Meta{Name: name, Version: version, Size: int64(len(wasm)), Uploaded: time.Now().UTC(), Attrs: map[string]string{}}
	if l.MemoryPages > 0 {
		m.Attrs[attrMemoryPages] = strconv.FormatUint(uint64(l.MemoryPages), 10)
	}
	if l.Timeout > 0 {
		m.Attrs[attrTimeout] = l.Timeout.String()
	}
	if m.Blob, err = p.store.PutBlob(ctx, wasm); err != nil {
		return m, err
	}
	p.put(name, version, pluginVersion{meta: m, limits: l})
	return m, p.store.PutMeta(ctx, m)
}

// resolve maps "" and "latest" to the most recently uploaded version that
// loaded here.
func (p *pluginSet) resolve(name, version string) (string, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	vs := p.versions[name]
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

// pluginInfo is one plugin in GET /v1/plugins.
type pluginInfo struct {
	Name     string              `json:"name"`
	Latest   string              `json:"latest,omitempty"`
	Versions []string            `json:"versions"`
	Details  []pluginVersionInfo `json:"details"`
}

type pluginVersionInfo struct {
	Version     string    `json:"version"`
	SHA256      string    `json:"sha256"`
	Size        int64     `json:"size"`
	Uploaded    time.Time `json:"uploaded"`
	MemoryPages uint32    `json:"memory_pages,omitempty"`
	Timeout     string    `json:"timeout,omitempty"`
	Error       string    `json:"error,omitempty"`
}

func (p *pluginSet) list() []pluginInfo {
	p.mu.RLock()
	names := make([]string, 0, len(p.versions))
	for n := range p.versions {
		names = append(names, n)
	}
	p.mu.RUnlock()
	sort.Strings(names)
	out := make([]pluginInfo, 0, len(names))
	for _, n := range names {
		info := pluginInfo{Name: n}
		info.Latest, _ = p.resolve(n, "")
		p.mu.RLock()
		for v, pv := range p.versions[n] {
			d := pluginVersionInfo{Version: v, SHA256: pv.meta.Blob, Size: pv.meta.Size, Uploaded: pv.meta.Uploaded,
				MemoryPages: pv.limits.MemoryPages, Error: pv.err}
			if pv.limits.Timeout > 0 {
				d.Timeout = pv.limits.Timeout.String()
			}
			info.Details = append(info.Details, d)
		}
		p.mu.RUnlock()
		sort.Slice(info.Details, func(i, j int) bool { return info.Details[i].Uploaded.Before(info.Details[j].Uploaded) })
		for _, d := range info.Details {
			info.Versions = append(info.Versions, d.Version)
		}
		out = append(out, info)
	}
	return out
}

// HTTP handlers.

func (g *Gateway) listPlugins(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"plugins": g.plugins.list()})
}

func pluginParams(c *fiber.Ctx) (name, version string, err error) {
	name, version = c.Params("name"), c.Params("version")
	if err := checkName("plugin", name); err != nil {
		return "", "", err
	}
	if err := checkName("version", version); err != nil {
		return "", "", err
	}
	return name, version, nil
}

// putPlugin stores a Wasm plugin version. Optional query limits:
// memory_mb (whole MiB) and timeout (a Go duration such as 20ms).
func (g *Gateway) putPlugin(c *fiber.Ctx) error {
	name, version, err := pluginParams(c)
	if err != nil {
		return err
	}
	var l plugins.Limits
	if s := c.Query("memory_mb"); s != "" {
		mb, err := strconv.ParseUint(s, 10, 16)
		if err != nil || mb == 0 || mb > 4096 {
			return weirerr.Invalidf("memory_mb=%q: expected a whole number of MiB from 1 to 4096", s)
		}
		l.MemoryPages = uint32(mb * 16) // 16 pages of 64 KiB per MiB
	}
	if s := c.Query("timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > time.Minute {
			return weirerr.Invalidf("timeout=%q: expected a duration such as 20ms, at most 1m", s)
		}
		l.Timeout = d
	}
	m, err := g.plugins.upload(c.UserContext(), name, version, bytes.Clone(c.Body()), l)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"name": name, "version": version, "sha256": m.Blob, "size": m.Size})
}

func (g *Gateway) deletePlugin(c *fiber.Ctx) error {
	name, version, err := pluginParams(c)
	if err != nil {
		return err
	}
	routes := g.routes.PluginReferences(name, version)
	g.plugins.mu.RLock()
	last := len(g.plugins.versions[name]) == 1
	g.plugins.mu.RUnlock()
	if last { // routes on "latest" break without it
		routes = append(routes, g.routes.PluginReferences(name, "latest")...)
	}
	if len(routes) > 0 {
		return weirerr.Conflictf("plugin %s@%s is used by route(s) %s: change those routes first", name, version, strings.Join(routes, ", "))
	}
	if _, ok, err := g.plugins.store.Meta(c.UserContext(), name, version); err != nil {
		return err
	} else if !ok {
		return weirerr.NotFoundf("plugin %q has no version %q", name, version)
	}
	if err := g.plugins.store.Delete(c.UserContext(), name, version); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
