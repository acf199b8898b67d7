package features

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"

	"github.com/weirhq/weir/internal/weirerr"
)

// Backfill replays historical events from a CSV file (a header row names the
// fields) or a Parquet file (flat columns) through the same path as live
// events: rows are sorted by the set's timestamp_field, validated and
// published to weir.ingest.<set>, where the aggregator folds them in stream,
// hence timestamp, order. progress (may be nil) is called with rows done and
// the total after every batch. n is the number of rows accepted; rejected
// rows are counted in Stats like live ones.
//
// Backfill returns once the rows are durably in the stream; the aggregates
// follow within a flush interval of the aggregator reaching them. Events
// older than a window relative to an entity's newest event are late and
// skipped, so backfill before live traffic for the same entities.
func (s *Store) Backfill(ctx context.Context, set string, r io.Reader, format string, progress func(done, total int)) (int, error) {
	fs, err := s.GetSet(ctx, set)
	if err != nil {
		return 0, err
	}
	var rows []map[string]any
	switch strings.ToLower(format) {
	case "csv":
		rows, err = readCSV(r)
	case "parquet":
		rows, err = readParquet(r)
	default:
		return 0, weirerr.Invalidf("backfill format %q is not supported: expected \"csv\" or \"parquet\"", format)
	}
	if err != nil {
		return 0, err
	}
	if fs.TimestampField != "" {
		ts := make([]int64, len(rows))
		for i, row := range rows {
			ts[i] = math.MaxInt64 // rows without a valid time keep their order at the end
			if v, ok := row[fs.TimestampField]; ok && v != nil {
				if t, err := parseTime(v); err == nil {
					ts[i] = t
				}
			}
		}
		idx := make([]int, len(rows))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return ts[idx[a]] < ts[idx[b]] })
		sorted := make([]map[string]any, len(rows))
		for i, j := range idx {
			sorted[i] = rows[j]
		}
		rows = sorted
	}
	total := len(rows)
	if progress != nil {
		progress(0, total)
	}
	// One id prefix per run: rerunning a backfill inside the stream's
	// duplicate window is recognised as the same rows.
	accepted := 0
	const batch = 2000
	for start := 0; start < total; start += batch {
		end := min(start+batch, total)
		raws := make([][]byte, 0, end-start)
		for _, row := range rows[start:end] {
			b, err := json.Marshal(row)
			if err != nil {
				return accepted, weirerr.Invalidf("backfill row cannot be encoded as JSON: %w", err)
			}
			raws = append(raws, b)
		}
		a, _, err := s.ingestRaw(ctx, set, raws, "bf"+strconv.Itoa(start))
		accepted += a
		if err != nil {
			return accepted, err
		}
		if progress != nil {
			progress(end, total)
		}
	}
	return accepted, nil
}

// csvValue turns a CSV cell into a JSON value: numbers stay numbers, "true"
// and "false" are booleans, an empty cell is absent, the rest are strings.
func csvValue(s string) (any, bool) {
	if s == "" {
		return nil, false
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil && !strings.ContainsAny(s, "xXpP_") && !strings.EqualFold(s, "nan") && !strings.Contains(strings.ToLower(s), "inf") {
		return json.Number(s), true
	}
	if s == "true" || s == "false" {
		return s == "true", true
	}
	return s, true
}

func readCSV(r io.Reader) ([]map[string]any, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, weirerr.Invalidf("backfill CSV is empty: expected a header row naming the fields")
	}
	if err != nil {
		return nil, weirerr.Invalidf("backfill CSV header: %w", err)
	}
	var rows []map[string]any
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, weirerr.Invalidf("backfill CSV: %w", err)
		}
		if len(rec) != len(header) {
			return nil, weirerr.Invalidf("backfill CSV line %d has %d fields, expected %d as in the header", line, len(rec), len(header))
		}
		row := make(map[string]any, len(header))
		for i, h := range header {
			if v, ok := csvValue(rec[i]); ok {
				row[h] = v
			}
		}
		rows = append(rows, row)
	}
}

// readParquet reads a Parquet file with flat columns into rows keyed by
// column name. Integer and floating columns become numbers (a timestamp
// column in unix seconds or milliseconds works as timestamp_field), byte
// arrays strings, booleans booleans; nulls are absent.
func readParquet(r io.Reader) ([]map[string]any, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read parquet: %w", err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, weirerr.Invalidf("backfill file is not Parquet: %w", err)
	}
	cols := f.Schema().Columns()
	names := make([]string, len(cols))
	for i, path := range cols {
		names[i] = strings.Join(path, ".")
	}
	rows := make([]map[string]any, 0, f.NumRows())
	buf := make([]parquet.Row, 256)
	for _, rg := range f.RowGroups() {
		rr := rg.Rows()
		for {
			n, err := rr.ReadRows(buf)
			for _, prow := range buf[:n] {
				row := make(map[string]any, len(names))
				for _, v := range prow {
					if v.IsNull() || v.Column() < 0 || v.Column() >= len(names) {
						continue
					}
					row[names[v.Column()]] = parquetValue(v)
				}
				rows = append(rows, row)
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rr.Close()
				return nil, weirerr.Invalidf("backfill Parquet rows: %w", err)
			}
		}
		rr.Close()
	}
	return rows, nil
}

func parquetValue(v parquet.Value) any {
	switch v.Kind() {
	case parquet.Boolean:
		return v.Boolean()
	case parquet.Int32:
		return json.Number(strconv.FormatInt(int64(v.Int32()), 10))
	case parquet.Int64:
		return json.Number(strconv.FormatInt(v.Int64(), 10))
	case parquet.Float:
		return json.Number(strconv.FormatFloat(float64(v.Float()), 'g', -1, 32))
	case parquet.Double:
		return json.Number(strconv.FormatFloat(v.Double(), 'g', -1, 64))
	case parquet.ByteArray, parquet.FixedLenByteArray:
		return string(v.ByteArray())
	case parquet.Int96:
		return v.Int96().String()
	}
	return v.String()
}
