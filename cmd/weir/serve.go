package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/natsx"
)

func newServeCmd() *cobra.Command {
	var o gateway.Options
	var logLevel string
	var demo bool
	var demoPlugins string
	var demoRate float64
	var natsSync time.Duration
	metricsOpen := true
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the gateway: HTTP API, embedded NATS (unless --nats-url), monitor and dashboard",
		RunE: func(cmd *cobra.Command, _ []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
			if o.AdminToken == "" {
				o.AdminToken = os.Getenv("WEIR_ADMIN_TOKEN")
			}
			o.NATSSyncInterval = natsSync
			if natsSync == 0 {
				o.NATSSyncInterval = -1 // gateway.Options: negative is every write
			}
			o.ProtectMetrics = !metricsOpen
			if o.NATSURL == "" {
				// The embedded server would only time out on a taken port.
				if err := portFree(o.NATSListen); err != nil {
					return fmt.Errorf("listen on %s (--nats-listen): %w", o.NATSListen, err)
				}
			}
			setGoMemLimit(o.Logger)
			ctx := cmd.Context()
			g, err := gateway.New(ctx, o)
			if err != nil {
				return err
			}
			if p := g.TokenPath(); p != "" {
				fmt.Fprintf(os.Stderr, "admin token: %s (export WEIR_ADMIN_TOKEN=$(cat %s))\n", p, p)
			}
			// Bind before saying so: "serving on" means connections are taken.
			ln, err := net.Listen("tcp", o.Listen)
			if err != nil {
				g.Shutdown(context.Background())
				return fmt.Errorf("listen on %s (--listen): %w", o.Listen, err)
			}
			gln, err := net.Listen("tcp", o.GRPCListen)
			if err != nil {
				ln.Close()
				g.Shutdown(context.Background())
				return fmt.Errorf("listen on %s (--grpc-listen): %w", o.GRPCListen, err)
			}
			errc := make(chan error, 2)
			go func() { errc <- g.Serve(ln) }()
			go func() { errc <- g.ServeGRPC(gln) }()
			fmt.Fprintf(os.Stderr, "weir %s serving on %s, gRPC on %s (NATS %s, data in %s)\n", gateway.Version, ln.Addr(), gln.Addr(), natsx.Redact(g.NATSURL()), o.DataDir)
			if demo {
				go func() {
					if err := installDemo(ctx, o.Listen, g.AdminToken(), demoPlugins, demoRate); err != nil {
						fmt.Fprintln(os.Stderr, "demo set-up failed:", err)
					}
				}()
			}
			select {
			case err := <-errc:
				g.Shutdown(context.Background())
				return err
			case <-ctx.Done():
			}
			fmt.Fprintln(os.Stderr, "shutting down: draining requests in flight")
			sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			return g.Shutdown(sctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Listen, "listen", ":8080", "HTTP listen address")
	f.StringVar(&o.GRPCListen, "grpc-listen", ":8081", "Open Inference Protocol gRPC listen address")
	f.StringVar(&o.DataDir, "data-dir", "weir-data", "where weir keeps NATS data, caches and the admin token")
	f.StringVar(&o.NATSURL, "nats-url", os.Getenv("WEIR_NATS_URL"), "use this NATS cluster instead of the embedded server: nats://user:pass@host:4222[,...] (default $WEIR_NATS_URL)")
	f.StringVar(&o.NATSListen, "nats-listen", "127.0.0.1:4222", "client address of the embedded NATS server (credentials generated into <data-dir>/nats-url)")
	f.StringVar(&o.NATSCreds, "nats-creds", "", "NATS credentials file (JWT and nkey seed) for --nats-url")
	f.StringVar(&o.NATSNKey, "nats-nkey", "", "NATS nkey seed file for --nats-url")
	f.StringVar(&o.NATSTLSCA, "nats-tls-ca", "", "CA bundle that signed the NATS servers' certificates")
	f.StringVar(&o.NATSTLSCert, "nats-tls-cert", "", "client certificate for NATS mutual TLS (with --nats-tls-key)")
	f.StringVar(&o.NATSTLSKey, "nats-tls-key", "", "key of --nats-tls-cert")
	f.StringVar(&o.ArchiveDir, "archive-dir", "", "keep the Parquet event archive in this local directory instead of the shared JetStream object store weir-archive")
	f.BoolVar(&o.ArchiveRaw, "archive-raw", false, "also keep each event's JSON in the archive (column raw); the typed columns already hold every field, and raw makes files about 3.5 times larger")
	f.IntVar(&o.NATSReplicas, "nats-replicas", 1, "replicas of every JetStream KV bucket, object store and stream weir creates or finds (at most the cluster's size)")
	f.StringVar(&o.AdminToken, "admin-token", "", "admin token; prefer $WEIR_ADMIN_TOKEN, since a flag is visible to every user in ps (default: $WEIR_ADMIN_TOKEN, else generated into <data-dir>/admin-token)")
	f.StringVar(&o.APIKeysFile, "api-keys", "", "file of API keys (one per line): every endpoint but /v2/health/* (and /metrics, see --metrics-open) then needs a key or the admin token")
	f.BoolVar(&o.Pprof, "pprof", false, "serve Go's profiles under /debug/pprof/ (admin token only), for an operator diagnosing CPU or memory")
	f.BoolVar(&metricsOpen, "metrics-open", true, "with --api-keys, leave /metrics open for scrapers (false: it needs a key too)")
	f.StringVar(&o.ORTLib, "ort-lib", "", "path of libonnxruntime.so (default: $ONNXRUNTIME_LIB, then the `make ort` cache)")
	f.IntVar(&o.IntraOpThreads, "intra-op-threads", 1, "ONNX Runtime threads per request; 1 serves concurrent requests best on small machines")
	f.DurationVar(&o.EventsMaxAge, "events-max-age", 24*time.Hour, "how long inference events stay in the WEIR_EVENTS stream")
	f.Int64Var(&o.EventsMaxBytes, "events-max-bytes", 0, "most bytes of inference events the WEIR_EVENTS stream keeps (default 1 GiB, or less with a warning when NATS has too little storage)")
	f.StringVar(&o.EventsDurability, "events-durability", "best-effort", "when a request's event must be safe before the request is answered: best-effort (never waits; a crash can lose the events of about the last 250 ms) or strict (answer only once the event is fsynced to the spool; 503 if it cannot be)")
	f.IntVar(&o.MaxEventBytes, "max-event-bytes", 1<<20, "largest inference event in bytes; larger ones lose rows and are marked truncated")
	f.DurationVar(&natsSync, "nats-sync-interval", natsx.DefaultSyncInterval, "how often the embedded NATS fsyncs its files (0: every write); a power loss can lose what was acknowledged within it")
	f.IntVar(&o.MaxInFlight, "max-inflight", 1024, "inference requests served at once; more are refused with 429")
	f.IntVar(&o.MaxBodyBytes, "max-body", 64<<20, "largest request body in bytes")
	f.Int64Var(&o.MemoryBudget, "memory-budget", 0, "bytes that inference requests in flight may hold, estimated from their bodies; past it a request waits up to 100ms, then gets 503 (0: half the container's memory limit, else of the machine's memory; negative: no budget)")
	f.DurationVar(&o.ReadTimeout, "read-timeout", 30*time.Second, "longest time to read a whole request (headers and body; on gRPC, a call's message); slower clients are cut off")
	f.DurationVar(&o.WriteTimeout, "write-timeout", 60*time.Second, "longest time to write an answer")
	f.DurationVar(&o.IdleTimeout, "idle-timeout", 120*time.Second, "how long a keep-alive connection may wait for its next request")
	f.IntVar(&o.GRPCMaxStreams, "grpc-max-streams", 100, "gRPC calls open at once on one connection; more wait in the client")
	f.DurationVar(&o.GRPCHandshakeTimeout, "grpc-handshake-timeout", 10*time.Second, "longest time a new gRPC connection may take to send its HTTP/2 preface and settings")
	f.DurationVar(&o.GRPCIdleTimeout, "grpc-idle-timeout", 120*time.Second, "how long a gRPC connection may stay open with no call open")
	f.DurationVar(&o.RequestTimeout, "request-timeout", 30*time.Second, "deadline of each request's work (NATS, feature store, plugins)")
	f.IntVar(&o.MaxRows, "max-rows", 10000, "most rows (objects) one predict may send; more are refused with 413")
	f.IntVar(&o.MaxPluginOutput, "max-plugin-output", 1<<20, "largest output in bytes one plugin call may return; more fails the call with 502")
	f.IntVar(&o.MaxUploadBytes, "max-upload", 2<<30, "largest model, reference or plugin upload in bytes (larger: 413)")
	f.IntVar(&o.PluginPool, "plugin-pool", 0, "most instances per plugin version, i.e. calls of one plugin at once; each starts with one and grows as calls ask (default 2 x CPUs)")
	f.BoolVar(&demo, "demo", false, "install the fraud-prevention demo (models, plugins, route) once the gateway is up")
	f.StringVar(&demoPlugins, "demo-plugins", "build/plugins", "directory of the demo's Wasm plugins (make plugins)")
	f.Float64Var(&demoRate, "demo-rate", 5, "transactions per second the demo generator streams (0: none)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// portFree reports whether addr can be listened on now.
func portFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return ln.Close()
}
