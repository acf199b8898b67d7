package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/valyala/fasthttp"
	"google.golang.org/grpc"

	"github.com/weirhq/weir/canary"
	"github.com/weirhq/weir/features"
	"github.com/weirhq/weir/internal/artifacts"
	"github.com/weirhq/weir/internal/lifecycle"
	"github.com/weirhq/weir/internal/natsx"
	"github.com/weirhq/weir/internal/overload"
	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/models"
	"github.com/weirhq/weir/monitor"
	"github.com/weirhq/weir/monitor/drift"
	"github.com/weirhq/weir/plugins"
	"github.com/weirhq/weir/router"
)

// Version is weir's version, reported by GET /v2.
var Version = "0.1.0"

// Options configure a gateway. The zero value of each field has a working
// default (see withDefaults).
type Options struct {
	Listen     string // HTTP address, default :8080
	GRPCListen string // OIP gRPC address, default :8081
	DataDir    string // default ./weir-data
	NATSURL    string // external NATS; empty runs an embedded server
	NATSListen string // embedded NATS client address, default 127.0.0.1:4222
	// NATS client credentials and TLS for an external cluster (files;
	// see natsx.ClientOptions). The embedded server's credentials are
	// generated into <DataDir>/nats-url instead.
	NATSCreds, NATSNKey, NATSTLSCA, NATSTLSCert, NATSTLSKey string
	// NATSReplicas is the replica count of every KV bucket, object store
	// and stream weir creates or finds (default 1); see natsx.WithReplicas.
	NATSReplicas int
	// ArchiveDir keeps the Parquet event archive on local disk instead of
	// the shared JetStream object store monitor.ArchiveBucket.
	ArchiveDir string
	// ArchiveRaw keeps each event's JSON in the archive's "raw" column
	// beside the typed ones (monitor.ArchiverOptions.Raw).
	ArchiveRaw bool
	// AdminToken guards /v1 writes; empty reads or generates
	// <DataDir>/admin-token.
	AdminToken  string
	APIKeysFile string // when set, every endpoint but health needs one of its keys (or the admin token)
	// ProtectMetrics puts /metrics behind the API keys too (serve's
	// --metrics-open=false); by default it stays open for scrapers.
	ProtectMetrics bool
	// Pprof serves Go's profiles under /debug/pprof/, to the admin token
	// only (serve's --pprof); off by default.
	Pprof          bool
	ORTLib         string // ONNX Runtime library; see models.FindLibrary
	IntraOpThreads int    // per model session, default 1
	MaxBodyBytes   int    // default 64 MiB
	// MaxRows bounds the rows (objects) of one predict; past it 413.
	// Default 10,000.
	MaxRows int
	// ReadTimeout bounds reading a whole request, WriteTimeout writing its
	// answer, IdleTimeout a keep-alive connection waiting for the next
	// request. Defaults 30s, 60s and 120s.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// RequestTimeout is the deadline of every request's context, which
	// NATS, feature-store and plugin calls inherit. Default 30s.
	RequestTimeout time.Duration
	// MaxPluginOutput bounds one plugin call's output in bytes; past it
	// the call fails with 502. Default 1 MiB.
	MaxPluginOutput int
	// MaxUploadBytes bounds model, reference and plugin uploads (the admin
	// PUTs), apart from MaxBodyBytes; default 2 GiB.
	MaxUploadBytes int
	// EventsMaxAge and EventsMaxBytes bound the WEIR_EVENTS stream
	// (oldest events go first). Defaults 24h and 1 GiB, or less (with a
	// warning) when NATS has too little storage for 1 GiB.
	EventsMaxAge   time.Duration
	EventsMaxBytes int64
	// EventsDurability is monitor.DurabilityBestEffort (default) or
	// monitor.DurabilityStrict: answer only once the request's event is
	// fsynced to the spool (--events-durability).
	EventsDurability string
	// MaxEventBytes caps one encoded event; larger ones are truncated and
	// marked. Default 1 MiB.
	MaxEventBytes int
	// NATSSyncInterval is how often the embedded NATS fsyncs its files;
	// negative fsyncs every write. Default 1s (natsx.DefaultSyncInterval;
	// docs/rationale.md says what a power loss can lose).
	NATSSyncInterval time.Duration
	// GRPCMaxStreams bounds the calls open at once on one gRPC connection
	// (default 100); GRPCHandshakeTimeout a new connection's HTTP/2 preface
	// (default 10s); GRPCIdleTimeout closes a connection with no call open
	// for that long (default 120s). ReadTimeout bounds the wait for a gRPC
	// call's message too. See oipgrpc.Options.
	GRPCMaxStreams                        int
	GRPCHandshakeTimeout, GRPCIdleTimeout time.Duration
	// MaxInFlight bounds inference requests served at once; past it a
	// request is refused with 429 at once instead of queueing. Default 1024.
	MaxInFlight int
	// MemoryBudget bounds the bytes that inference requests in flight may
	// hold, as estimated from their bodies (overload.go); past it a request
	// waits briefly, then is refused with 503. 0 (default): half the
	// container's memory limit, or the machine's memory; negative: none.
	MemoryBudget int64
	// CanaryTick is how often rollouts are looked at; keep it a fraction
	// of the shortest rollout interval. Default 250ms.
	CanaryTick time.Duration
	// StatsBucket is the time resolution of the live route stats (and of
	// the canary's answers gate, which compares whole buckets); default
	// 10s, whole seconds. Tests shorten it.
	StatsBucket time.Duration
	// PluginPool is the most instances per plugin version (how many calls
	// of one plugin run at once); a version starts with one and grows as
	// concurrent calls ask. Default 2×GOMAXPROCS.
	PluginPool int
	Logger     *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Listen == "" {
		o.Listen = ":8080"
	}
	if o.GRPCListen == "" {
		o.GRPCListen = ":8081"
	}
	if o.DataDir == "" {
		o.DataDir = "weir-data"
	}
	if o.NATSListen == "" {
		o.NATSListen = "127.0.0.1:4222"
	}
	if o.IntraOpThreads <= 0 {
		o.IntraOpThreads = 1
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 64 << 20
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 30 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 60 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 120 * time.Second
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 30 * time.Second
	}
	if o.MaxRows <= 0 {
		o.MaxRows = 10000
	}
	if o.MaxPluginOutput <= 0 {
		o.MaxPluginOutput = plugins.DefaultMaxOutputBytes
	}
	if o.MaxUploadBytes <= 0 {
		o.MaxUploadBytes = 2 << 30
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 1024
	}
	if o.GRPCMaxStreams <= 0 {
		o.GRPCMaxStreams = 100
	}
	if o.GRPCHandshakeTimeout <= 0 {
		o.GRPCHandshakeTimeout = 10 * time.Second
	}
	if o.GRPCIdleTimeout <= 0 {
		o.GRPCIdleTimeout = 120 * time.Second
	}
	if o.NATSSyncInterval == 0 {
		o.NATSSyncInterval = natsx.DefaultSyncInterval
	}
	if o.CanaryTick <= 0 {
		o.CanaryTick = 250 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Gateway is a running weir gateway. New starts everything but the HTTP
// listener; Serve listens; Shutdown stops all of it, in reverse order.
type Gateway struct {
	opts       Options
	log        *slog.Logger
	failures   *failLog // failed requests at warn, rate-limited (faillog.go)
	adminToken string
	tokenPath  string

	nats   *natsx.Embedded // nil with an external NATS
	nc     *nats.Conn
	js     jetstream.JetStream
	reg    *prometheus.Registry
	models *models.Registry
	app    *fiber.App
	met    *metrics

	grpc    *grpc.Server    // OIP over gRPC (grpc.go)
	apiKeys map[string]bool // nil: inference is open

	routes      *router.Store
	features    *features.Store
	pluginHost  *plugins.Host
	plugins     *plugins.Registry
	events      *monitor.Publisher
	stats       *monitor.Stats
	archiver    *monitor.Archiver
	archive     monitor.ArchiveStore // where the archiver writes; GET /v1/events reads it
	rollouts    *canary.Controller
	drift       *drift.Monitor
	decoded     *monitor.Decoded // event decoding shared by stats, drift and the archive
	shadowSlots chan struct{}    // bounds shadow requests in flight
	shadowGate  chan struct{}    // tests only (export_test.go): shadows wait on it
	// implicitRoutes caches the route a model with no route of its own
	// gets: its latest version, no plugins (model name -> *router.Route).
	implicitRoutes sync.Map
	inflight       atomic.Int64     // inference requests being served
	budget         *overload.Budget // bytes in flight (overload.go); nil: none

	ready atomic.Bool // answers /v2/health/ready
	// started closes once the parts that need NATS are up (isStarted),
	// their start failed (failed closes too, startErr says why) or
	// Shutdown stopped it; at once unless NATS did not answer at start.
	started, failed chan struct{}
	isStarted       atomic.Bool
	startErr        error
	stopStart       context.CancelFunc            // stops a start waiting for NATS
	closers         []func(context.Context) error // run in reverse order by Shutdown
	shadows         sync.WaitGroup                // shadow requests in flight; Shutdown waits
	// base is the context of the work the gateway starts on its own
	// (shadow requests); Shutdown cancels it first.
	base       context.Context
	cancelBase context.CancelFunc
	conns      connSet // HTTP connections open; Shutdown cuts what its drain left

	natsURL string       // what the gateway dialed (with credentials)
	lease   *natsx.Lease // held by the one gateway that publishes drift alerts
	// startLoaded turns true once every model version found at start has
	// left the loading state (then readiness stops looking).
	startLoaded atomic.Bool
}

// checkName rejects names that are not safe identifiers, before they reach
// the disk or the store.
func checkName(kind, s string) error {
	if !router.ValidName(s) {
		return weirerr.Invalidf("%s name %q is not valid: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", kind, s)
	}
	return nil
}

// New starts a gateway's parts: NATS (embedded or external), the artifact
// stores, the model registry and the HTTP handlers. On error, whatever was
// started is stopped again. When an external NATS cannot be reached, New
// returns a gateway that is not ready and starts the parts that need NATS
// once it answers (startInBackground).
func New(ctx context.Context, o Options) (_ *Gateway, err error) {
	o = o.withDefaults()
	g := &Gateway{opts: o, log: o.Logger, reg: prometheus.NewRegistry(), failures: newFailLog(o.Logger)}
	g.base, g.cancelBase = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = g.close(ctx)
		}
	}()
	// The data dir holds request features (spool, archive) and secrets
	// (admin token): only weir's user may read it, also when it existed.
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := os.Chmod(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := prepareUploadDir(g.uploadDir()); err != nil {
		return nil, err
	}
	g.adminToken, g.tokenPath, _, err = EnsureAdminToken(o.AdminToken, o.DataDir)
	if err != nil {
		return nil, err
	}
	lib, err := models.FindLibrary(o.ORTLib)
	if err != nil {
		return nil, err
	}
	if err := models.InitRuntime(lib); err != nil {
		return nil, err
	}
	g.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if err := g.connectNATS(); err != nil {
		return nil, err
	}
	g.met = newMetrics(g.reg)
	g.budget = g.newBudget()
	g.shadowSlots = make(chan struct{}, 64)
	g.buildGRPC()
	if err := g.buildApp(); err != nil {
		return nil, err
	}
	g.started, g.failed = make(chan struct{}), make(chan struct{})
	if g.nc.IsConnected() {
		if err := g.startStores(ctx); err != nil {
			return nil, err
		}
		g.markStarted()
		return g, nil
	}
	// A first start during a NATS outage: stay up, not ready (health says
	// why), and start the rest once NATS answers.
	g.log.Warn("not ready until NATS answers: nothing to serve before", "nats", natsx.Redact(g.natsURL))
	g.startInBackground(ctx)
	return g, nil
}

// markStarted makes the gateway ready: every part is up.
func (g *Gateway) markStarted() {
	g.isStarted.Store(true)
	g.ready.Store(true)
	close(g.started)
}

// startInBackground starts the parts that need NATS once it answers. A
// failure then ends Serve with the error, as it would have ended New. Only
// Shutdown stops it: New's ctx bounded New, which has returned.
func (g *Gateway) startInBackground(ctx context.Context) {
	ctx, g.stopStart = context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		err := g.waitConnected(ctx)
		if err == nil {
			g.log.Info("NATS answers: starting", "nats", natsx.Redact(g.nc.ConnectedUrlRedacted()))
			err = g.startStores(ctx)
		}
		switch {
		case err == nil:
			g.markStarted()
		case ctx.Err() != nil: // Shutdown
			close(g.started)
		default:
			g.startErr = fmt.Errorf("start once NATS answered: %w", err)
			close(g.failed)
			close(g.started)
		}
	}()
}

// startStores starts everything that needs NATS: the stores, the model
// registry, and then the other parts.
func (g *Gateway) startStores(ctx context.Context) error {
	o := g.opts
	if err := g.attachJetStream(ctx); err != nil {
		return err
	}
	modelStore, err := artifacts.Open(ctx, g.js, "models")
	if err != nil {
		return err
	}
	modelStore.RetryFor(g.opts.RequestTimeout)
	// The drift monitor exists before the registry, which hands it the
	// reference data it finds; it starts consuming events later.
	// Stats, drift and the archive read the same frames at about the same
	// time: the first to meet one decodes it for all three.
	g.decoded = monitor.NewDecoded(3, 64)
	if g.drift, err = drift.New(drift.Options{
		JS: g.js, Durable: "weir-drift-" + nodeID(o.DataDir), Registerer: g.reg, Logger: g.log,
		AlertGate: g.alertLeader, Decoded: g.decoded,
	}); err != nil {
		return err
	}
	g.onClose(g.drift.Close)
	g.models, err = models.NewRegistry(ctx, modelStore, models.Options{
		OnReference: func(model, version string, data []byte) {
			if ref, err := drift.ParseReference(data, ""); err == nil {
				g.drift.SetReference(model, version, ref)
			}
		},
		// State kept per version lives as long as the version.
		OnVersion: func(model, version string, present bool) {
			if present {
				g.drift.Track(model, version)
				return
			}
			g.drift.Forget(model, version)
			g.met.forget(model, version)
		},
		CacheDir:     filepath.Join(o.DataDir, "cache", "models"),
		Session:      models.SessionOptions{IntraOpThreads: o.IntraOpThreads},
		MaxBatchRows: o.MaxRows,
		Logger:       g.log,
		Registerer:   g.reg,
	})
	if err != nil {
		return err
	}
	g.onClose(g.models.Close)
	return g.startParts(ctx)
}

// startParts starts routes, features, plugins and monitoring, each with
// its closer registered so that a failure half-way stops what started.
func (g *Gateway) startParts(ctx context.Context) error {
	o := g.opts
	var err error
	if g.routes, err = router.OpenStore(ctx, g.js, g.log); err != nil {
		return err
	}
	g.onClose(g.routes.Close)

	if g.features, err = features.Open(ctx, features.Options{
		NC: g.nc, JS: g.js, Registerer: g.reg, Logger: g.log, Aggregate: true,
	}); err != nil {
		return err
	}
	g.onClose(g.features.Close)

	if g.pluginHost, err = plugins.NewHost(ctx, plugins.Options{
		CacheDir:       filepath.Join(o.DataDir, "cache", "wasm"),
		Features:       g.features,
		Logger:         g.log,
		Registerer:     g.reg,
		MaxOutputBytes: o.MaxPluginOutput,
		PoolSize:       o.PluginPool,
	}); err != nil {
		return err
	}
	g.onClose(g.pluginHost.Close)
	pluginStore, err := artifacts.Open(ctx, g.js, "plugins")
	if err != nil {
		return err
	}
	pluginStore.RetryFor(g.opts.RequestTimeout)
	if g.plugins, err = plugins.NewRegistry(ctx, g.pluginHost, pluginStore, g.log); err != nil {
		return err
	}
	g.onClose(g.plugins.Close)

	if g.events, err = monitor.NewPublisher(ctx, monitor.PublisherOptions{
		Conn:           g.nc,
		SpoolDir:       filepath.Join(o.DataDir, "spool"),
		StreamMaxAge:   o.EventsMaxAge,
		StreamMaxBytes: o.EventsMaxBytes,
		MaxEventBytes:  o.MaxEventBytes,
		Durability:     o.EventsDurability,
		Replicas:       natsx.Replicas(ctx, g.js, monitor.StreamEvents, 0, o.NATSReplicas, g.log),
		Registerer:     g.reg,
		Logger:         g.log,
	}); err != nil {
		if errors.Is(err, monitor.ErrStreamNoRoom) {
			where := "on the NATS servers"
			if g.nats != nil {
				where = "under " + filepath.Join(o.DataDir, "nats")
			}
			return fmt.Errorf("%w: free disk %s (JetStream reserves up to 75%% of the free space) or lower --events-max-bytes (unset, weir picks a size that fits)", err, where)
		}
		return err
	}
	g.onClose(func(ctx context.Context) error {
		// Events still unsent are spooled, not waited for: at most 5s.
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return g.events.Close(ctx)
	})
	if g.stats, err = monitor.NewStats(monitor.StatsOptions{JetStream: g.js, Decoded: g.decoded, Logger: g.log, Registerer: g.reg, Bucket: g.opts.StatsBucket}); err != nil {
		return err
	}
	g.onClose(g.stats.Close)
	if g.archive, err = g.archiveStore(ctx); err != nil {
		return err
	}
	if g.archiver, err = monitor.NewArchiver(monitor.ArchiverOptions{
		JetStream: g.js, Store: g.archive, Raw: g.opts.ArchiveRaw, Decoded: g.decoded, Logger: g.log,
	}); err != nil {
		return err
	}
	g.onClose(g.archiver.Close)

	if err = g.drift.Start(ctx); err != nil {
		return err
	}
	if g.rollouts, err = canary.New(ctx, canary.Options{
		JS: g.js, Conn: g.nc, Routes: g.routes, Metrics: canaryMetrics{g.stats}, Drift: g.drift,
		Logger: g.log, Registerer: g.reg, Tick: o.CanaryTick,
	}); err != nil {
		return err
	}
	g.onClose(g.rollouts.Close)
	return nil
}

// AdminToken is the token admin calls need; TokenPath is where it was read
// or written ("" when given by flag or environment).
func (g *Gateway) AdminToken() string { return g.adminToken }

// TokenPath is the file holding a generated admin token.
func (g *Gateway) TokenPath() string { return g.tokenPath }

// NATSURL is the client URL of the NATS the gateway uses, with its
// credentials (print it through natsx.Redact).
func (g *Gateway) NATSURL() string { return g.natsURL }

// Serve accepts HTTP connections on ln until Shutdown.
// A start waiting for NATS that then fails ends it with the error.
func (g *Gateway) Serve(ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- g.app.Listener(lingerListener{Listener: ln, conns: &g.conns}) }()
	select {
	case err := <-errc:
		return err
	case <-g.failed:
		return g.startErr
	}
}

// admit counts an inference request in, or refuses it when MaxInFlight
// are being served: overload answers 429 at once, never a hang.
func (g *Gateway) admit() error {
	if n := g.inflight.Add(1); n > int64(g.opts.MaxInFlight) {
		g.inflight.Add(-1)
		g.met.rejected.Inc()
		return weirerr.Overloadedf("the gateway is serving %d requests, its limit (--max-inflight): try again shortly", g.opts.MaxInFlight)
	}
	g.met.inflight.Inc()
	return nil
}

func (g *Gateway) release() {
	g.inflight.Add(-1)
	g.met.inflight.Dec()
}

// Handler is the gateway's HTTP handler, for serving on a listener of the
// caller's or calling in process (benchmarks).
func (g *Gateway) Handler() fasthttp.RequestHandler { return g.app.Handler() }

// ListenAndServe listens on Options.Listen.
func (g *Gateway) ListenAndServe() error {
	ln, err := net.Listen("tcp", g.opts.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", g.opts.Listen, err)
	}
	return g.Serve(ln)
}

// closeTimeout is each part's budget for stopping at Shutdown, apart from
// the drain's: a drain that used all of its context leaves every part its
// own time, and a part that used all of its own leaves the next theirs.
const closeTimeout = 10 * time.Second

// Shutdown stops the gateway in net/http's order (docs/rationale.md, "One
// lifecycle"):
//
//  1. readiness answers 503 and the base context ends, cancelling shadow
//     requests;
//  2. drain: HTTP and gRPC stop accepting and, concurrently, let the calls
//     in flight finish until ctx ends, then cut the connections; the
//     shadow requests are waited for (cancelled, they end at once);
//  3. close: every part stops, in reverse order of start, each with its
//     own budget (closeTimeout) whatever is left of ctx. The plugin host
//     interrupts guests still running and never frees the runtime under
//     them.
//
// A phase or part still busy when its budget ends says so in the error,
// and the rest still stop.
func (g *Gateway) Shutdown(ctx context.Context) error {
	if g.stopStart != nil {
		g.stopStart()
		<-g.started // its parts honour ctx: they stop soon
	}
	g.ready.Store(false)
	g.cancelBase()
	var httpErr error
	var drains sync.WaitGroup
	if g.app != nil {
		drains.Add(1)
		go func() {
			defer drains.Done()
			if err := g.app.ShutdownWithContext(ctx); err != nil {
				httpErr = fmt.Errorf("draining HTTP: %w", err)
			}
		}()
	}
	if g.grpc != nil {
		drains.Add(1)
		go func() {
			defer drains.Done()
			stopGRPC(ctx, g.grpc)
		}()
	}
	drains.Wait()
	if n := g.conns.cutAll(); n > 0 {
		g.log.Warn("HTTP connections cut at shutdown: their requests outlived the drain", "connections", n)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	shadowErr := lifecycle.WaitGroup(sctx, "shadow requests", &g.shadows)
	cancel()
	return errors.Join(httpErr, shadowErr, g.close(ctx))
}

// onClose registers a part's Close to run, in reverse order, at Shutdown
// (or when New fails half-way).
func (g *Gateway) onClose(close func(context.Context) error) {
	g.closers = append(g.closers, close)
}

// close ends the base context and stops every part in reverse order of
// start, each under its own closeTimeout (ctx gives only its values).
func (g *Gateway) close(ctx context.Context) error {
	g.cancelBase()
	ctx = context.WithoutCancel(ctx)
	var errs []error
	for i := len(g.closers) - 1; i >= 0; i-- {
		cctx, cancel := context.WithTimeout(ctx, closeTimeout)
		errs = append(errs, g.closers[i](cctx))
		cancel()
	}
	g.closers = nil
	return errors.Join(errs...)
}

// nodeID is this gateway's stable identity, kept in the data dir: it names
// its own durable consumers (so a restart resumes where it stopped).
func nodeID(dataDir string) string {
	p := filepath.Join(dataDir, "node-id")
	if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
		return strings.TrimSpace(string(b))
	}
	// Random, not monitor.NewID: its first half is the same for every
	// gateway in one process, and gateways must not share a durable.
	id := natsx.NewSecret()[:12]
	_ = os.WriteFile(p, []byte(id+"\n"), 0o600)
	return id
}
