// Loading and unloading plugin versions: names, the trial instantiation
// Validate and Load run, and the version Load installs.

package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"regexp"

	"github.com/weirhq/weir/internal/weirerr"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Validate checks that wasm is a plugin this host can run (a Wasm module
// with the ABI's exports, only imports the host offers, ABI version 1),
// keeping nothing. Its errors are weirerr.Invalid and name the problem.
func (h *Host) Validate(ctx context.Context, wasm []byte) error {
	c, err := h.compile(ctx, wasm)
	if err != nil {
		return err
	}
	defer h.releaseCompiled(c)
	// Not exported: a validation is not a plugin.
	pv := h.newPluginVersion("upload", "validate", c, h.opts.Limits, 1, h.validationMetrics)
	return h.check(ctx, pv)
}

// check instantiates one instance of pv to run its start function and read
// its ABI version, and closes it.
func (h *Host) check(ctx context.Context, pv *pluginVersion) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return weirerr.Unavailablef("plugin host is closed")
	}
	h.checking[pv] = struct{}{}
	h.checks.Add(1)
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.checking, pv)
		h.mu.Unlock()
		h.checks.Done()
	}()
	if m, ok := pv.comp.mod.ExportedMemories()[exportMemory]; ok && m.Min() > pv.limits.MemoryPages {
		return weirerr.Invalidf("plugin's memory starts at %d pages, over its limit of %s", m.Min(), pagesString(pv.limits.MemoryPages))
	}
	in, err := pv.newInstance(ctx)
	if err != nil {
		return weirerr.Invalidf("plugin does not start: %s", firstLine(err))
	}
	defer in.close()
	v, err := in.abiVersion(ctx)
	if err != nil {
		return weirerr.Invalidf("plugin's %s failed: %s", exportVersion, firstLine(err))
	}
	if v != abiVersion {
		return weirerr.Invalidf("plugin's %s returned %d; this host speaks ABI version %d", exportVersion, v, abiVersion)
	}
	return nil
}

// Load makes name@version callable: it compiles wasm (once per sha256),
// validates it and starts the pool's instances. l overrides the host's
// default limits where non-zero. Loading the same bytes again with the same
// limits is a no-op; with other limits it replaces the pool by one under
// the new limits (calls in flight finish on the old one). Different bytes
// under a loaded name@version are a conflict.
func (h *Host) Load(ctx context.Context, name, version string, wasm []byte, l Limits) error {
	if !nameRE.MatchString(name) {
		return weirerr.Invalidf("plugin name %q is invalid: want 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit", name)
	}
	if !nameRE.MatchString(version) {
		return weirerr.Invalidf("plugin version %q is invalid: want 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit", version)
	}
	if l.Timeout < 0 || l.MemoryPages > 65536 {
		return weirerr.Invalidf("plugin limits %+v are invalid: want timeout >= 0 and at most 65536 memory pages", l)
	}
	l = l.withDefaults(h.opts.Limits)
	sum := sha256.Sum256(wasm)
	key := pluginKey{name, version}

	h.mu.RLock()
	old, closed := h.plugins[key], h.closed
	h.mu.RUnlock()
	if closed {
		return weirerr.Unavailablef("plugin host is closed")
	}
	if old != nil {
		if old.comp.sum == sum {
			if old.limits == l {
				return nil
			}
			// Same bytes, new limits: build a pool under them and swap.
		} else {
			return weirerr.Conflictf("plugin %s@%s is already loaded with different bytes (sha256 %s); upload a new version instead",
				name, version, hex.EncodeToString(old.comp.sum[:8]))
		}
	}

	c, err := h.compile(ctx, wasm)
	if err != nil {
		return err
	}
	pv := h.newPluginVersion(name, version, c, l, h.opts.PoolSize, h.metrics.forPlugin(name, version))
	if err := h.check(ctx, pv); err != nil {
		h.releaseCompiled(c)
		if old == nil { // a replacement shares old's series
			pv.m.delete()
		}
		return err
	}

	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		h.releaseCompiled(c)
		return weirerr.Unavailablef("plugin host is closed")
	}
	if other := h.plugins[key]; other != nil && other != old { // a concurrent Load won
		h.mu.Unlock()
		h.releaseCompiled(c)
		if other.comp.sum == sum {
			return nil
		}
		return weirerr.Conflictf("plugin %s@%s is already loaded with different bytes; upload a new version instead", name, version)
	}
	h.plugins[key] = pv
	h.pending[pv] = struct{}{}
	h.mu.Unlock()
	if old != nil {
		old.close()
		h.log.Info("plugin limits changed", "plugin", pv.label, "memory_pages", l.MemoryPages, "timeout", l.Timeout)
	}

	go pv.refiller()
	if err := pv.fill(ctx); err != nil {
		// Instances other than the checked one failed to start: a plugin
		// that starts only sometimes is not loaded.
		_ = h.Unload(name, version)
		return weirerr.Invalidf("plugin %s@%s does not start: %s", name, version, firstLine(err))
	}
	h.log.Info("plugin loaded", "plugin", pv.label, "sha256", hex.EncodeToString(sum[:]),
		"instances", pv.size, "memory_pages", l.MemoryPages, "timeout", l.Timeout)
	return nil
}

func (h *Host) newPluginVersion(name, version string, c *compiled, l Limits, size int, m pluginMetrics) *pluginVersion {
	pv := &pluginVersion{
		host:       h,
		name:       name,
		version:    version,
		label:      name + "@" + version,
		comp:       c,
		limits:     l,
		size:       size,
		want:       1,
		released:   make(chan struct{}),
		refill:     make(chan struct{}, 1),
		stop:       make(chan struct{}),
		refillDone: make(chan struct{}),
		logs:       newRateLimiter(h.opts.LogLinesPerSecond, h.opts.LogBurst),
		m:          m,
	}
	pv.stdout = &guestWriter{pv: pv, source: "stdout", level: slog.LevelInfo}
	pv.stderr = &guestWriter{pv: pv, source: "stderr", level: slog.LevelWarn}
	return pv
}

// Unload stops serving name@version. Calls in flight finish; their instances
// close as they return. It does not wait for them.
func (h *Host) Unload(name, version string) error {
	key := pluginKey{name, version}
	h.mu.Lock()
	pv := h.plugins[key]
	delete(h.plugins, key)
	h.mu.Unlock()
	if pv == nil {
		return weirerr.NotFoundf("plugin %s@%s is not loaded", name, version)
	}
	pv.close()
	h.log.Info("plugin unloaded", "plugin", pv.label)
	return nil
}

// Loaded reports whether name@version is loaded.
func (h *Host) Loaded(name, version string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.plugins[pluginKey{name, version}] != nil
}
