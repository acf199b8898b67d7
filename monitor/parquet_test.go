package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/weirhq/weir/internal/natsx/natstest"
	"github.com/weirhq/weir/internal/testpoll"
)

// typedRow is how an analyst's typed reader sees an archive file of the
// fraud example's schema; parquet-go maps the columns by name.
type typedRow struct {
	ID        string    `parquet:"id"`
	TS        time.Time `parquet:"ts,timestamp(microsecond)"`
	Route     string    `parquet:"route"`
	Variant   string    `parquet:"variant"`
	Model     string    `parquet:"model"`
	Version   string    `parquet:"version"`
	Pinned    bool      `parquet:"pinned"`
	Status    int32     `parquet:"status"`
	LatencyUS int64     `parquet:"latency_us"`
	Error     *string   `parquet:"error,optional"`
	Features  struct {
		Amount  *float64 `parquet:"amount,optional"`
		Country *string  `parquet:"country,optional"`
		Online  *bool    `parquet:"online,optional"`
		Vec     *string  `parquet:"vec,optional"`
	} `parquet:"features"`
	Outputs struct {
		Score *float64 `parquet:"score,optional"`
	} `parquet:"outputs"`
	Seq int64   `parquet:"seq"`
	Raw *string `parquet:"raw,optional"`
}

// legacyRow is the archive's first layout: features and outputs as JSON
// strings. Files like it are still in archives and must still export.
type legacyRow struct {
	ID        string    `parquet:"id"`
	TS        time.Time `parquet:"ts,timestamp(microsecond)"`
	Route     string    `parquet:"route"`
	Variant   string    `parquet:"variant"`
	Model     string    `parquet:"model"`
	Version   string    `parquet:"version"`
	Status    int32     `parquet:"status"`
	LatencyUS int64     `parquet:"latency_us"`
	Error     string    `parquet:"error"`
	Shadow    bool      `parquet:"shadow"`
	Features  string    `parquet:"features"`
	Outputs   string    `parquet:"outputs"`
	Seq       int64     `parquet:"seq"`
}

// archiveFiles lists the finished files under dir, sorted.
func archiveFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && archiveName.MatchString(d.Name()) {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// columnTypes is "path: type" for every leaf column of a Parquet file, the
// type as parquet-go names it ("DOUBLE", "STRING", "JSON" ...) and whether
// it is optional.
func columnTypes(t *testing.T, b []byte) map[string]string {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, path := range f.Schema().Columns() {
		leaf, _ := f.Schema().Lookup(path...)
		typ := leaf.Node.Type().String()
		if leaf.Node.Optional() {
			typ = "optional " + typ
		}
		out[strings.Join(path, ".")] = typ
	}
	return out
}

func wantColumns(t *testing.T, name string, got map[string]string, want map[string]string) {
	t.Helper()
	for col, typ := range want {
		if typ == "" {
			if g, ok := got[col]; ok {
				t.Errorf("%s: column %s is there (%s), want none", name, col, g)
			}
			continue
		}
		if got[col] != typ {
			t.Errorf("%s: column %s is %q, want %q (all: %v)", name, col, got[col], typ, got)
		}
	}
}

func startArchive(t *testing.T, o ArchiverOptions) (*Archiver, string, func(*Event)) {
	t.Helper()
	s := natstest.Start(t)
	_, js := s.Connect(t)
	createEventsStream(t, js)
	o.JetStream, o.Dir = js, t.TempDir()
	if o.MaxAge == 0 {
		o.MaxAge = time.Hour // files close when the test says (Close)
	}
	a, err := NewArchiver(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close(context.Background()) })
	published := 0
	return a, o.Dir, func(ev *Event) {
		publishRaw(t, js, ev)
		published++
		n := published
		testpoll.For(t, 30*time.Second, "the archiver holds the event", func() error {
			a.mu.Lock()
			defer a.mu.Unlock()
			held := len(a.held) + len(a.skip)
			if held < n {
				return fmt.Errorf("%d of %d events taken in", held, n)
			}
			return nil
		})
	}
}

// Features and outputs are typed columns an analyst's reader maps to
// float64, string and bool; a missing value is a null, "NaN" a NaN, an
// array JSON text.
func TestArchiveWritesTypedColumns(t *testing.T) {
	a, dir, publish := startArchive(t, ArchiverOptions{})
	ts := time.Date(2026, 3, 1, 10, 30, 0, 123456000, time.UTC)
	evs := []*Event{
		{ID: "e1", TS: ts, Route: "fraud", Variant: "stable", Model: "fraud", Version: "2", Status: 200, LatencyUS: 900,
			Features: map[string]any{"amount": 12.5, "country": "DE", "online": true, "vec": []any{1.0, 2.0}},
			Outputs:  map[string]any{"score": 0.25}},
		{ID: "e2", TS: ts.Add(time.Second), Route: "fraud", Variant: "canary", Model: "fraud", Version: "3", Status: 200, Pinned: true,
			Features: map[string]any{"amount": "NaN", "country": "FR", "online": false},
			Outputs:  map[string]any{"score": 0.75}},
		// A failed request: no features or outputs, an error.
		{ID: "e3", TS: ts.Add(2 * time.Second), Route: "fraud", Variant: "stable", Model: "fraud", Version: "2",
			Status: 422, Error: "amount: not a number"},
	}
	for _, ev := range evs {
		publish(ev)
	}
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	files := archiveFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("files %v, want one (the failed request fits the others' file)", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	wantColumns(t, files[0], columnTypes(t, b), map[string]string{
		"id": "STRING", "ts": "TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)", "variant": "STRING",
		"status": "INT(32,true)", "latency_us": "INT(64,true)", "error": "optional STRING",
		"features.amount": "optional DOUBLE", "features.country": "optional STRING",
		"features.online": "optional BOOLEAN", "features.vec": "optional JSON",
		"outputs.score": "optional DOUBLE", "seq": "INT(64,true)", "raw": "",
	})
	rows, err := parquet.Read[typedRow](bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3", len(rows))
	}
	r := rows[0]
	if r.ID != "e1" || !r.TS.Equal(ts.Truncate(time.Microsecond)) || r.Variant != "stable" || r.Version != "2" || r.Error != nil ||
		r.Features.Amount == nil || *r.Features.Amount != 12.5 || *r.Features.Country != "DE" || !*r.Features.Online ||
		*r.Features.Vec != "[1,2]" || *r.Outputs.Score != 0.25 || r.Seq != 1 {
		t.Errorf("row 1: %+v", r)
	}
	if r := rows[1]; r.Features.Amount == nil || !math.IsNaN(*r.Features.Amount) || *r.Features.Online || r.Features.Vec != nil || !r.Pinned {
		t.Errorf("row 2: amount %v (want NaN), online %v, vec %v (want null), pinned %v", r.Features.Amount, r.Features.Online, r.Features.Vec, r.Pinned)
	}
	if rows[0].Pinned {
		t.Error("row 1 reads pinned")
	}
	if r := rows[2]; r.Status != 422 || r.Error == nil || *r.Error != "amount: not a number" || r.Features.Amount != nil || r.Outputs.Score != nil {
		t.Errorf("row 3 (failed request): %+v", r)
	}
}

// A new feature, or a value of another type, starts a new file; events of
// the older schema keep going to theirs (a canary whose model has one more
// feature than the stable one's).
func TestArchiveSchemaChangeStartsNewFile(t *testing.T) {
	a, dir, publish := startArchive(t, ArchiverOptions{})
	ts := time.Now().UTC()
	ev := func(id string, feats map[string]any) *Event {
		return &Event{ID: id, TS: ts, Route: "fraud", Variant: "stable", Model: "fraud", Version: "1", Status: 200,
			Features: feats, Outputs: map[string]any{"score": 0.5}}
	}
	publish(ev("a1", map[string]any{"amount": 1.0}))
	publish(ev("b1", map[string]any{"amount": 2.0, "hour": 3.0})) // a new feature
	publish(ev("a2", map[string]any{"amount": 4.0}))              // the old schema again
	publish(ev("c1", map[string]any{"amount": "12.50"}))          // amount is a string now
	publish(ev("b2", map[string]any{"hour": 5.0}))                // fits b's file (amount null)
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	files := archiveFiles(t, dir)
	if len(files) != 3 {
		t.Fatalf("files %v, want 3 (one per schema)", files)
	}
	want := []struct {
		ids  string
		cols map[string]string
	}{
		{"a1 a2", map[string]string{"features.amount": "optional DOUBLE", "features.hour": ""}},
		{"b1 b2", map[string]string{"features.amount": "optional DOUBLE", "features.hour": "optional DOUBLE"}},
		{"c1", map[string]string{"features.amount": "optional STRING", "features.hour": ""}},
	}
	for i, f := range files { // named by first sequence: a1's, b1's, c1's
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		wantColumns(t, f, columnTypes(t, b), want[i].cols)
		recs, err := readArchiveFile(b)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range recs {
			ids = append(ids, r.ev.ID)
		}
		if got := strings.Join(ids, " "); got != want[i].ids {
			t.Errorf("%s holds %s, want %s", f, got, want[i].ids)
		}
	}

	// Export joins them: amount was a number and a string, so it becomes
	// JSON text; hour is null where an event had none.
	var buf bytes.Buffer
	n, err := Export(dir, "fraud", ts.Add(-time.Minute), &buf)
	if err != nil || n != 5 {
		t.Fatalf("export: %d rows, err %v", n, err)
	}
	wantColumns(t, "export", columnTypes(t, buf.Bytes()), map[string]string{
		"features.amount": "optional JSON", "features.hour": "optional DOUBLE", "outputs.score": "optional DOUBLE",
	})
	recs, err := readArchiveFile(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range recs {
		got[r.ev.ID] = fmt.Sprint(r.ev.Features["amount"], "/", r.ev.Features["hour"])
	}
	wantVals := map[string]string{"a1": "1/<nil>", "b1": "2/3", "a2": "4/<nil>", "c1": "12.50/<nil>", "b2": "<nil>/5"}
	if fmt.Sprint(got) != fmt.Sprint(wantVals) {
		t.Errorf("exported amount/hour %v, want %v", got, wantVals)
	}
}

// With Raw the event's JSON, as published, is kept beside the columns.
func TestArchiveRawColumn(t *testing.T) {
	a, dir, publish := startArchive(t, ArchiverOptions{Raw: true})
	ev := testEvent("fraud", 7)
	publish(ev)
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	files := archiveFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("files %v", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	wantColumns(t, files[0], columnTypes(t, b), map[string]string{"raw": "optional JSON"})
	rows, err := parquet.Read[typedRow](bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(ev)
	if len(rows) != 1 || rows[0].Raw == nil || *rows[0].Raw != string(want) {
		t.Fatalf("raw column %v, want %s", rows[0].Raw, want)
	}
}

// Archives written before typed columns hold features and outputs as JSON
// strings: export reads them with the new files into one typed file.
func TestExportReadsOldAndNewFiles(t *testing.T) {
	dir := t.TempDir()
	ts := time.Now().UTC().Truncate(time.Hour).Add(time.Minute)
	part := filepath.Join(dir, "route=fraud", ts.Format("date=2006-01-02"), ts.Format("hour=15"))
	if err := os.MkdirAll(part, 0o700); err != nil {
		t.Fatal(err)
	}
	old := []legacyRow{
		{ID: "old1", TS: ts, Route: "fraud", Variant: "stable", Model: "fraud", Version: "1", Status: 200, LatencyUS: 10,
			Features: `{"amount":3.5,"country":"DE"}`, Outputs: `{"score":0.125}`, Seq: 1},
		{ID: "old2", TS: ts, Route: "fraud", Variant: "stable", Model: "fraud", Version: "1", Status: 500,
			Error: "model failed", Features: `{}`, Outputs: `{}`, Seq: 2},
	}
	if err := parquet.WriteFile(filepath.Join(part, fmt.Sprintf("%020d-%020d.parquet", 1, 2)), old); err != nil {
		t.Fatal(err)
	}
	var nb bytes.Buffer
	s := newArchiveSchema()
	newEv := &Event{ID: "new1", TS: ts.Add(time.Second), Route: "fraud", Variant: "canary", Model: "fraud", Version: "2",
		Status: 200, Features: map[string]any{"amount": 7.0, "country": "FR"}, Outputs: map[string]any{"score": 0.5}}
	s.add(newEv)
	if err := writeArchiveFile(&nb, s, false, []archiveRecord{{ev: newEv, seq: 3}}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(part, fmt.Sprintf("%020d-%020d.parquet", 3, 3)), nb.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	var buf bytes.Buffer
	n, err := Export(dir, "fraud", ts.Add(-time.Hour), &buf)
	if err != nil || n != 3 {
		t.Fatalf("export: %d rows, err %v", n, err)
	}
	b := buf.Bytes()
	wantColumns(t, "export", columnTypes(t, b), map[string]string{
		"features.amount": "optional DOUBLE", "features.country": "optional STRING", "outputs.score": "optional DOUBLE",
		"features": "", "outputs": "", "error": "optional STRING",
	})
	rows, err := parquet.Read[typedRow](bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("%d rows", len(rows))
	}
	if r := rows[0]; r.ID != "old1" || *r.Features.Amount != 3.5 || *r.Features.Country != "DE" || *r.Outputs.Score != 0.125 || r.Error != nil || r.Seq != 1 {
		t.Errorf("old row 1: %+v", r)
	}
	if r := rows[1]; r.ID != "old2" || r.Features.Amount != nil || r.Error == nil || *r.Error != "model failed" {
		t.Errorf("old row 2: %+v", r)
	}
	if r := rows[2]; r.ID != "new1" || *r.Features.Amount != 7 || *r.Features.Country != "FR" || r.Variant != "canary" || r.Seq != 3 {
		t.Errorf("new row: %+v", r)
	}
	// The Archiver reads old files too when it looks for written sequences.
	recs, err := readArchiveFile(mustRead(t, filepath.Join(part, fmt.Sprintf("%020d-%020d.parquet", 1, 2))))
	if err != nil || len(recs) != 2 || recs[1].seq != 2 {
		t.Fatalf("old file read back: %v, %v", recs, err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// One frame (one stream message) holding events of two schemas opens two
// files in one hour with the same first sequence: their names must differ,
// or the second would replace the first.
func TestArchiveTwoSchemasInOneFrame(t *testing.T) {
	s := natstest.Start(t)
	_, js := s.Connect(t)
	createEventsStream(t, js)
	dir := t.TempDir()
	a, err := NewArchiver(ArchiverOptions{JetStream: js, Dir: dir, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var evs []*Event
	ts := time.Now().UTC() // one hour: events straddling one would fill more files
	for i := range 10 {
		ev := testEvent("fraud", i)
		ev.TS = ts
		if i%2 == 1 {
			ev.Features["tx_count_1h"] = 3.0 // the canary's model has one more feature
		}
		evs = append(evs, ev)
	}
	publishFrame(t, js, NewID(), evs)
	testpoll.For(t, 30*time.Second, "the archiver to take the frame in", func() error {
		a.mu.Lock()
		defer a.mu.Unlock()
		if len(a.held) != 10 {
			return fmt.Errorf("%d of 10 events held", len(a.held))
		}
		return nil
	})
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	files := archiveFiles(t, dir)
	if len(files) != 2 || files[0] == files[1] {
		t.Fatalf("files %v, want two (one per schema)", files)
	}
	if rows := readArchive(t, dir); len(rows) != 10 || distinctIDs(rows) != 10 {
		t.Fatalf("archive has %d rows (%d distinct), want 10", len(rows), distinctIDs(rows))
	}
}

// BenchmarkWriteArchiveFile writes one archive file of 500 events, as the
// Archiver does every flush: what a file costs beyond its rows (the
// compressor's state) shows in B/op.
func BenchmarkWriteArchiveFile(b *testing.B) {
	s := newArchiveSchema()
	recs := make([]archiveRecord, 500)
	ts := time.Now().UTC()
	for i := range recs {
		ev := &Event{ID: fmt.Sprintf("ev%d", i), TS: ts, Route: "fraud", Variant: "stable", Model: "fraud", Version: "1",
			Status: 200, Features: map[string]any{"amount": float64(i), "country": "DE"}, Outputs: map[string]any{"score": 0.5}}
		s.add(ev)
		recs[i] = archiveRecord{ev: ev, seq: uint64(i + 1)}
	}
	var buf bytes.Buffer
	b.Run("warm", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf.Reset()
			if err := writeArchiveFile(&buf, s, false, recs); err != nil {
				b.Fatal(err)
			}
		}
	})
	// In a gateway under load the heap is collected often, between most
	// flushes: what lives in sync.Pools is gone by the next file.
	b.Run("after-gc", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			runtime.GC()
			runtime.GC()
			b.StartTimer()
			buf.Reset()
			if err := writeArchiveFile(&buf, s, false, recs); err != nil {
				b.Fatal(err)
			}
		}
	})
}
