package plugins

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/weirhq/weir/internal/weirerr"
)

// FeatureReader reads an entity's online features for the features import.
// It returns the features as a JSON object, or found false when the entity
// has none.
type FeatureReader interface {
	ReadFeatures(ctx context.Context, entity string) (features []byte, found bool, err error)
}

// Limits bound what one plugin may use. Zero fields take the host's defaults.
type Limits struct {
	// MemoryPages is the most linear memory an instance may have, in 64 KiB
	// pages. Default 256 (16 MiB).
	MemoryPages uint32
	// Timeout is the most time one call may run. Default 20ms.
	Timeout time.Duration
}

// Default limits.
const (
	DefaultMemoryPages = 256
	DefaultTimeout     = 20 * time.Millisecond
)

// MaxTableElements bounds a plugin's tables, all of them together: a
// module declaring more elements is refused at load, and table.grow past
// the limit returns -1 to the guest (see "Bounding tables" in
// interrupt_limits.go). An element costs the host 8 bytes. The Go toolchain puts
// every function in its table: about 6,000 elements for the example
// plugins, 10,000 for one importing net/http; C and Rust declare a few.
const MaxTableElements = 100_000

// withDefaults fills l's zero fields from d.
func (l Limits) withDefaults(d Limits) Limits {
	if l.MemoryPages == 0 {
		l.MemoryPages = d.MemoryPages
	}
	if l.Timeout == 0 {
		l.Timeout = d.Timeout
	}
	return l
}

// Options configure a Host. The zero value works: an in-memory compilation
// cache, 2×GOMAXPROCS instances per plugin, default limits, no feature store,
// slog.Default and a private metrics registry.
type Options struct {
	// CacheDir holds wazero's compilation cache, so a restart does not
	// compile plugins again. Empty: in memory only.
	CacheDir string
	// PoolSize is the most instances per plugin version, which is how
	// many calls of one plugin run at once. A version starts with one and
	// grows when its calls find none free. Default 2×GOMAXPROCS.
	PoolSize int
	// InstanceIdleTimeout is how long an instance beyond a version's
	// first may stay free before it is closed, so that the instances a
	// burst added (megabytes each for a Go plugin) are given back. It is
	// enforced to within half of itself. Default one minute; negative
	// keeps every instance.
	InstanceIdleTimeout time.Duration
	// Limits are the defaults for plugins loaded without their own.
	Limits Limits
	// Features answers the features import; nil answers "not found".
	Features FeatureReader
	// Logger receives host events and guest output. Default slog.Default().
	Logger *slog.Logger
	// Registerer receives the plugin metrics. Default: a private registry.
	Registerer prometheus.Registerer
	// LogLinesPerSecond and LogBurst rate-limit each plugin version's log
	// lines (log import, stdout, stderr). Defaults 20 and 100.
	LogLinesPerSecond, LogBurst int
	// MaxOutputBytes is the largest output one call may set; a larger one
	// fails the call (Upstream) without being copied. Default 1 MiB.
	MaxOutputBytes int
}

// DefaultInstanceIdleTimeout is the default of Options.InstanceIdleTimeout.
const DefaultInstanceIdleTimeout = time.Minute

// DefaultMaxOutputBytes is the default of Options.MaxOutputBytes.
const DefaultMaxOutputBytes = 1 << 20

// MaxInstanceWait bounds how long a call waits for a free instance when
// every instance of its plugin is busy (the request's deadline may end it
// sooner); then it fails as overloaded (429). The wait does not count
// against the plugin's own deadline, which starts when the guest runs: a
// busy machine must not turn a 20 ms plugin into a spurious 502.
const MaxInstanceWait = time.Second

func (o Options) validate() (Options, error) {
	if o.PoolSize < 0 {
		return o, fmt.Errorf("plugins: PoolSize is %d, want >= 0", o.PoolSize)
	}
	if o.PoolSize == 0 {
		o.PoolSize = 2 * runtime.GOMAXPROCS(0)
	}
	if o.InstanceIdleTimeout == 0 {
		o.InstanceIdleTimeout = DefaultInstanceIdleTimeout
	}
	if o.Limits.Timeout < 0 {
		return o, fmt.Errorf("plugins: Limits.Timeout is %s, want >= 0", o.Limits.Timeout)
	}
	if o.Limits.MemoryPages > 65536 {
		return o, fmt.Errorf("plugins: Limits.MemoryPages is %d, want at most 65536 (4 GiB)", o.Limits.MemoryPages)
	}
	o.Limits = o.Limits.withDefaults(Limits{MemoryPages: DefaultMemoryPages, Timeout: DefaultTimeout})
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.LogLinesPerSecond <= 0 {
		o.LogLinesPerSecond = 20
	}
	if o.LogBurst <= 0 {
		o.LogBurst = 100
	}
	if o.MaxOutputBytes <= 0 {
		o.MaxOutputBytes = DefaultMaxOutputBytes
	}
	return o, nil
}

// Host loads and runs plugins. It is safe for concurrent use.
type Host struct {
	opts    Options
	log     *slog.Logger
	rt      wazero.Runtime
	cache   wazero.CompilationCache
	metrics *metrics
	start   time.Time

	validationMetrics pluginMetrics

	mu      sync.RWMutex
	plugins map[pluginKey]*pluginVersion
	closed  bool
	closing chan struct{} // closed by Close: wakes sleeping guests
	// all plugin versions not yet released, unloaded ones included, so
	// Close can wait for their in-flight calls.
	pending map[*pluginVersion]struct{}
	// checking are the versions being checked (check: Validate, and Load
	// before a version is pending), which Close halts and waits for too.
	checking map[*pluginVersion]struct{}
	checks   sync.WaitGroup

	compileMu sync.Mutex
	modules   map[[sha256.Size]byte]*compiled
	compiles  atomic.Int64 // modules compiled, for tests of the cache
}

type pluginKey struct{ name, version string }

// compiled is a compiled module shared by every plugin version with the same
// bytes.
type compiled struct {
	sum  [sha256.Size]byte
	mod  wazero.CompiledModule
	refs int // guarded by Host.compileMu
}

// NewHost starts the Wasm runtime. Close it when done.
func NewHost(ctx context.Context, o Options) (*Host, error) {
	o, err := o.validate()
	if err != nil {
		return nil, err
	}
	h := &Host{
		opts:     o,
		log:      o.Logger,
		start:    time.Now(),
		plugins:  make(map[pluginKey]*pluginVersion),
		pending:  make(map[*pluginVersion]struct{}),
		checking: make(map[*pluginVersion]struct{}),
		modules:  make(map[[sha256.Size]byte]*compiled),
		closing:  make(chan struct{}),
	}
	if h.metrics, err = newMetrics(o.Registerer); err != nil {
		return nil, fmt.Errorf("plugins: registering metrics: %w", err)
	}
	vm, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		return nil, err
	}
	h.validationMetrics = vm.forPlugin("", "")
	if o.CacheDir != "" {
		if h.cache, err = wazero.NewCompilationCacheWithDir(o.CacheDir); err != nil {
			return nil, fmt.Errorf("plugins: compilation cache in %s: %w", o.CacheDir, err)
		}
	} else {
		h.cache = wazero.NewCompilationCache()
	}
	// Deadlines are enforced by the interrupt checks instrument adds, not
	// by wazero's WithCloseOnContextDone (see interrupt.go for why). The
	// memory limit is enforced per instance (linearMemory), not here.
	h.rt = wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithCompilationCache(h.cache))
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, h.rt); err != nil {
		_ = h.rt.Close(ctx)
		return nil, fmt.Errorf("plugins: WASI: %w", err)
	}
	if err := h.instantiateHostModule(ctx); err != nil {
		_ = h.rt.Close(ctx)
		return nil, fmt.Errorf("plugins: host module: %w", err)
	}
	return h, nil
}

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

// Call runs name@version on input (a JSON object) with config (the route's
// JSON config for this plugin, or nil) under the plugin's limits, and returns
// the plugin's output, a JSON object the caller owns. Failures are
// weirerr errors naming the plugin: Upstream for a guest error, trap,
// deadline or memory limit; Overloaded when every instance stayed busy until
// the deadline; NotFound for a plugin that is not loaded.
func (h *Host) Call(ctx context.Context, name, version string, config, input []byte) ([]byte, error) {
	return h.CallWithLimits(ctx, name, version, config, input, Limits{})
}

// CallWithLimits is Call with per-call limits; zero fields take the plugin's.
// A lower memory limit stops the guest growing further; memory it already
// has stays. The request context's deadline, when earlier, also bounds the
// call.
func (h *Host) CallWithLimits(ctx context.Context, name, version string, config, input []byte, l Limits) ([]byte, error) {
	out, err := h.AppendCall(ctx, nil, name, version, config, input, l)
	return out, err
}

// AppendCall is CallWithLimits appending the output to dst, so a caller that
// reuses its buffers makes the whole call allocation-free on the host side.
func (h *Host) AppendCall(ctx context.Context, dst []byte, name, version string, config, input []byte, l Limits) ([]byte, error) {
	h.mu.RLock()
	pv := h.plugins[pluginKey{name, version}]
	h.mu.RUnlock()
	if pv == nil {
		return dst, weirerr.NotFoundf("plugin %s@%s is not loaded", name, version)
	}
	l = l.withDefaults(pv.limits)
	// The clock is read twice a call (here and at the end): a read costs
	// up to a few hundred ns on a virtual machine.
	start := h.mono()
	pv.m.calls.Inc()
	// Waiting for a free instance is the pool being busy, not the plugin
	// being slow: it has its own bound (MaxInstanceWait, or the request's
	// deadline), and the guest's deadline starts when it runs.
	now := start
	in, waited, kind, err := pv.get(ctx, MaxInstanceWait)
	if waited {
		now = h.mono()
	}
	pv.m.wait.Observe(time.Duration(now - start).Seconds())
	if err != nil {
		pv.m.failures[kind].Inc()
		return dst, err
	}
	timeout := l.Timeout
	if d, ok := ctx.Deadline(); ok {
		// The time left, from the monotonic readings of d (from
		// context.WithTimeout) and h.start: no clock read.
		if left := d.Sub(h.start) - time.Duration(now); left < timeout {
			// The request ends first: report its deadline, rounded to be
			// readable, but stop the guest exactly at it.
			timeout = left
			l.Timeout = max(timeout, 0).Round(time.Millisecond)
		}
	}
	var out []byte
	keep := false
	if timeout <= 0 {
		kind, err, keep = failDeadline, pv.errorf("the request's deadline passed waiting for an instance"), true
	} else {
		out, kind, err, keep = in.run(ctx, config, input, now, timeout, l.Timeout, l.MemoryPages)
	}
	if err == nil {
		dst = append(dst, out...)
	} else {
		pv.m.failures[kind].Inc()
	}
	pv.m.duration.Observe(time.Duration(h.mono() - start).Seconds())
	if in.calls++; keep && in.fnIdle != nil && in.calls >= idleEvery && pv.mayIdle() {
		in.calls = 0
		go pv.idleThenPut(in)
	} else {
		pv.put(in, keep)
	}
	return dst, err
}

// mono is the monotonic time since the host started, in ns: one clock
// read, where time.Now reads two clocks.
func (h *Host) mono() int64 { return int64(time.Since(h.start)) }

// Close unloads every plugin, interrupts the calls in flight (their guests
// trap within microseconds and the calls fail as Unavailable), waits for
// them to return until ctx ends, and then closes the runtime and the
// compilation cache. A call that has not returned by then (a guest blocked
// in a host function) still runs wazero's compiled code: Close then leaves
// the runtime open, logs it and returns an error, rather than free that
// code under it (docs/rationale.md, "One lifecycle").
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	close(h.closing)
	loaded := h.plugins
	h.plugins = map[pluginKey]*pluginVersion{}
	pending := make([]*pluginVersion, 0, len(h.pending))
	for pv := range h.pending {
		pending = append(pending, pv)
	}
	halt := slices.Clone(pending)
	for pv := range h.checking {
		halt = append(halt, pv)
	}
	h.mu.Unlock()
	for _, pv := range loaded {
		pv.close()
	}
	for _, pv := range halt {
		pv.halt()
	}
	checked := make(chan struct{})
	go func() {
		h.checks.Wait()
		close(checked)
	}()
	select {
	case <-checked:
	case <-ctx.Done():
		h.log.Error("plugin runtime left open: a plugin check still runs after being interrupted, and closing the runtime would free the code it runs", "error", ctx.Err())
		return fmt.Errorf("plugins: closing with a plugin check still running (runtime left open): %w", ctx.Err())
	}
	for _, pv := range pending {
		for _, done := range []<-chan struct{}{pv.released, pv.refillDone} {
			select {
			case <-done:
			case <-ctx.Done():
				h.log.Error("plugin runtime left open: a call still runs after being interrupted, and closing the runtime would free the code it runs",
					"plugin", pv.label, "error", ctx.Err())
				return fmt.Errorf("plugins: closing with calls of %s still running (runtime left open): %w", pv.label, ctx.Err())
			}
		}
	}
	err := h.rt.Close(context.Background())
	if cerr := h.cache.Close(context.Background()); err == nil {
		err = cerr
	}
	return err
}

// released is called once a plugin version is unloaded and its last instance
// closed.
func (h *Host) released(pv *pluginVersion) {
	h.releaseCompiled(pv.comp)
	h.mu.Lock()
	delete(h.pending, pv)
	reloaded := h.plugins[pluginKey{pv.name, pv.version}] != nil
	h.mu.Unlock()
	if !reloaded { // a reload of the same name@version shares the series
		pv.m.delete()
	}
}

// compile returns the compiled module for wasm, compiling it only when no
// module with the same sha256 is held, and checks it against the ABI. The
// caller releases it with releaseCompiled.
func (h *Host) compile(ctx context.Context, wasm []byte) (*compiled, error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], []byte("\x00asm")) {
		return nil, weirerr.Invalidf("plugin is not a WebAssembly module: want bytes starting with \\0asm, got %q", prefix(wasm, 4))
	}
	sum := sha256.Sum256(wasm)
	h.compileMu.Lock()
	defer h.compileMu.Unlock()
	if c := h.modules[sum]; c != nil {
		c.refs++
		return c, nil
	}
	instrumented, ierr := instrument(wasm)
	var walked walkedInvalid
	switch {
	case errors.Is(ierr, errTablesTooLarge) || errors.Is(ierr, errTooManyLocals):
		return nil, weirerr.Invalidf("%w", ierr)
	case ierr != nil && !errors.As(ierr, &walked):
		// A module the rewriter cannot walk to its end may claim more
		// than it holds, which wazero's decoder would allocate for: it
		// is not handed to wazero (see walkedInvalid).
		return nil, weirerr.Invalidf("plugin is not a valid WebAssembly module: %w", ierr)
	case ierr != nil:
		// A module with a wrong index or name is most likely invalid:
		// let wazero say why; otherwise report what the rewriter
		// refused.
		orig, err := h.rt.CompileModule(ctx, wasm)
		if err != nil {
			return nil, weirerr.Invalidf("plugin is not a valid WebAssembly module: %s", firstLine(err))
		}
		_ = orig.Close(ctx)
		return nil, weirerr.Invalidf("plugin cannot be run under a deadline: %v", ierr)
	}
	// Instrumenting keeps every index, so wazero's messages about the
	// instrumented module hold for the original.
	mod, err := h.rt.CompileModule(ctx, instrumented)
	if err != nil {
		return nil, weirerr.Invalidf("plugin is not a valid WebAssembly module: %s", firstLine(err))
	}
	if err := h.checkModule(mod); err != nil {
		_ = mod.Close(ctx)
		return nil, err
	}
	h.compiles.Add(1)
	c := &compiled{sum: sum, mod: mod, refs: 1}
	h.modules[sum] = c
	return c, nil
}

func (h *Host) releaseCompiled(c *compiled) {
	h.compileMu.Lock()
	defer h.compileMu.Unlock()
	if c.refs--; c.refs == 0 {
		delete(h.modules, c.sum)
		_ = c.mod.Close(context.Background())
	}
}

// checkModule checks a compiled module's exports and imports against the
// ABI, listing every problem at once.
func (h *Host) checkModule(mod wazero.CompiledModule) error {
	var problems []string
	exports := mod.ExportedFunctions()
	for _, want := range requiredExports {
		def, ok := exports[want.name]
		if !ok {
			problems = append(problems, fmt.Sprintf("missing export %s (want func%s)", want.name, signature(want.params, want.results)))
			continue
		}
		if !sameTypes(def.ParamTypes(), want.params) || !sameTypes(def.ResultTypes(), want.results) {
			problems = append(problems, fmt.Sprintf("export %s has type func%s, want func%s", want.name,
				signature(def.ParamTypes(), def.ResultTypes()), signature(want.params, want.results)))
		}
	}
	if def, ok := exports[exportIdle]; ok && (len(def.ParamTypes()) > 0 || len(def.ResultTypes()) > 0) {
		problems = append(problems, fmt.Sprintf("export %s has type func%s, want func() (it is optional)", exportIdle,
			signature(def.ParamTypes(), def.ResultTypes())))
	}
	if _, ok := mod.ExportedMemories()[exportMemory]; !ok {
		problems = append(problems, "missing export memory (the module must export its linear memory as \"memory\")")
	}

	var foreign []string
	for _, def := range mod.ImportedFunctions() {
		modName, name, _ := def.Import()
		host := h.rt.Module(modName)
		if host == nil || (modName != hostModuleName && modName != wasiModuleName) {
			foreign = append(foreign, fmt.Sprintf("%s.%s (unknown module %q)", modName, name, modName))
			continue
		}
		offered, ok := host.ExportedFunctionDefinitions()[name]
		if !ok {
			foreign = append(foreign, fmt.Sprintf("%s.%s (not a function the host offers)", modName, name))
			continue
		}
		if !sameTypes(def.ParamTypes(), offered.ParamTypes()) || !sameTypes(def.ResultTypes(), offered.ResultTypes()) {
			foreign = append(foreign, fmt.Sprintf("%s.%s with type func%s (the host offers func%s)", modName, name,
				signature(def.ParamTypes(), def.ResultTypes()), signature(offered.ParamTypes(), offered.ResultTypes())))
		}
	}
	for _, m := range mod.ImportedMemories() {
		modName, name, _ := m.Import()
		foreign = append(foreign, fmt.Sprintf("%s.%s (memory imports are not offered)", modName, name))
	}
	if len(foreign) > 0 {
		sort.Strings(foreign)
		problems = append(problems, "imports the host does not offer: "+strings.Join(foreign, ", "))
	}
	if len(problems) > 0 {
		return weirerr.Invalidf("plugin does not follow the weir plugin ABI v%d: %s", abiVersion, strings.Join(problems, "; "))
	}
	return nil
}

func sameTypes(a, b []api.ValueType) bool { return bytes.Equal(a, b) }

func signature(params, results []api.ValueType) string {
	names := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return strings.Join(s, ", ")
	}
	sig := "(" + names(params) + ")"
	if len(results) > 0 {
		sig += " -> " + names(results)
	}
	return sig
}
