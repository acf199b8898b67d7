package plugins

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
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
