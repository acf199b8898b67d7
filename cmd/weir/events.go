package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weirhq/weir/monitor"
	"github.com/weirhq/weir/sdk/client"
)

func init() { extraCommands = append(extraCommands, newEventsCmd) }

func newEventsCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "events", Short: "Work with the archived inference events"}
	var route, out, format, archiveDir, since, until string
	export := &cobra.Command{
		Use:   "export ROUTE [--since 1h] [--until T] [--format parquet|csv|jsonl] [-o FILE]",
		Short: "Write a route's archived events into one file for a notebook (from the gateway's GET /v1/events, or a local --archive-dir)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) == 1 && route != "" && args[0] != route:
				return fmt.Errorf("the route is given twice: %s and --route %s", args[0], route)
			case len(args) == 1:
				route = args[0]
			case route == "":
				return fmt.Errorf("which route? weir events export ROUTE (weir route ls lists them)")
			}
			now := time.Now()
			q, err := eventsQuery(now, since, until, format, out)
			if err != nil {
				return err
			}
			if out == "" {
				out = fmt.Sprintf("%s-events.%s", route, q.Format)
			}
			w := cmd.OutOrStdout()
			var tmp *os.File
			if out != "-" { // a failure leaves no file that looks whole
				if tmp, err = os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*"); err != nil {
					return err
				}
				defer os.Remove(tmp.Name())
				w = tmp
			}
			n, err := exportEvents(cmd, cf, archiveDir, route, q, w)
			if tmp != nil {
				if cerr := tmp.Close(); err == nil {
					err = cerr
				}
				if err == nil {
					err = os.Rename(tmp.Name(), out)
				}
			}
			if err != nil {
				return err
			}
			from := "the archive's start"
			if !q.Since.IsZero() {
				from = q.Since.Format(time.RFC3339)
			}
			if out != "-" {
				fmt.Fprintf(cmd.ErrOrStderr(), "route %s's events since %s: %d bytes of %s written to %s\n", route, from, n, q.Format, out)
			}
			return nil
		},
	}
	fl := export.Flags()
	fl.StringVar(&route, "route", "", "route whose events to export (or give it as the argument)")
	fl.StringVar(&since, "since", "1h", "the oldest events: a duration back from now (1h, 30m) or an RFC 3339 time; empty for the archive's start")
	fl.StringVar(&until, "until", "", "events before this: a duration back from now or an RFC 3339 time (default: up to now)")
	fl.StringVar(&format, "format", "", "parquet, csv or jsonl (default: from the -o file's extension, else parquet)")
	fl.StringVarP(&out, "output", "o", "", "output file, - for stdout (default <route>-events.<format>)")
	fl.StringVar(&archiveDir, "archive-dir", "", "read a local archive directory (a gateway's --archive-dir) instead of asking the gateway")
	cmd.AddCommand(export)
	return cmd
}

// eventsQuery reads export's --since, --until and --format (or out's
// extension).
func eventsQuery(now time.Time, since, until, format, out string) (client.EventsQuery, error) {
	var q client.EventsQuery
	var err error
	if q.Since, err = timeFlag("--since", since, now); err != nil {
		return q, err
	}
	if q.Until, err = timeFlag("--until", until, now); err != nil {
		return q, err
	}
	q.Format = format
	if q.Format == "" {
		switch strings.ToLower(filepath.Ext(out)) {
		case ".csv":
			q.Format = monitor.FormatCSV
		case ".jsonl", ".ndjson":
			q.Format = monitor.FormatJSONL
		default:
			q.Format = monitor.FormatParquet
		}
	}
	return q, monitor.ExportOptions{Since: q.Since, Until: q.Until, Format: q.Format}.Check()
}

// timeFlag is a duration back from now or an RFC 3339 time; empty is zero.
func timeFlag(name, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q: want a duration back from now (1h) or an RFC 3339 time (2026-12-08T04:00:00Z)", name, s)
	}
	return t, nil
}

// exportEvents writes the export to w: from the gateway, or from a local
// archive directory.
func exportEvents(cmd *cobra.Command, cf *clientFlags, dir, route string, q client.EventsQuery, w io.Writer) (int64, error) {
	ctx := cmd.Context()
	if dir == "" {
		return cf.client().ExportEvents(ctx, route, q, w)
	}
	x, err := monitor.PlanExport(ctx, monitor.DirArchive(dir), route, monitor.ExportOptions{Since: q.Since, Until: q.Until, Format: q.Format})
	if err != nil {
		return 0, err
	}
	cw := &countWriter{w: w}
	_, err = x.WriteTo(ctx, cw)
	return cw.n, err
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
