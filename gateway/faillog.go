package gateway

import (
	"log/slog"
	"regexp"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/weirhq/weir/monitor"
)

// failLog logs failed inference requests at warn, rate-limited so that a
// flood of bad requests cannot flood the log: up to failLogBurst lines at
// once, then failLogRate a second; each line says how many failures were
// not logged since the previous one ("suppressed"). Every failure is still
// counted in the metrics and published as an event.
type failLog struct {
	log        *slog.Logger
	limit      *rate.Limiter
	suppressed atomic.Int64
}

const (
	failLogRate  = 5
	failLogBurst = 20
)

func newFailLog(log *slog.Logger) *failLog {
	return &failLog{log: log, limit: rate.NewLimiter(failLogRate, failLogBurst)}
}

// pluginInErr finds the plugin an error names (`plugin "fraud-features"
// ...`), the way plugin failures are worded in plugins/ and the gateway.
var pluginInErr = regexp.MustCompile(`plugin "([A-Za-z0-9][A-Za-z0-9._@-]{0,140})"`)

// failed logs one failed request: route, variant, model version, the plugin
// the error names, the status, the error and the request's event id (the
// id its event carries on weir.events.<route> and in the archive).
func (f *failLog) failed(ev *monitor.Event, d time.Duration) {
	if !f.limit.Allow() {
		f.suppressed.Add(1)
		return
	}
	attrs := []any{"route", ev.Route, "variant", ev.Variant, "model", ev.Model, "version", ev.Version,
		"status", ev.Status, "request_id", ev.ID, "latency", d, "err", ev.Error}
	if m := pluginInErr.FindStringSubmatch(ev.Error); m != nil {
		attrs = append(attrs, "plugin", m[1])
	}
	if n := f.suppressed.Swap(0); n > 0 {
		attrs = append(attrs, "suppressed", n)
	}
	f.log.Warn("request failed", attrs...)
}
