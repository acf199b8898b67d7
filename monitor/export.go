package monitor

import (
	"bytes"
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
// hour, in stream order file by file. It reads one archive file at a time.
// A route with no archive gives a valid file with zero rows.
func ExportFrom(ctx context.Context, store ArchiveStore, route string, since time.Time, w io.Writer) (rows int, err error) {
	if !nameOK.MatchString(route) || strings.Contains(route, "..") {
		return 0, weirerr.Invalidf("export: route %q is not a valid name (want %s)", route, nameOK)
	}
	since = since.UTC()
	keys, err := store.List(ctx, "route="+route+"/")
	if err != nil {
		return 0, fmt.Errorf("export: list the archive: %w", err)
	}
	pw := parquet.NewGenericWriter[ArchiveRow](w, parquet.MaxRowsPerRowGroup(100_000))
	for _, key := range exportKeys(keys, since) {
		b, err := store.Get(ctx, key)
		if err != nil {
			return rows, fmt.Errorf("export: read %s: %w", key, err)
		}
		all, err := parquet.Read[ArchiveRow](bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return rows, fmt.Errorf("export: read %s: %w", key, err)
		}
		keep := all[:0]
		for _, r := range all {
			if !r.TS.Before(since) {
				keep = append(keep, r)
			}
		}
		if _, err := pw.Write(keep); err != nil {
			return rows, fmt.Errorf("export: write rows: %w", err)
		}
		rows += len(keep)
	}
	if err := pw.Close(); err != nil {
		return rows, fmt.Errorf("export: finish parquet file: %w", err)
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
