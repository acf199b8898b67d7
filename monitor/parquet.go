package monitor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"reflect"
	"sort"
	"time"
	"unsafe"

	kzstd "github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/parquet-go/parquet-go/encoding"
	"github.com/parquet-go/parquet-go/format"
)

// The archive's Parquet layout. A file holds the events of one route and
// hour that share a schema:
//
//	id, ts, route, variant, model, version, shadow, pinned, truncated,
//	status, latency_us, error (null when none),
//	features.<name>...  one optional column per feature,
//	outputs.<name>...   one optional column per output,
//	seq,                the WEIR_EVENTS stream sequence,
//	raw                 the event's JSON (only with ArchiverOptions.Raw).
//
// A feature or output column is DOUBLE for numbers (the strings "NaN",
// "Infinity" and "-Infinity", which is how events carry non-finite values,
// are stored as those doubles), STRING, BOOLEAN, or JSON text for arrays and
// objects. A value an event lacks, or JSON null, is a null.
//
// Files written before these columns existed hold features and outputs as
// JSON strings; readArchiveFile reads both.

// colKind is the type of one feature or output column.
type colKind uint8

const (
	kindNull      colKind = iota // only nulls so far: no type yet
	kindNonFinite                // only "NaN"/"Infinity"/"-Infinity" so far
	kindNumber
	kindString
	kindBool
	kindJSON
)

func (k colKind) String() string {
	return [...]string{"null", "non-finite", "double", "string", "boolean", "json"}[k]
}

// kindOf is the column kind a decoded JSON value needs.
func kindOf(v any) colKind {
	switch x := v.(type) {
	case nil:
		return kindNull
	case float64, float32, int, int32, int64, uint32, uint64:
		return kindNumber
	case string:
		if _, ok := nonFinite(x); ok {
			return kindNonFinite
		}
		return kindString
	case bool:
		return kindBool
	}
	return kindJSON
}

func nonFinite(s string) (float64, bool) {
	switch s {
	case "NaN":
		return math.NaN(), true
	case "Infinity":
		return math.Inf(1), true
	case "-Infinity":
		return math.Inf(-1), true
	}
	return 0, false
}

// mergeKind is the kind of a column holding values of kinds a and b; ok is
// false when no one column can hold both.
func mergeKind(a, b colKind) (colKind, bool) {
	switch {
	case a == b || b == kindNull:
		return a, true
	case a == kindNull:
		return b, true
	case a == kindNonFinite && (b == kindNumber || b == kindString):
		return b, true
	case b == kindNonFinite && (a == kindNumber || a == kindString):
		return a, true
	}
	return a, false
}

// archiveSchema is the feature and output columns of one archive file.
type archiveSchema struct {
	features, outputs map[string]colKind
}

func newArchiveSchema() archiveSchema {
	return archiveSchema{features: map[string]colKind{}, outputs: map[string]colKind{}}
}

func (s archiveSchema) empty() bool { return len(s.features)+len(s.outputs) == 0 }

// accepts says whether ev can go into a file of schema s: each of its
// features and outputs has a column there that can hold its value. (An event
// lacking some of them is fine: those are nulls.) An empty schema, the one
// of a file that so far holds only events without features and outputs
// (failed requests), accepts every event.
func (s archiveSchema) accepts(ev *Event) bool {
	if s.empty() {
		return true
	}
	return acceptsAll(s.features, ev.Features) && acceptsAll(s.outputs, ev.Outputs)
}

func acceptsAll(cols map[string]colKind, vals map[string]any) bool {
	for name, v := range vals {
		k, ok := cols[name]
		if !ok {
			return false
		}
		if _, ok := mergeKind(k, kindOf(v)); !ok {
			return false
		}
	}
	return true
}

// same says whether ev has exactly the features and outputs of s.
func (s archiveSchema) same(ev *Event) bool {
	return len(ev.Features) == len(s.features) && len(ev.Outputs) == len(s.outputs) && s.accepts(ev)
}

// add widens s to hold ev; a value whose kind conflicts with its column
// turns the column into JSON (only export does that: the Archiver starts a
// new file instead, see accepts).
func (s archiveSchema) add(ev *Event) {
	addAll(s.features, ev.Features)
	addAll(s.outputs, ev.Outputs)
}

func addAll(cols map[string]colKind, vals map[string]any) {
	for name, v := range vals {
		k, ok := mergeKind(cols[name], kindOf(v))
		if !ok {
			k = kindJSON
		}
		cols[name] = k
	}
}

// archiveRecord is one event on its way into or out of an archive file.
type archiveRecord struct {
	ev  *Event
	seq uint64
	// raw is the event's JSON as published, for the raw column (nil:
	// none, a null there).
	raw []byte
}

// The fixed columns, in file order. Their indexes are their leaf column
// indexes; the feature, output, seq and raw columns follow.
var fixedColumns = []struct {
	name string
	node parquet.Node
}{
	{"id", parquet.String()},
	{"ts", parquet.Timestamp(parquet.Microsecond)},
	{"route", parquet.String()},
	{"variant", parquet.String()},
	{"model", parquet.String()},
	{"version", parquet.String()},
	{"shadow", parquet.Leaf(parquet.BooleanType)},
	{"pinned", parquet.Leaf(parquet.BooleanType)},
	{"truncated", parquet.Leaf(parquet.BooleanType)},
	{"status", parquet.Leaf(parquet.Int32Type)},
	{"latency_us", parquet.Leaf(parquet.Int64Type)},
	{"error", parquet.Optional(parquet.String())},
}

func kindNode(k colKind) parquet.Node {
	switch k {
	case kindNumber, kindNonFinite:
		return parquet.Optional(parquet.Leaf(parquet.DoubleType))
	case kindString:
		return parquet.Optional(parquet.String())
	case kindBool:
		return parquet.Optional(parquet.Leaf(parquet.BooleanType))
	}
	return parquet.Optional(parquet.JSON()) // JSON values, and columns that only saw nulls
}

// archiveLayout is a file's schema with the leaf column order writing uses.
type archiveLayout struct {
	schema            *parquet.Schema
	features, outputs []column // sorted by name
	raw               bool
}

// column is a feature or output column: its name and kind.
type column struct {
	name string
	kind colKind
}

// width is how many leaf columns a row of l has.
func (l *archiveLayout) width() int {
	n := len(fixedColumns) + len(l.features) + len(l.outputs) + 1 // seq
	if l.raw {
		n++
	}
	return n
}

func newArchiveLayout(s archiveSchema, raw bool) *archiveLayout {
	l := &archiveLayout{raw: raw}
	var root orderedGroup
	for _, c := range fixedColumns {
		root = append(root, field{c.node, c.name})
	}
	group := func(name string, cols map[string]colKind) []column {
		names := make([]string, 0, len(cols))
		for n := range cols {
			names = append(names, n)
		}
		sort.Strings(names)
		if len(names) == 0 {
			return nil // an empty group is not valid Parquet
		}
		var g orderedGroup
		layout := make([]column, len(names))
		for i, n := range names {
			g = append(g, field{kindNode(cols[n]), n})
			layout[i] = column{n, cols[n]}
		}
		root = append(root, field{g, name})
		return layout
	}
	l.features = group("features", s.features)
	l.outputs = group("outputs", s.outputs)
	root = append(root, field{parquet.Leaf(parquet.Int64Type), "seq"})
	if raw {
		root = append(root, field{parquet.Optional(parquet.JSON()), "raw"})
	}
	l.schema = parquet.NewSchema("weir_event", root)
	return l
}

// row appends r's values, a row of l, to buf.
func (l *archiveLayout) row(r archiveRecord, buf parquet.Row) (parquet.Row, error) {
	ev := r.ev
	col := 0
	req := func(v parquet.Value) {
		buf = append(buf, v.Level(0, 0, col))
		col++
	}
	opt := func(v parquet.Value) { // null or a value of an optional leaf in required groups
		if v.IsNull() {
			buf = append(buf, v.Level(0, 0, col))
		} else {
			buf = append(buf, v.Level(0, 1, col))
		}
		col++
	}
	req(stringValue(ev.ID))
	req(parquet.Int64Value(ev.TS.UTC().UnixMicro()))
	req(stringValue(ev.Route))
	req(stringValue(ev.Variant))
	req(stringValue(ev.Model))
	req(stringValue(ev.Version))
	req(parquet.BooleanValue(ev.Shadow))
	req(parquet.BooleanValue(ev.Pinned))
	req(parquet.BooleanValue(ev.Truncated))
	req(parquet.Int32Value(int32(ev.Status)))
	req(parquet.Int64Value(ev.LatencyUS))
	if ev.Error == "" {
		opt(parquet.NullValue())
	} else {
		opt(stringValue(ev.Error))
	}
	for _, g := range [...]struct {
		prefix string
		cols   []column
		vals   map[string]any
	}{{"features", l.features, ev.Features}, {"outputs", l.outputs, ev.Outputs}} {
		for _, c := range g.cols {
			v, err := columnValue(c.kind, g.vals[c.name])
			if err != nil {
				return nil, fmt.Errorf("event %s: %s %q: %w", ev.ID, g.prefix, c.name, err)
			}
			opt(v)
		}
	}
	req(parquet.Int64Value(int64(r.seq)))
	if l.raw {
		if r.raw == nil { // exported from a file written without it
			opt(parquet.NullValue())
		} else {
			opt(parquet.ByteArrayValue(r.raw))
		}
	}
	return buf, nil
}

// stringValue is a BYTE_ARRAY value of s's bytes, not a copy of them (as
// parquet.ValueOf makes of a string, but without boxing it): the writer
// only reads them, into its pages, within the call that takes the row.
func stringValue(s string) parquet.Value {
	return parquet.ByteArrayValue(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// columnValue is v in a column of kind k.
func columnValue(k colKind, v any) (parquet.Value, error) {
	if v == nil {
		return parquet.NullValue(), nil
	}
	switch k {
	case kindNumber, kindNonFinite:
		switch x := v.(type) {
		case string:
			if f, ok := nonFinite(x); ok {
				return parquet.DoubleValue(f), nil
			}
		case bool, []any, map[string]any:
		default:
			if f, ok := toFloat(x); ok {
				return parquet.DoubleValue(f), nil
			}
		}
	case kindString:
		if s, ok := v.(string); ok {
			return stringValue(s), nil
		}
	case kindBool:
		if b, ok := v.(bool); ok {
			return parquet.BooleanValue(b), nil
		}
	case kindJSON, kindNull:
		b, err := json.Marshal(jsonSafe(v))
		if err != nil {
			return parquet.Value{}, err
		}
		return parquet.ByteArrayValue(b), nil
	}
	return parquet.Value{}, fmt.Errorf("value %v (%T) does not fit a %s column", v, v, k)
}

func toFloat(v any) (float64, bool) {
	rv := reflect.ValueOf(v)
	switch {
	case rv.CanFloat():
		return rv.Float(), true
	case rv.CanInt():
		return float64(rv.Int()), true
	case rv.CanUint():
		return float64(rv.Uint()), true
	}
	return 0, false
}

// jsonSafe replaces non-finite floats (which JSON cannot hold) with the
// strings events use for them.
func jsonSafe(v any) any {
	switch x := v.(type) {
	case float64:
		switch {
		case math.IsNaN(x):
			return "NaN"
		case math.IsInf(x, 1):
			return "Infinity"
		case math.IsInf(x, -1):
			return "-Infinity"
		}
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonSafe(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonSafe(e)
		}
		return out
	}
	return v
}

// archivePageBytes sizes the column buffers of the Archiver's files, whose
// columns hold a few KiB each (one flush's events). parquet-go's default,
// 256 KiB per column, came from pools a busy gateway's collections keep
// emptying: 3.5 MB allocated per file instead of 1.2.
const archivePageBytes = 16 << 10

// writeArchiveFile writes recs as one Parquet file of schema s to w.
func writeArchiveFile(w io.Writer, s archiveSchema, raw bool, recs []archiveRecord) error {
	fw := newArchiveWriter(w, s, raw, parquet.PageBufferSize(archivePageBytes))
	if err := fw.write(recs); err != nil {
		return err
	}
	return fw.close()
}

// archiveWriter writes records of one layout to a Parquet file.
type archiveWriter struct {
	l   *archiveLayout
	w   *parquet.Writer
	buf []parquet.Row
}

// archiveCodec compresses every archive file with one zstd encoder held for
// the life of the process. A fresh encoder allocates its history window (a
// MiB), and parquet-go's own codec keeps its encoders in a sync.Pool, which
// every garbage collection empties: in a gateway under load, most files paid
// for a new encoder (BenchmarkWriteArchiveFile/after-gc).
var archiveCodec = newHeldZstd()

// heldZstd is parquet-go's zstd codec (its name, its decoder) encoding with
// one encoder, made as parquet-go makes its own. EncodeAll may be called
// from several goroutines at once.
type heldZstd struct {
	zstd.Codec
	enc *kzstd.Encoder
}

func newHeldZstd() *heldZstd {
	enc, err := kzstd.NewWriter(nil, kzstd.WithEncoderConcurrency(1), kzstd.WithEncoderLevel(zstd.DefaultLevel),
		kzstd.WithZeroFrames(true), kzstd.WithEncoderCRC(false))
	if err != nil {
		panic(err) // only for invalid options
	}
	return &heldZstd{enc: enc}
}

func (c *heldZstd) Encode(dst, src []byte) ([]byte, error) { return c.enc.EncodeAll(src, dst[:0]), nil }

func newArchiveWriter(w io.Writer, s archiveSchema, raw bool, opts ...parquet.WriterOption) *archiveWriter {
	l := newArchiveLayout(s, raw)
	opts = append([]parquet.WriterOption{l.schema, parquet.Compression(archiveCodec)}, opts...)
	return &archiveWriter{l: l, w: parquet.NewWriter(w, opts...)}
}

func (fw *archiveWriter) write(recs []archiveRecord) error {
	fw.buf = fw.buf[:0]
	// Every row's values in one allocation, each row a window of it.
	vals := make(parquet.Row, 0, len(recs)*fw.l.width())
	for _, r := range recs {
		start := len(vals)
		var err error
		if vals, err = fw.l.row(r, vals); err != nil {
			return err
		}
		fw.buf = append(fw.buf, vals[start:len(vals):len(vals)])
	}
	if _, err := fw.w.WriteRows(fw.buf); err != nil {
		return fmt.Errorf("write parquet rows: %w", err)
	}
	return nil
}

func (fw *archiveWriter) close() error {
	if err := fw.w.Close(); err != nil {
		return fmt.Errorf("finish parquet file: %w", err)
	}
	return nil
}

// readArchiveFile decodes every row of an archive file, of this layout or
// the older one with features and outputs as JSON strings. Columns it does
// not know are skipped, so files from a newer weir still read.
func readArchiveFile(b []byte) ([]archiveRecord, error) {
	f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, err
	}
	type leaf struct {
		path []string
		json bool
	}
	var leaves []leaf
	var walk func(n parquet.Node, path []string)
	walk = func(n parquet.Node, path []string) {
		if n.Leaf() {
			lt := n.Type().LogicalType()
			isJSON := lt != nil && lt.Value != nil
			if isJSON {
				_, isJSON = lt.Value.(*format.JsonType)
			}
			leaves = append(leaves, leaf{path: path, json: isJSON})
			return
		}
		for _, fl := range n.Fields() {
			walk(fl, append(path[:len(path):len(path)], fl.Name()))
		}
	}
	walk(f.Schema(), nil)

	out := make([]archiveRecord, 0, f.NumRows())
	rows := make([]parquet.Row, 256)
	for _, rg := range f.RowGroups() {
		rr := rg.Rows()
		for {
			n, err := rr.ReadRows(rows)
			for _, row := range rows[:n] {
				rec, err := decodeArchiveRow(row, func(c int) ([]string, bool) {
					if c < 0 || c >= len(leaves) {
						return nil, false
					}
					return leaves[c].path, leaves[c].json
				})
				if err != nil {
					_ = rr.Close()
					return nil, err
				}
				out = append(out, rec)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				_ = rr.Close()
				return nil, err
			}
		}
		if err := rr.Close(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func decodeArchiveRow(row parquet.Row, leafOf func(int) ([]string, bool)) (archiveRecord, error) {
	ev := &Event{}
	rec := archiveRecord{ev: ev}
	for _, v := range row {
		path, isJSON := leafOf(v.Column())
		if len(path) == 0 || v.IsNull() {
			continue
		}
		str := func() string { return string(v.ByteArray()) }
		switch path[0] {
		case "id":
			ev.ID = str()
		case "ts":
			ev.TS = time.UnixMicro(v.Int64()).UTC()
		case "route":
			ev.Route = str()
		case "variant":
			ev.Variant = str()
		case "model":
			ev.Model = str()
		case "version":
			ev.Version = str()
		case "shadow":
			ev.Shadow = v.Boolean()
		case "pinned":
			ev.Pinned = v.Boolean()
		case "truncated":
			ev.Truncated = v.Boolean()
		case "status":
			ev.Status = int(v.Int32())
		case "latency_us":
			ev.LatencyUS = v.Int64()
		case "error":
			ev.Error = str()
		case "seq":
			rec.seq = uint64(v.Int64())
		case "raw":
			rec.raw = bytes.Clone(v.ByteArray())
		case "features", "outputs":
			m := &ev.Features
			if path[0] == "outputs" {
				m = &ev.Outputs
			}
			if len(path) == 1 { // the older layout: one JSON object
				if err := json.Unmarshal(v.ByteArray(), m); err != nil {
					return rec, fmt.Errorf("event %s: %s column is not a JSON object: %w", ev.ID, path[0], err)
				}
				continue
			}
			if len(path) != 2 {
				continue
			}
			var x any
			switch {
			case isJSON:
				if err := json.Unmarshal(v.ByteArray(), &x); err != nil {
					return rec, fmt.Errorf("event %s: %s %q: %w", ev.ID, path[0], path[1], err)
				}
			case v.Kind() == parquet.Double:
				x = v.Double()
			case v.Kind() == parquet.Boolean:
				x = v.Boolean()
			case v.Kind() == parquet.ByteArray:
				x = str()
			default:
				continue
			}
			if *m == nil {
				*m = map[string]any{}
			}
			(*m)[path[1]] = x
		}
	}
	return rec, nil
}

// orderedGroup is a Parquet group whose fields keep the order given
// (parquet.Group sorts them by name), so id and ts come first.
type orderedGroup []parquet.Field

type field struct {
	parquet.Node
	name string
}

func (f field) Name() string                           { return f.name }
func (f field) Value(base reflect.Value) reflect.Value { return reflect.Value{} }

func (g orderedGroup) ID() int                     { return 0 }
func (g orderedGroup) String() string              { return fmt.Sprintf("group(%d fields)", len(g)) }
func (g orderedGroup) Type() parquet.Type          { return parquet.Group{}.Type() }
func (g orderedGroup) Optional() bool              { return false }
func (g orderedGroup) Repeated() bool              { return false }
func (g orderedGroup) Required() bool              { return true }
func (g orderedGroup) Leaf() bool                  { return false }
func (g orderedGroup) Fields() []parquet.Field     { return g }
func (g orderedGroup) Encoding() encoding.Encoding { return nil }
func (g orderedGroup) Compression() compress.Codec { return nil }
func (g orderedGroup) GoType() reflect.Type        { return reflect.TypeFor[map[string]any]() }
