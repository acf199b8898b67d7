package gateway

import (
	"path/filepath"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/pprof"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/weirhq/weir/dashboard"
	"github.com/weirhq/weir/internal/deadline"
	"github.com/weirhq/weir/internal/weirerr"
)

// requestDeadline gives the request's context a deadline (RequestTimeout),
// so a stalled NATS, feature store or plugin cannot hold a request. An
// upload's deadline also covers receiving its body. Its timer is armed only
// if something waits on the context (internal/deadline).
func (g *Gateway) requestDeadline(c *fiber.Ctx) error {
	d := g.opts.RequestTimeout
	if isUploadRequest(c) { // the handler reads the body first
		d += max(uploadReadTimeout, g.opts.ReadTimeout)
	}
	ctx, cancel := deadline.WithTimeout(c.UserContext(), d)
	defer cancel()
	c.SetUserContext(ctx)
	return c.Next()
}

// dataDirPaths are the spellings of the data dir an error may contain:
// absolute, and as given when followed by a separator (a bare relative name
// like "data" is an ordinary word too).
func dataDirPaths(dir string) []string {
	var paths []string
	if abs, err := filepath.Abs(dir); err == nil {
		paths = append(paths, abs)
	}
	if !filepath.IsAbs(dir) {
		paths = append(paths, filepath.Clean(dir)+string(filepath.Separator))
	}
	return paths
}

// buildApp registers every endpoint of the external contract.
func (g *Gateway) buildApp() error {
	g.app = fiber.New(fiber.Config{
		AppName: "weir",
		// Bodies are streamed: uploads go to disk as they arrive, and a
		// handler reads any other body with requestBody, bounded by
		// --max-body, once the request is authenticated and admitted
		// (BodyLimit only sizes fasthttp's read-ahead then).
		StreamRequestBody: true,
		BodyLimit:         g.opts.MaxBodyBytes,
		// weir takes no forms: fasthttp would parse a multipart body
		// before any handler (16 MiB in memory, the rest on disk), for
		// strangers too and past --max-body.
		DisablePreParseMultipartForm: true,
		DisableStartupMessage:        true,
		ErrorHandler:                 errorHandler(g.log, dataDirPaths(g.opts.DataDir)...),
		ReadBufferSize:               16 << 10,
		// Half-sent requests and idle connections are closed, not held.
		ReadTimeout:  g.opts.ReadTimeout,
		WriteTimeout: g.opts.WriteTimeout,
		IdleTimeout:  g.opts.IdleTimeout,
		// Params, queries and headers outlive handlers (map keys, metric
		// labels, events), so fiber must copy them out of fasthttp's reused
		// buffers. Bodies are copied where kept.
		Immutable: true,
	})
	app := g.app
	app.Use(g.whileStarting, g.recoverPanics, g.requestDeadline, g.streamedBodies, g.releaseCharge)
	app.Server().HeaderReceived = g.uploadLimit

	// With --api-keys, every endpoint but health (and /metrics unless
	// ProtectMetrics) needs an API key or the admin token, reads included:
	// routes hold plugin configs, drift configs webhook URLs, features
	// business data. The dashboard's page and assets hold no data and stay
	// open; its API calls carry the token.
	keyAuth := func(c *fiber.Ctx) error { return c.Next() }
	if g.opts.APIKeysFile != "" {
		keys, err := loadAPIKeys(g.opts.APIKeysFile)
		if err != nil {
			return err
		}
		g.apiKeys = keys
		isAdmin := equalToken(g.adminToken)
		keyAuth = requireToken("this endpoint (the gateway runs with --api-keys)", func(k string) bool { return keys[k] || isAdmin(k) })
	}
	metricsAuth := func(c *fiber.Ctx) error { return c.Next() }
	if g.opts.ProtectMetrics {
		metricsAuth = keyAuth
	}

	// Health: always open, for probes.
	app.Get("/v2/health/live", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"live": true}) })
	app.Get("/v2/health/ready", g.healthReady)
	app.Get("/v2", keyAuth, g.serverMetadata)
	metricsHandler := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{}))
	app.Get("/metrics", metricsAuth, func(c *fiber.Ctx) error {
		metricsHandler(c.Context())
		return nil
	})

	// Inference (Open Inference Protocol), open unless --api-keys is set.
	infer := app.Group("/v2/models", keyAuth)
	infer.Get("/:name", g.modelMetadata)
	infer.Get("/:name/versions/:version", g.modelMetadata)
	infer.Get("/:name/ready", g.modelReady)
	infer.Get("/:name/versions/:version/ready", g.modelReady)
	infer.Post("/:name/infer", g.infer)
	infer.Post("/:name/versions/:version/infer", g.infer)

	// Admin API: reads are open unless --api-keys is set, writes need the
	// admin token.
	admin := requireToken("admin calls", equalToken(g.adminToken))

	// Triton's model repository extension (repository.go).
	repo := app.Group("/v2/repository", keyAuth)
	repo.Post("/index", g.repoIndex)
	repo.Post("/models/:name/load", admin, g.repoLoad)
	repo.Post("/models/:name/unload", admin, g.repoUnload)
	v1 := app.Group("/v1", keyAuth)
	v1.Get("/status", g.status)
	v1.Get("/models", g.listModels)
	v1.Get("/models/:name", g.getModel)
	v1.Put("/models/:name/versions/:version", admin, g.putModel)
	v1.Put("/models/:name/versions/:version/reference", admin, g.putReference)
	v1.Put("/models/:name/versions/:version/batching", admin, g.putBatching)
	v1.Delete("/models/:name/versions/:version", admin, g.deleteModel)

	v1.Get("/plugins", g.listPlugins)
	v1.Put("/plugins/:name/versions/:version", admin, g.putPlugin)
	v1.Delete("/plugins/:name/versions/:version", admin, g.deletePlugin)

	v1.Get("/routes", g.listRoutes)
	v1.Get("/routes/:route", g.getRoute)
	v1.Put("/routes/:route", admin, g.putRoute)
	v1.Delete("/routes/:route", admin, g.deleteRoute)
	v1.Get("/routes/:route/stats", g.routeStats)
	v1.Get("/routes/:route/timeseries", g.routeTimeseries)
	v1.Post("/routes/:route/predict", g.predict)
	v1.Get("/routes/:route/rollout", g.getRollout)
	v1.Post("/routes/:route/rollout", admin, g.startRollout)
	v1.Post("/routes/:route/rollout/:action", admin, g.rolloutAction)
	v1.Get("/rollouts", g.listRollouts)

	v1.Get("/events", g.exportEvents)

	v1.Get("/drift/:name", g.getDrift)
	v1.Get("/drift/:name/versions/:version", g.getDrift)
	v1.Put("/drift/:name/config", admin, g.putDriftConfig)
	v1.Get("/alerts", g.getAlerts)

	v1.Get("/features/:entity", g.getFeatures)
	v1.Put("/features/:entity", admin, g.putFeatures)
	v1.Get("/featuresets", g.listFeatureSets)
	v1.Get("/featuresets/:name", g.getFeatureSet)
	v1.Put("/featuresets/:name", admin, g.putFeatureSet)
	v1.Delete("/featuresets/:name", admin, g.deleteFeatureSet)
	v1.Post("/featuresets/:name/ingest", admin, g.ingestFeatureSet)
	v1.Post("/featuresets/:name/backfill", admin, g.backfillFeatureSet)

	if g.opts.Pprof {
		// Profiles show request data in stacks and heap samples: admin only.
		app.Use("/debug/pprof", admin, pprof.New())
	}

	dashboard.Mount(app)

	app.Use(func(c *fiber.Ctx) error {
		return weirerr.NotFoundf("no endpoint %s %s", c.Method(), c.Path())
	})
	return nil
}
