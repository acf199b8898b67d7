package monitor

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/weirhq/weir/internal/weirerr"
)

// Export is ExportFrom the archive directory dir.
func Export(dir, route string, since time.Time, w io.Writer) (rows int, err error) {
	return ExportFrom(context.Background(), DirArchive(dir), route, since, w)
}

// ExportFrom writes one Parquet file to w holding every archived event of
// route with TS at or after since (PlanExport, then WriteTo).
func ExportFrom(ctx context.Context, store ArchiveStore, route string, since time.Time, w io.Writer) (rows int, err error) {
	x, err := PlanExport(ctx, store, route, ExportOptions{Since: since})
	if err != nil {
		return 0, err
	}
	return x.WriteTo(ctx, w)
}

// The formats an export writes.
const (
	FormatParquet = "parquet"
	FormatCSV     = "csv"
	FormatJSONL   = "jsonl"
)

// ExportOptions choose the events of an export and its format.
type ExportOptions struct {
	// Since keeps events with TS at or after it; Until, when set, events
	// before it.
	Since, Until time.Time
	// Format is FormatParquet (the default), FormatCSV or FormatJSONL.
	Format string
}

// Check says what is wrong with o, if anything.
func (o ExportOptions) Check() error {
	switch o.Format {
	case "", FormatParquet, FormatCSV, FormatJSONL:
	default:
		return weirerr.Invalidf("format %q: want %s, %s or %s", o.Format, FormatParquet, FormatCSV, FormatJSONL)
	}
	if !o.Until.IsZero() && !o.Until.After(o.Since) {
		return weirerr.Invalidf("until (%s) is not after since (%s)", o.Until.Format(time.RFC3339), o.Since.Format(time.RFC3339))
	}
	return nil
}

// Exporter is an export planned: its files chosen and, for Parquet and
// CSV, its columns known, so what can fail before the first byte has.
type Exporter struct {
	store  ArchiveStore
	keys   []string
	opts   ExportOptions
	schema archiveSchema
	raw    bool
}

// PlanExport chooses the archive files of route that can hold events in
// opts' range and, for Parquet and CSV, reads them once for their columns:
// the union of the files' (a feature or output whose type changed between
// files becomes a JSON column). Files of the older layout, with features and
// outputs as JSON strings, export like the others. A route with no archive
// gives an export with zero rows.
func PlanExport(ctx context.Context, store ArchiveStore, route string, opts ExportOptions) (*Exporter, error) {
	if !nameOK.MatchString(route) || strings.Contains(route, "..") {
		return nil, weirerr.Invalidf("export: route %q is not a valid name (want %s)", route, nameOK)
	}
	if err := opts.Check(); err != nil {
		return nil, err
	}
	if opts.Format == "" {
		opts.Format = FormatParquet
	}
	opts.Since, opts.Until = opts.Since.UTC(), opts.Until.UTC()
	all, err := store.List(ctx, "route="+route+"/")
	if err != nil {
		return nil, fmt.Errorf("export: list the archive: %w", err)
	}
	x := &Exporter{store: store, keys: exportKeys(all, opts.Since, opts.Until), opts: opts, schema: newArchiveSchema()}
	if opts.Format == FormatJSONL {
		return x, nil
	}
	for _, key := range x.keys {
		recs, err := x.read(ctx, key)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			x.schema.add(r.ev)
			x.raw = x.raw || r.raw != nil
		}
	}
	return x, nil
}

// ArchivedRoutes lists the routes the archive holds events of.
func ArchivedRoutes(ctx context.Context, store ArchiveStore) ([]string, error) {
	keys, err := store.List(ctx, "route=")
	if err != nil {
		return nil, fmt.Errorf("list the archive: %w", err)
	}
	var routes []string
	for _, key := range keys { // sorted, so one route's keys are together
		r, _, _ := strings.Cut(strings.TrimPrefix(key, "route="), "/")
		if len(routes) == 0 || routes[len(routes)-1] != r {
			routes = append(routes, r)
		}
	}
	return routes, nil
}

// read decodes one file, keeping the events in range.
func (x *Exporter) read(ctx context.Context, key string) ([]archiveRecord, error) {
	b, err := x.store.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("export: read %s: %w", key, err)
	}
	recs, err := readArchiveFile(b)
	if err != nil {
		return nil, fmt.Errorf("export: read %s: %w", key, err)
	}
	keep := recs[:0]
	for _, r := range recs {
		if !r.ev.TS.Before(x.opts.Since) && (x.opts.Until.IsZero() || r.ev.TS.Before(x.opts.Until)) {
			keep = append(keep, r)
		}
	}
	return keep, nil
}

// WriteTo writes the export to w file by file, in partition (hour) order
// and, within an hour, in stream order, holding one file at a time.
func (x *Exporter) WriteTo(ctx context.Context, w io.Writer) (rows int, err error) {
	var out exportWriter
	switch x.opts.Format {
	case FormatCSV:
		out = newCSVExport(w, newArchiveLayout(x.schema, x.raw))
	case FormatJSONL:
		out = &jsonlExport{w: bufio.NewWriter(w)}
	default:
		out = newArchiveWriter(w, x.schema, x.raw, parquet.MaxRowsPerRowGroup(100_000))
	}
	for _, key := range x.keys {
		recs, err := x.read(ctx, key)
		if err != nil {
			return rows, err
		}
		if err := out.write(recs); err != nil {
			return rows, fmt.Errorf("export: %w", err)
		}
		rows += len(recs)
	}
	if err := out.close(); err != nil {
		return rows, fmt.Errorf("export: %w", err)
	}
	return rows, nil
}

// exportWriter writes an export's records in one format.
type exportWriter interface {
	write([]archiveRecord) error
	close() error
}

// jsonlExport writes each event as one line of JSON, as published
// (non-finite numbers as "NaN", "Infinity", "-Infinity").
type jsonlExport struct{ w *bufio.Writer }

func (j *jsonlExport) write(recs []archiveRecord) error {
	for _, r := range recs {
		ev := *r.ev
		ev.Features, _ = jsonSafe(ev.Features).(map[string]any)
		ev.Outputs, _ = jsonSafe(ev.Outputs).(map[string]any)
		b, err := json.Marshal(&ev)
		if err != nil {
			return fmt.Errorf("event %s: %w", ev.ID, err)
		}
		j.w.Write(b)
		if err := j.w.WriteByte('\n'); err != nil {
			return err
		}
	}
	return nil
}

func (j *jsonlExport) close() error { return j.w.Flush() }

// csvExport writes a header, then a row per event: the fixed columns,
// features.NAME and outputs.NAME (sorted), seq, and raw when the archive
// kept it. Time is RFC 3339 in UTC; an absent value is an empty field; a
// JSON column's value is its JSON.
type csvExport struct {
	w   *csv.Writer
	l   *archiveLayout
	rec []string
}

func newCSVExport(w io.Writer, l *archiveLayout) *csvExport {
	c := &csvExport{w: csv.NewWriter(w), l: l}
	for _, col := range fixedColumns {
		c.rec = append(c.rec, col.name)
	}
	for _, col := range l.features {
		c.rec = append(c.rec, "features."+col.name)
	}
	for _, col := range l.outputs {
		c.rec = append(c.rec, "outputs."+col.name)
	}
	c.rec = append(c.rec, "seq")
	if l.raw {
		c.rec = append(c.rec, "raw")
	}
	c.w.Write(c.rec)
	return c
}

func (c *csvExport) write(recs []archiveRecord) error {
	for _, r := range recs {
		ev := r.ev
		rec := append(c.rec[:0], ev.ID, ev.TS.UTC().Format(time.RFC3339Nano), ev.Route, ev.Variant, ev.Model, ev.Version,
			strconv.FormatBool(ev.Shadow), strconv.FormatBool(ev.Pinned), strconv.FormatBool(ev.Truncated),
			strconv.Itoa(ev.Status), strconv.FormatInt(ev.LatencyUS, 10), ev.Error)
		for _, col := range c.l.features {
			rec = append(rec, csvValue(ev.Features[col.name]))
		}
		for _, col := range c.l.outputs {
			rec = append(rec, csvValue(ev.Outputs[col.name]))
		}
		rec = append(rec, strconv.FormatUint(r.seq, 10))
		if c.l.raw {
			rec = append(rec, string(r.raw))
		}
		if err := c.w.Write(rec); err != nil {
			return err
		}
	}
	return nil
}

func (c *csvExport) close() error {
	c.w.Flush()
	return c.w.Error()
}

// csvValue is one feature or output as a CSV field.
func csvValue(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	}
	if f, ok := toFloat(v); ok {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	b, _ := json.Marshal(jsonSafe(v))
	return string(b)
}

// exportKeys keeps the finished files (route=R/date=D/hour=H/name) whose
// hour partition can hold events at or after since and, when until is set,
// before it. Sorted keys are in date, hour, then first sequence order.
func exportKeys(keys []string, since, until time.Time) []string {
	firstHour := since.Truncate(time.Hour)
	var out []string
	for _, key := range keys {
		parts := strings.Split(key, "/")
		if len(parts) != 4 || !archiveName.MatchString(parts[3]) { // never temp files
			continue
		}
		day, err := time.Parse("date=2006-01-02", parts[1])
		if err != nil {
			continue
		}
		var hh int
		if _, err := fmt.Sscanf(parts[2], "hour=%02d", &hh); err != nil {
			continue
		}
		hour := day.Add(time.Duration(hh) * time.Hour)
		if hour.Before(firstHour) || !until.IsZero() && !hour.Before(until) {
			continue
		}
		out = append(out, path.Clean(key))
	}
	return out
}
