package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/monitor"
)

// exportContentTypes are the media types of the export formats.
var exportContentTypes = map[string]string{
	monitor.FormatParquet: "application/vnd.apache.parquet",
	monitor.FormatCSV:     "text/csv; charset=utf-8",
	monitor.FormatJSONL:   "application/jsonl",
}

// exportEvents serves GET /v1/events?route=R[&since=T][&until=T][&format=F]:
// a route's archived events (the archive the monitor writes, object store or
// --archive-dir), streamed file by file. Everything that can be refused
// (names, times, format, an unknown route, an unreadable archive) is
// refused before the first byte; a failure while streaming cuts the
// connection, so a client sees a truncated body, never a short file that
// looks whole.
func (g *Gateway) exportEvents(c *fiber.Ctx) error {
	route := c.Query("route")
	if route == "" {
		return weirerr.Invalidf("route: missing, want GET /v1/events?route=ROUTE")
	}
	if err := checkName("route", route); err != nil {
		return err
	}
	opts := monitor.ExportOptions{Format: c.Query("format", monitor.FormatParquet)}
	var err error
	if opts.Since, err = timeQuery(c, "since"); err != nil {
		return err
	}
	if opts.Until, err = timeQuery(c, "until"); err != nil {
		return err
	}
	if err := opts.Check(); err != nil {
		return err
	}
	ctx := c.UserContext()
	if err := g.knownRoute(ctx, route); err != nil {
		return err
	}
	x, err := monitor.PlanExport(ctx, g.archive, route, opts)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, exportContentTypes[opts.Format])
	c.Set(fiber.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="%s-events.%s"`, route, opts.Format))
	conn, writeTimeout := c.Context().Conn(), g.opts.WriteTimeout
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		finished := false
		defer func() {
			if !finished { // cut the answer: never a short file that looks whole
				conn.Close()
			}
		}()
		// After the handler: recoverPanics no longer covers it.
		defer g.recoverGo("event export of route " + route)
		// The request's deadline is over once the handler returns; the
		// export has its own, and each write its --write-timeout.
		ctx, cancel := context.WithTimeout(context.Background(), exportTimeout)
		defer cancel()
		rows, err := x.WriteTo(ctx, deadlineWriter{w, conn, writeTimeout})
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			g.log.Warn("event export cut short", "route", route, "rows", rows, "err", err)
			return
		}
		finished = true
	})
	return nil
}

// exportTimeout bounds one export's streaming.
const exportTimeout = time.Hour

// deadlineWriter gives each write to conn its own deadline, so a large
// export is bounded per write (a stalled reader), not as a whole.
type deadlineWriter struct {
	w    io.Writer
	conn net.Conn
	d    time.Duration
}

func (dw deadlineWriter) Write(p []byte) (int, error) {
	if err := dw.conn.SetWriteDeadline(time.Now().Add(dw.d)); err != nil {
		return 0, err
	}
	return dw.w.Write(p)
}

// knownRoute is nil for a route served now or with events in the archive,
// and otherwise a 404 naming the routes there are.
func (g *Gateway) knownRoute(ctx context.Context, route string) error {
	if _, ok := g.routes.Get(route); ok {
		return nil
	}
	archived, err := monitor.ArchivedRoutes(ctx, g.archive)
	if err != nil {
		return err
	}
	if slices.Contains(archived, route) {
		return nil
	}
	known := archived
	for _, r := range g.routes.List() {
		known = append(known, r.Name())
	}
	slices.Sort(known)
	known = slices.Compact(known)
	if len(known) == 0 {
		return weirerr.NotFoundf("route %q not found: there are no routes and no archived events", route)
	}
	return weirerr.NotFoundf("route %q not found: the routes are %s", route, strings.Join(known, ", "))
}

// timeQuery parses an optional RFC 3339 query parameter.
func timeQuery(c *fiber.Ctx, key string) (time.Time, error) {
	s := c.Query(key)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, weirerr.Invalidf("%s=%q: want an RFC 3339 time such as 2026-12-08T04:00:00Z", key, s)
	}
	return t, nil
}
