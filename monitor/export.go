package monitor

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/weirhq/weir/internal/weirerr"
)

// Export writes one Parquet file to w holding every archived event of route
// with TS at or after since, in partition (hour) order and, within an hour,
// in stream order file by file. It reads one archive file at a time. A route
// with no archive gives a valid file with zero rows.
func Export(dir, route string, since time.Time, w io.Writer) (rows int, err error) {
	if !nameOK.MatchString(route) || strings.Contains(route, "..") {
		return 0, weirerr.Invalidf("export: route %q is not a valid name (want %s)", route, nameOK)
	}
	since = since.UTC()
	files, err := exportFiles(filepath.Join(dir, "route="+route), since)
	if err != nil {
		return 0, err
	}
	pw := parquet.NewGenericWriter[ArchiveRow](w, parquet.MaxRowsPerRowGroup(100_000))
	for _, f := range files {
		all, err := parquet.ReadFile[ArchiveRow](f)
		if err != nil {
			return rows, fmt.Errorf("export: read %s: %w", f, err)
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

// exportFiles lists the finished archive files of one route whose hour
// partition can hold events at or after since, oldest hour first.
func exportFiles(routeDir string, since time.Time) ([]string, error) {
	dates, err := os.ReadDir(routeDir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("export: list %s: %w", routeDir, err)
	}
	firstHour := since.Truncate(time.Hour)
	var out []string
	for _, d := range dates {
		day, err := time.Parse("date=2006-01-02", d.Name())
		if err != nil || !d.IsDir() {
			continue
		}
		hours, err := os.ReadDir(filepath.Join(routeDir, d.Name()))
		if err != nil {
			return nil, fmt.Errorf("export: list %s: %w", d.Name(), err)
		}
		for _, h := range hours {
			var hh int
			if _, err := fmt.Sscanf(h.Name(), "hour=%02d", &hh); err != nil || !h.IsDir() {
				continue
			}
			if day.Add(time.Duration(hh) * time.Hour).Before(firstHour) {
				continue
			}
			hourDir := filepath.Join(routeDir, d.Name(), h.Name())
			entries, err := os.ReadDir(hourDir)
			if err != nil {
				return nil, fmt.Errorf("export: list %s: %w", hourDir, err)
			}
			for _, e := range entries {
				if archiveName.MatchString(e.Name()) { // never temp files
					out = append(out, filepath.Join(hourDir, e.Name()))
				}
			}
		}
	}
	// Paths sort by date, hour, then first sequence.
	sort.Strings(out)
	return out, nil
}
