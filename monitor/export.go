package monitor

import (
	"context"
	"fmt"
	"io"
	"path"
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
// route with TS at or after since, in partition (hour) order and, within an
// hour, in stream order file by file. Its columns are the union of the
// files' (a feature or output whose type changed between files becomes a
// JSON column), so it reads every file twice, holding one at a time. Files
// of the older layout, with features and outputs as JSON strings, export
// like the others. A route with no archive gives a valid file with zero
// rows.
func ExportFrom(ctx context.Context, store ArchiveStore, route string, since time.Time, w io.Writer) (rows int, err error) {
	if !nameOK.MatchString(route) || strings.Contains(route, "..") {
		return 0, weirerr.Invalidf("export: route %q is not a valid name (want %s)", route, nameOK)
	}
	since = since.UTC()
	all, err := store.List(ctx, "route="+route+"/")
	if err != nil {
		return 0, fmt.Errorf("export: list the archive: %w", err)
	}
	keys := exportKeys(all, since)
	read := func(key string) ([]archiveRecord, error) {
		b, err := store.Get(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("export: read %s: %w", key, err)
		}
		recs, err := readArchiveFile(b)
		if err != nil {
			return nil, fmt.Errorf("export: read %s: %w", key, err)
		}
		keep := recs[:0]
		for _, r := range recs {
			if !r.ev.TS.Before(since) {
				keep = append(keep, r)
			}
		}
		return keep, nil
	}
	schema, raw := newArchiveSchema(), false
	for _, key := range keys {
		recs, err := read(key)
		if err != nil {
			return 0, err
		}
		for _, r := range recs {
			schema.add(r.ev)
			raw = raw || r.raw != nil
		}
	}
	pw := newArchiveWriter(w, schema, raw, parquet.MaxRowsPerRowGroup(100_000))
	for _, key := range keys {
		recs, err := read(key)
		if err != nil {
			return rows, err
		}
		if err := pw.write(recs); err != nil {
			return rows, fmt.Errorf("export: %w", err)
		}
		rows += len(recs)
	}
	if err := pw.close(); err != nil {
		return rows, fmt.Errorf("export: %w", err)
	}
	return rows, nil
}

// exportKeys keeps the finished files (route=R/date=D/hour=H/name) whose
// hour partition can hold events at or after since. Sorted keys are in
// date, hour, then first sequence order.
func exportKeys(keys []string, since time.Time) []string {
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
		if day.Add(time.Duration(hh) * time.Hour).Before(firstHour) {
			continue
		}
		out = append(out, path.Clean(key))
	}
	return out
}
