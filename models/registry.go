package models

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ort "github.com/yalue/onnxruntime_go"

	"github.com/weirhq/weir/internal/artifacts"
	"github.com/weirhq/weir/internal/lifecycle"
	"github.com/weirhq/weir/internal/retry"
	"github.com/weirhq/weir/internal/weirerr"
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

// Upload validates ONNX bytes by creating a real runtime session, and only
// then stores them; see UploadFile, which it calls with the bytes written to
// the model cache.
func (r *Registry) Upload(ctx context.Context, name, version string, onnx []byte, o UploadOptions) (*Version, error) {
	if len(onnx) == 0 {
		return nil, weirerr.Invalidf("the request body is empty: send the ONNX model's bytes")
	}
	digest := artifacts.Digest(onnx)
	tmp, err := r.writeTemp(digest, func(w io.Writer) error {
		if _, err := w.Write(onnx); err != nil {
			return fmt.Errorf("model cache: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp) // UploadFile moved it unless it failed early
	return r.UploadFile(ctx, name, version, File{Path: tmp, SHA256: digest, Size: int64(len(onnx))}, o)
}

// File is a model already on local disk: the gateway streams an upload to
// a temporary file, hashing it on the way, so that a model of gigabytes is
// never whole in memory.
type File struct {
	Path   string // on the same file system as the model cache, ideally
	SHA256 string // hex digest of the file's bytes
	Size   int64
}

// UploadFile is Push without saying whether the version was created.
func (r *Registry) UploadFile(ctx context.Context, name, version string, f File, o UploadOptions) (*Version, error) {
	v, _, err := r.Push(ctx, name, version, f, o)
	return v, err
}

// Push validates a model on disk by creating a real runtime session from
// the file (ONNX Runtime reads it itself, outside the Go heap), and only
// then stores it; a model that does not load (or cannot take the batching
// asked for) changes nothing. It moves f.Path into the model cache
// (copying it when it cannot be renamed there); the caller removes f.Path
// afterwards in any case.
//
// Versions are immutable: when name@version is stored already, the same
// bytes change nothing (created is false, whatever o says) and other bytes
// are a Conflict (once they are known to load: bytes that do not are
// refused for that first). The version's record in NATS is the truth every gateway
// follows, so it is written first: the version serves here only once it
// is recorded, and a push whose record cannot be written (Unavailable
// once ctx ends) serves nowhere. The version is ready in this process when
// Push returns with created true.
func (r *Registry) Push(ctx context.Context, name, version string, f File, o UploadOptions) (v *Version, created bool, err error) {
	if f.Size == 0 {
		return nil, false, weirerr.Invalidf("the request body is empty: send the ONNX model's bytes")
	}
	prev, exists, err := r.store.Meta(ctx, name, version)
	if err != nil {
		return nil, false, err
	}
	if exists && prev.Blob == f.SHA256 {
		v, err := r.existing(prev, f.SHA256)
		return v, false, err
	}
	path, cached, err := r.cacheFrom(f)
	if err != nil {
		return nil, false, err
	}
	sess, err := LoadSession(path, r.opts.Session)
	if err != nil {
		if cached {
			os.Remove(path)
		}
		return nil, false, err
	}
	features := o.Features
	if len(features) == 0 {
		features = metadataFeatures(path)
	}
	if err := checkFeatures(sess, features); err != nil {
		sess.Close()
		return nil, false, err
	}
	if exists { // other bytes (a model that does not load was told so above)
		sess.Close()
		if cached {
			os.Remove(path)
		}
		_, err := r.existing(prev, f.SHA256)
		return nil, false, err
	}
	meta := artifacts.Meta{Name: name, Version: version, Blob: f.SHA256, Size: f.Size, Uploaded: time.Now().UTC(), Attrs: map[string]string{}}
	if len(features) > 0 {
		meta.Attrs[attrFeatures] = strings.Join(features, ",")
	}
	if b := o.Batching; b != nil {
		if err := r.setBatching(sess, name, version, *b); err != nil {
			sess.Close()
			return nil, false, err
		}
		if b.Enabled() {
			meta.Attrs[attrBatching] = batchingAttr(*b)
		}
	}
	v = &Version{Name: name, Version: version, Meta: meta, Features: features, State: Ready, Session: sess}
	k := key(name, version)
	r.mu.Lock()
	r.pending[k] = f.SHA256
	r.mu.Unlock()
	err = r.putBlob(ctx, path, f.SHA256)
	if err == nil {
		var found artifacts.Meta
		if found, err = r.store.CreateMeta(ctx, meta); errors.Is(err, artifacts.ErrExists) {
			if found.Blob == f.SHA256 { // this push's own record (a try that timed out), or a twin's
				err = nil
			} else {
				_, err = r.existing(found, f.SHA256)
			}
		}
	}
	if !r.finishPush(v, err == nil) {
		sess.Close()
		return nil, false, err
	}
	if err != nil {
		// The record was written after all (the watch saw it while this
		// push waited on NATS): the version serves everywhere, this
		// gateway included; the client that retries is told it is there.
		r.log.Warn("model push answered as failed, but its record was written", "model", name, "version", version, "err", err)
		return nil, false, err
	}
	r.loads.WithLabelValues(name, version, "ok").Inc()
	r.log.Info("model uploaded", "model", name, "version", version, "sha256", f.SHA256[:12], "size", f.Size, "features", len(features))
	return v, true, nil
}

// existing answers a push of bytes with digest sha256 to a version stored
// as prev: the same bytes change nothing, other bytes are a Conflict.
func (r *Registry) existing(prev artifacts.Meta, sha256 string) (*Version, error) {
	if prev.Blob != sha256 {
		return nil, weirerr.Conflictf("model %s@%s exists already with other bytes (sha256 %s, this upload's %s): versions are immutable, so push these bytes as a new version (and roll it out with a canary)",
			prev.Name, prev.Version, short(prev.Blob), short(sha256))
	}
	r.mu.RLock()
	v := r.versions[prev.Name][prev.Version]
	r.mu.RUnlock()
	if v == nil { // recorded, and not yet seen by this gateway's watch
		v = &Version{Name: prev.Name, Version: prev.Version, Meta: prev, Features: splitList(prev.Attrs[attrFeatures]), State: Loading}
	}
	return v, nil
}

func short(digest string) string { return digest[:min(12, len(digest))] }

// finishPush ends a push of v, which no longer waits on NATS. When its
// record was written (recorded), or the watch saw it written while the push
// thought it failed, v is installed and finishPush reports true; else
// nothing of it stays.
func (r *Registry) finishPush(v *Version, recorded bool) bool {
	k := key(v.Name, v.Version)
	r.mu.Lock()
	delete(r.pending, k)
	if !recorded && r.want[k] != v.Meta.Blob {
		r.mu.Unlock()
		return false
	}
	r.want[k] = v.Meta.Blob
	old := r.putLocked(v)
	r.mu.Unlock()
	r.retire(old, v)
	r.announce(old, v.Name, v.Version, true)
	return true
}

// putBlob streams the cached model file at path into the artifact store.
func (r *Registry) putBlob(ctx context.Context, path, digest string) error {
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("model cache: %w", err)
	}
	defer fh.Close()
	return r.store.PutBlobFrom(ctx, digest, fh)
}

// SetReference stores reference (training) data for name@version. header
// is the data's feature names (its columns), which become the model's
// feature list when it has none. When it has one, the data must name at
// least one of its features (else Invalid, naming both lists); unmatched
// are the columns that name none.
func (r *Registry) SetReference(ctx context.Context, name, version string, data []byte, header []string) (unmatched []string, err error) {
	meta, ok, err := r.store.Meta(ctx, name, version)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, weirerr.NotFoundf("model %q has no version %q", name, version)
	}
	if features := splitList(meta.Attrs[attrFeatures]); len(features) > 0 {
		known := map[string]bool{}
		for _, f := range features {
			known[f] = true
		}
		for _, h := range header {
			if !known[h] {
				unmatched = append(unmatched, h)
			}
		}
		if len(unmatched) == len(header) {
			return nil, weirerr.Invalidf("the reference data names none of model %s@%s's features (%s); its columns are: %s",
				name, version, strings.Join(features, ", "), strings.Join(header, ", "))
		}
	}
	digest, err := r.store.PutBlob(ctx, data)
	if err != nil {
		return nil, err
	}
	attrs := map[string]string{}
	for k, v := range meta.Attrs {
		attrs[k] = v
	}
	attrs[attrReference] = digest
	if attrs[attrFeatures] == "" && len(header) > 0 {
		if v, err := r.Get(name, version); err == nil {
			if err := checkFeatures(v.Session, header); err != nil {
				return nil, err
			}
		}
		attrs[attrFeatures] = strings.Join(header, ",")
	}
	meta.Attrs = attrs
	r.mu.Lock()
	if v := r.versions[name][version]; v != nil {
		nv := *v
		nv.Meta = meta
		nv.Features = splitList(attrs[attrFeatures])
		r.versions[name][version] = &nv
	}
	r.mu.Unlock()
	return unmatched, r.store.PutMeta(ctx, meta)
}

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

// Reference returns the reference data of name@version, if any.
func (r *Registry) Reference(ctx context.Context, name, version string) ([]byte, bool, error) {
	meta, ok, err := r.store.Meta(ctx, name, version)
	if err != nil || !ok || meta.Attrs[attrReference] == "" {
		return nil, false, err
	}
	b, err := r.store.Blob(ctx, meta.Attrs[attrReference])
	return b, err == nil, err
}

// Delete removes name@version everywhere. The caller checks that no route
// sends it traffic.
func (r *Registry) Delete(ctx context.Context, name, version string) error {
	if _, ok, err := r.store.Meta(ctx, name, version); err != nil {
		return err
	} else if !ok {
		return weirerr.NotFoundf("model %q has no version %q", name, version)
	}
	if err := r.store.Delete(ctx, name, version); err != nil {
		return err
	}
	r.remove(name, version)
	return nil
}

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

func key(name, version string) string { return name + "@" + version }

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

// cacheFrom moves (or, across file systems, copies) f into the model
// cache as <sha256>.onnx and returns that path; created is false when the
// cache held those bytes already.
func (r *Registry) cacheFrom(f File) (path string, created bool, err error) {
	path = filepath.Join(r.opts.CacheDir, f.SHA256+".onnx")
	if _, err := os.Stat(path); err == nil {
		return path, false, nil
	}
	if err := os.Rename(f.Path, path); err == nil {
		return path, true, nil
	}
	src, err := os.Open(f.Path)
	if err != nil {
		return "", false, fmt.Errorf("model cache: %w", err)
	}
	defer src.Close()
	copyFile := func(w io.Writer) error {
		if _, err := io.Copy(w, src); err != nil {
			return fmt.Errorf("model cache: %w", err)
		}
		return nil
	}
	if err := r.writeCache(f.SHA256, copyFile); err != nil {
		return "", false, err
	}
	return path, true, nil
}

// fetchAttempts and fetchBackoff bound how a replica retries fetching a
// blob: a busy or restarting NATS now and then stalls a read past
// nats.go's 5 s per-read timeout (or a writer announces before its blob is
// stored), and one such failure must not leave the version failed here for
// good. Six attempts span about 16 s.
const (
	fetchAttempts = 6
	fetchBackoff  = 250 * time.Millisecond
)

// fetchWithRetry fetches meta's blob into the cache, trying again with
// back-off while the version is still wanted and the registry open.
func (r *Registry) fetchWithRetry(meta artifacts.Meta) error {
	backoff := retry.Backoff{Base: fetchBackoff, Max: fetchBackoff << (fetchAttempts - 2)}
	for attempt := 1; ; attempt++ {
		err := r.fetchToCache(meta.Blob)
		if err == nil || attempt == fetchAttempts || !r.wanted(meta) {
			return err
		}
		wait := backoff.Next()
		r.log.Warn("model fetch failed; retrying", "model", meta.Name, "version", meta.Version,
			"attempt", attempt, "retry_in", wait, "err", err)
		if r.opts.fetchFailed != nil {
			r.opts.fetchFailed(meta)
		}
		select {
		case <-r.ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// fetchToCache streams a blob another replica stored into the model cache,
// checking its digest on the way.
func (r *Registry) fetchToCache(digest string) error {
	ctx, cancel := context.WithTimeout(r.ctx, FetchTimeout)
	defer cancel()
	return r.writeCache(digest, func(w io.Writer) error { return r.store.BlobTo(ctx, digest, w) })
}

// FetchTimeout bounds one attempt at fetching a blob (a model or its
// reference data) announced in NATS: 10 minutes is 2 GiB, the upload
// limit's default, at 3.5 MB/s. A stalled read fails sooner, at nats.go's
// per-read timeout.
const FetchTimeout = 10 * time.Minute

// writeCache writes <digest>.onnx in the model cache through a temporary
// file, so that a failed or partial write never leaves a file under the
// final name.
func (r *Registry) writeCache(digest string, write func(io.Writer) error) error {
	tmp, err := r.writeTemp(digest, write)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(r.opts.CacheDir, digest+".onnx")); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("model cache: %w", err)
	}
	return nil
}

// writeTemp writes a temporary <digest>.*.tmp in the model cache (which a
// crash leaves for Open to remove) and returns its path; on error nothing
// is left.
func (r *Registry) writeTemp(digest string, write func(io.Writer) error) (string, error) {
	tmp, err := os.CreateTemp(r.opts.CacheDir, digest+".*.tmp")
	if err != nil {
		return "", fmt.Errorf("model cache: %w", err)
	}
	err = write(tmp)
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("model cache: %w", cerr)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return tmp.Name(), nil
}

// metadataFeatures reads the feature list weir's ONNX builder writes into
// the model's metadata, if present.
func metadataFeatures(path string) []string {
	md, err := ort.GetModelMetadata(path)
	if err != nil {
		return nil
	}
	defer md.Destroy()
	v, ok, err := md.LookupCustomMetadataMap(FeaturesMetadataKey)
	if err != nil || !ok {
		return nil
	}
	return splitList(v)
}

// checkFeatures verifies a feature list fits the model's first input: a
// numeric tensor of shape [batch, n].
func checkFeatures(s *Session, features []string) error {
	if len(features) == 0 {
		return nil
	}
	seen := map[string]bool{}
	for _, f := range features {
		if f == "" {
			return weirerr.Invalidf("feature list has an empty name")
		}
		if seen[f] {
			return weirerr.Invalidf("feature %q is listed twice", f)
		}
		seen[f] = true
	}
	in := s.Inputs()[0]
	if len(in.Shape) != 2 {
		return weirerr.Invalidf("a feature list needs the model's first input %q to have shape [batch, n], but it has %v", in.Name, in.Shape)
	}
	if n := in.Shape[1]; n >= 0 && n != int64(len(features)) {
		return weirerr.Invalidf("%d features given, but the model's input %q has %d columns (shape %v)", len(features), in.Name, n, in.Shape)
	}
	if in.Datatype == Bytes || in.Datatype == Bool {
		return weirerr.Invalidf("a feature list needs a numeric first input, but %q is %s", in.Name, in.Datatype)
	}
	return nil
}

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
