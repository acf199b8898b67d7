package gateway

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weirhq/weir/internal/natsx"
	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/models"
	"github.com/weirhq/weir/monitor"
)

// connectNATS starts the embedded server (unless NATSURL names a cluster),
// connects, and wraps JetStream so every asset gets NATSReplicas and every
// KV and object-store call a deadline (natsx.WithDeadlines). The
// embedded server never runs open: its credentials live in
// <DataDir>/nats-url (0600), a full client URL that the CLI and tests read.
func (g *Gateway) connectNATS() error {
	o := g.opts
	url := o.NATSURL
	if url == "" {
		path := filepath.Join(o.DataDir, natsx.URLFile)
		user, pass := "", ""
		if u, err := natsx.ReadURLFile(path); err == nil {
			user, pass = natsx.URLUser(u)
		}
		if user == "" || pass == "" {
			user, pass = "weir", natsx.NewSecret()
		}
		e, err := natsx.Start(natsx.Options{Listen: o.NATSListen, StoreDir: filepath.Join(o.DataDir, "nats"), User: user, Password: pass,
			SyncInterval: o.NATSSyncInterval}) // negative: every write, as in natsx
		if err != nil {
			return err
		}
		g.nats = e
		g.onClose(func(context.Context) error { e.Shutdown(); return nil })
		g.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "weir_nats_storage_ok", Help: "1 while the embedded NATS's JetStream storage writes, 0 after a storage error (a full disk) until it recovers."},
			func() float64 {
				if e.StorageErr() != "" {
					return 0
				}
				return 1
			}), prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "weir_nats_storage_recoveries_total", Help: "Times the embedded NATS's JetStream was restarted in place after a storage error."},
			func() float64 { return float64(e.StorageRecoveries()) }))
		url = e.URL()
		if err := natsx.WriteURLFile(path, url); err != nil {
			return err
		}
	}
	g.natsURL = url
	var err error
	// An external NATS that does not answer yet is waited for (New starts
	// the rest once it does); the embedded one answers at once.
	if g.nc, err = natsx.Dial(natsx.ClientOptions{
		URL: url, Name: "weir-gateway", CredsFile: o.NATSCreds, NKeyFile: o.NATSNKey,
		TLSCA: o.NATSTLSCA, TLSCert: o.NATSTLSCert, TLSKey: o.NATSTLSKey,
		WaitForServer: o.NATSURL != "", Logger: g.log,
	}); err != nil {
		return err
	}
	g.onClose(func(context.Context) error {
		if !g.nc.IsConnected() {
			g.nc.Close() // nothing to drain, and Drain would wait for a server
			return nil
		}
		return g.nc.Drain()
	})
	g.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "weir_nats_connected",
		Help: "1 while the gateway is connected to NATS, 0 while it is not (it keeps serving from its local copies).",
	}, func() float64 {
		if g.nc.Status() == nats.CONNECTED {
			return 1
		}
		return 0
	}))
	return nil
}

// attachJetStream wraps JetStream over the connection and takes part in
// the drift alert lease: the first things that need NATS to answer.
func (g *Gateway) attachJetStream(ctx context.Context) error {
	js, err := jetstream.New(g.nc)
	if err != nil {
		return err
	}
	// Every KV and object-store call gets a deadline of its own: a frozen
	// NATS fails an admin write in seconds (503), not at the request's end.
	g.js = natsx.WithReplicas(natsx.WithDeadlines(js, natsx.CallTimeout), g.opts.NATSReplicas, g.log)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if g.lease, err = natsx.NewLease(ctx, g.js, "drift-alerts", nodeID(g.opts.DataDir), g.log); err != nil {
		return fmt.Errorf("drift alert lease: %w", err)
	}
	g.onClose(g.lease.Close)
	return nil
}

// waitConnected returns once the connection is up, or with ctx's error.
func (g *Gateway) waitConnected(ctx context.Context) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !g.nc.IsConnected() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// waitingFor says what a gateway that has not started yet waits for.
func (g *Gateway) waitingFor() string {
	msg := "waiting for NATS at " + natsx.Redact(g.natsURL) + " to start: this gateway has nothing to serve until NATS answers"
	if err := g.nc.LastError(); err != nil {
		msg += " (last error: " + err.Error() + ")"
	}
	return msg
}

// whileStarting answers every request but health and metrics with 503
// until the gateway has started (it waits for NATS).
func (g *Gateway) whileStarting(c *fiber.Ctx) error {
	if g.isStarted.Load() {
		return c.Next()
	}
	switch c.Path() {
	case "/v2/health/live", "/v2/health/ready", "/metrics":
		return c.Next()
	}
	return weirerr.Unavailablef("the gateway is %s", g.waitingFor())
}

// archiveStore is where archived events go: the object store every
// gateway shares (docs/rationale.md, "One archive"), or ArchiveDir.
func (g *Gateway) archiveStore(ctx context.Context) (monitor.ArchiveStore, error) {
	if d := g.opts.ArchiveDir; d != "" {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("archive dir: %w", err)
		}
		return monitor.DirArchive(d), nil
	}
	return monitor.OpenObjectArchive(ctx, g.js)
}

// alertLeader says whether this gateway publishes drift alerts: every
// gateway judges drift, one (the lease holder) speaks for all of them, so
// a crossing raises one alert cluster-wide.
func (g *Gateway) alertLeader() bool { return g.lease == nil || g.lease.Held() }

// readyBody is what GET /v2/health/ready answers.
type readyBody struct {
	Ready bool `json:"ready"`
	// Loading counts model versions known at start that are still loading.
	Loading int `json:"loading"`
	// NATS is the connection's state; informational: a gateway serves from
	// its local copies while NATS is away, so it stays ready.
	NATS string `json:"nats"`
	// Storage names a storage error of the embedded NATS (a full disk)
	// until it recovers by itself; the gateway is not ready meanwhile.
	Storage string `json:"storage,omitempty"`
	// Waiting says what a gateway that has not started yet waits for
	// (NATS, on a first start during an outage).
	Waiting string `json:"waiting,omitempty"`
}

// healthReady is ready once the gateway is up and every model version it
// found at start has loaded (or failed to). NATS reachability is reported,
// not required: a NATS outage must not pull every gateway out of service
// at once.
func (g *Gateway) healthReady(c *fiber.Ctx) error {
	b := readyBody{NATS: natsx.State(g.nc)}
	b.Ready, b.Loading = g.isReady()
	if !g.isStarted.Load() {
		b.Waiting = g.waitingFor()
	}
	if g.nats != nil {
		if msg := g.nats.StorageErr(); msg != "" {
			b.Ready, b.Storage = false, "NATS storage under "+g.opts.DataDir+" fails ("+msg+"); it recovers by itself once the disk has room"
		}
	}
	if !b.Ready {
		c.Status(fiber.StatusServiceUnavailable)
	}
	return c.JSON(b)
}

// isReady is the readiness both protocols answer, and how many versions
// found at start still load.
func (g *Gateway) isReady() (ready bool, loading int) {
	if !g.ready.Load() {
		return false, 0
	}
	if g.startLoaded.Load() {
		return true, 0
	}
	for _, m := range g.models.List() {
		for _, v := range m.Versions {
			if v.State == models.Loading {
				loading++
			}
		}
	}
	if loading == 0 {
		g.startLoaded.Store(true)
	}
	return loading == 0, loading
}

// statusBody is what GET /v1/status answers (and `weir status` prints).
type statusBody struct {
	NATS struct {
		State    string `json:"state"`
		Server   string `json:"server,omitempty"`
		Cluster  string `json:"cluster,omitempty"`
		URL      string `json:"url,omitempty"` // without credentials
		Replicas int    `json:"replicas"`      // --nats-replicas
		// AlertLeader is whether this gateway holds the drift alert lease.
		AlertLeader bool `json:"alert_leader"`
	} `json:"nats"`
	Assets []natsx.Asset `json:"assets"`
}

func (g *Gateway) status(c *fiber.Ctx) error {
	var b statusBody
	b.NATS.State = natsx.State(g.nc)
	b.NATS.Server = g.nc.ConnectedServerName()
	b.NATS.Cluster = g.nc.ConnectedClusterName()
	b.NATS.URL = natsx.Redact(g.nc.ConnectedUrlRedacted())
	b.NATS.Replicas = max(g.opts.NATSReplicas, 1)
	b.NATS.AlertLeader = g.alertLeader()
	ctx, cancel := context.WithTimeout(c.UserContext(), 5*time.Second)
	defer cancel()
	assets, err := natsx.Assets(ctx, g.js)
	if err != nil {
		return weirerr.Unavailablef("list NATS assets: %w", err)
	}
	b.Assets = assets
	if b.Assets == nil {
		b.Assets = []natsx.Asset{}
	}
	return c.JSON(b)
}
