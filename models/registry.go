package models

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weirhq/weir/internal/artifacts"
	"github.com/weirhq/weir/internal/lifecycle"
)

// State of a model version in this process.
type State string

const (
	Loading State = "loading"
	Ready   State = "ready"
	Failed  State = "failed"
	// Unloaded: stored, but not served by this process until Load (Triton's
	// repository extension); nothing of it is deleted.
	Unloaded State = "unloaded"
)

// Attribute keys weir keeps in a version's artifact metadata.
const (
	attrFeatures  = "features"
	attrReference = "reference" // digest of the reference data blob
	attrBatching  = "batching"  // the version's Batching, as JSON
)

// FeaturesMetadataKey is the ONNX metadata_props key from which weir reads a
// model's feature list when the upload does not give one.
const FeaturesMetadataKey = "weir.features"

// Version is one loaded (or loading) model version. Its fields are
// immutable; a reload replaces the whole value.
type Version struct {
	Name     string
	Version  string
	Meta     artifacts.Meta
	Features []string
	State    State
	Err      string
	Session  *Session
}

// HasReference reports whether reference data was uploaded for the version.
func (v *Version) HasReference() bool { return v.Meta.Attrs[attrReference] != "" }

// Options configure a Registry.
type Options struct {
	CacheDir   string // local copies of model files, which ONNX Runtime loads
	Session    SessionOptions
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// OnReference, when set, is called with a version's reference data
	// whenever this process learns of it (at start, and when any replica
	// uploads it), so the drift monitor of every replica has it.
	OnReference func(model, version string, data []byte)
	// OnVersion, when set, is called when a version appears in this
	// registry (present, from an upload on any replica or found at start)
	// and when it leaves it (deleted on any replica), so state kept per
	// version elsewhere (drift windows, metric series) lives exactly as
	// long as the version. It runs on the registry's goroutines: keep it
	// short.
	OnVersion func(model, version string, present bool)
	// MaxBatchRows caps a batched run's rows on this replica, whatever a
	// version's max_batch_size says (the gateway's --max-rows). 0 means
	// MaxBatchRows.
	MaxBatchRows int

	fetchFailed func(artifacts.Meta) // tests: a fetch failed, its retry waits
}

// UploadOptions are what an upload may set besides the model's bytes.
type UploadOptions struct {
	// Features is the feature list; nil lets the model's metadata or,
	// later, its reference data give it.
	Features []string
	// Batching, when not nil, is the version's dynamic batching setting.
	// When nil, a re-push of name@version keeps the setting it had, if the
	// new model can be batched.
	Batching *Batching
}

// Registry holds the model versions this gateway serves and keeps them in
// step with the artifact store: an upload on any replica loads here too.
type Registry struct {
	store  *artifacts.Store
	opts   Options
	log    *slog.Logger
	loads  *prometheus.CounterVec
	batchN *prometheus.HistogramVec
	ctx    context.Context // the watch's: Close cancels fetches under way
	cancel context.CancelFunc
	watch  *artifacts.Watcher

	mu       sync.RWMutex
	versions map[string]map[string]*Version // name -> version -> value
	// want is the blob the newest change asked each name@version to serve.
	// Loads run concurrently and may finish in any order; one that finishes
	// after a newer change arrived installs nothing, so two quick re-pushes
	// can never leave the older bytes serving.
	want map[string]string
	// pending is the blob a push in this process is recording for each
	// name@version: the watch leaves the loading to it.
	pending map[string]string

	loadMu sync.Mutex // one load at a time: ONNX Runtime sessions are heavy
	wg     sync.WaitGroup
}

// NewRegistry opens the registry over store and waits until the versions
// already stored are known (they then load in the background).
func NewRegistry(ctx context.Context, store *artifacts.Store, o Options) (*Registry, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if err := os.MkdirAll(o.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("model cache dir: %w", err)
	}
	// A process killed while writing a cache file leaves its *.tmp behind
	// (a whole model's size): nothing else writes here, so clear them.
	if stale, err := filepath.Glob(filepath.Join(o.CacheDir, "*.tmp")); err == nil {
		for _, f := range stale {
			_ = os.Remove(f)
		}
	}
	r := &Registry{
		store:    store,
		opts:     o,
		log:      o.Logger.With("component", "models"),
		versions: map[string]map[string]*Version{},
		want:     map[string]string{},
		pending:  map[string]string{},
		loads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_model_loads_total",
			Help: "Model version loads by result (ok, failed, unloaded).",
		}, []string{"model", "version", "result"}),
	}
	r.batchN = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "weir_model_batch_requests",
		Help:    "Requests in each run of the dynamic batcher (1: a request that found no company in time).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 11),
	}, []string{"model", "version"})
	if o.Registerer != nil {
		if err := o.Registerer.Register(r.loads); err != nil {
			return nil, err
		}
		if err := o.Registerer.Register(r.batchN); err != nil {
			return nil, err
		}
	}
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
		return nil, ctx.Err()
	}
	return r, nil
}

// Close stops watching and frees every session.
func (r *Registry) Close(ctx context.Context) error {
	r.cancel()
	// The watch first: once it has stopped, no change starts a new load.
	if err := r.watch.Stop(ctx); err != nil {
		return err
	}
	if err := lifecycle.WaitGroup(ctx, "model loads", &r.wg); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, vs := range r.versions {
		for _, v := range vs {
			if v.Session != nil {
				v.Session.Close()
			}
		}
	}
	r.versions = map[string]map[string]*Version{}
	return nil
}

func key(name, version string) string { return name + "@" + version }

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	out := parts[:0]
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
