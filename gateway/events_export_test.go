package gateway_test

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/internal/testpoll"
)

// exportedRow is a row of an export of route "ex" (model features x, y).
type exportedRow struct {
	ID       string    `parquet:"id"`
	TS       time.Time `parquet:"ts,timestamp(microsecond)"`
	Route    string    `parquet:"route"`
	Variant  string    `parquet:"variant"`
	Status   int32     `parquet:"status"`
	Features struct {
		X *float64 `parquet:"x,optional"`
		Y *float64 `parquet:"y,optional"`
	} `parquet:"features"`
	Outputs struct {
		Score *float64 `parquet:"score,optional"`
	} `parquet:"outputs"`
}

// TestEventsExportOverHTTP archives real inferences and reads them back
// through GET /v1/events in each format, behind --api-keys.
func TestEventsExportOverHTTP(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keys, []byte("k-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) { o.APIKeysFile = keys }))
	pushModel(t, g, "scorer", "1", scorer(t, []string{"x", "y"}, []float32{1, 1}, 0))
	setRoute(t, g, "ex", `{"variants":[{"name":"stable","model":"scorer","version":"1","weight":100}]}`)
	start := time.Now().UTC().Add(-time.Second)
	for i := range 3 {
		a := call(t, "POST", g.URL+"/v1/routes/ex/predict", "k-1", fmt.Appendf(nil, `{"x":%d,"y":0.5}`, i))
		if a.status != 200 {
			t.Fatalf("predict: %d %s", a.status, a.raw)
		}
	}
	base := g.URL + "/v1/events?route=ex&since=" + start.Format(time.RFC3339Nano)

	if a := call(t, "GET", base, "", nil); a.status != 401 {
		t.Errorf("export without a key: %d, want 401 (%s)", a.status, a.raw)
	}
	// The archiver writes a file once it is 10s old: poll the export.
	var lines []string
	testpoll.For(t, 60*time.Second, "3 events exported as JSON lines", func() error {
		a := call(t, "GET", base+"&format=jsonl", "k-1", nil)
		if a.status != 200 {
			return fmt.Errorf("jsonl export: %d %s", a.status, a.raw)
		}
		lines = strings.Split(strings.TrimSpace(a.raw), "\n")
		if a.raw == "" || len(lines) != 3 {
			return fmt.Errorf("%d lines: %q", len(lines), a.raw)
		}
		return nil
	})
	for i, line := range lines {
		var ev struct {
			Route    string             `json:"route"`
			Features map[string]float64 `json:"features"`
			Outputs  map[string]float64 `json:"outputs"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("jsonl line %d: %v: %s", i, err, line)
		}
		if ev.Route != "ex" || ev.Features["x"] != float64(i) || ev.Features["y"] != 0.5 {
			t.Errorf("jsonl line %d: %s", i, line)
		}
	}

	a := call(t, "GET", base+"&format=parquet", g.Token, nil)
	if a.status != 200 || a.header.Get("Content-Type") != "application/vnd.apache.parquet" {
		t.Fatalf("parquet export: %d %v", a.status, a.header)
	}
	rows, err := parquet.Read[exportedRow](bytes.NewReader([]byte(a.raw)), int64(len(a.raw)))
	if err != nil {
		t.Fatalf("read the parquet export: %v", err)
	}
	if len(rows) != 3 {
		t.Fatalf("parquet export: %d rows, want 3", len(rows))
	}
	for i, r := range rows {
		if r.Route != "ex" || r.Variant != "stable" || r.Status != 200 || r.Features.X == nil || *r.Features.X != float64(i) ||
			r.Outputs.Score == nil || r.TS.Before(start) {
			t.Errorf("parquet row %d: %+v", i, r)
		}
	}

	a = call(t, "GET", base+"&format=csv", "k-1", nil)
	recs, err := csv.NewReader(strings.NewReader(a.raw)).ReadAll()
	if a.status != 200 || err != nil || len(recs) != 4 {
		t.Fatalf("csv export: %d %v %q", a.status, err, a.raw)
	}
	col := map[string]int{}
	for i, name := range recs[0] {
		col[name] = i
	}
	for i, rec := range recs[1:] {
		if rec[col["route"]] != "ex" || rec[col["features.x"]] != fmt.Sprint(i) || rec[col["features.y"]] != "0.5" || rec[col["outputs.score"]] == "" {
			t.Errorf("csv row %d: %v (header %v)", i, rec, recs[0])
		}
	}

	// until before the first event: none of them.
	a = call(t, "GET", base+"&until="+start.Add(time.Millisecond).Format(time.RFC3339Nano)+"&format=jsonl", "k-1", nil)
	if a.status != 200 || strings.TrimSpace(a.raw) != "" {
		t.Errorf("export until before the events: %d %q", a.status, a.raw)
	}
}

func TestEventsExportRefusals(t *testing.T) {
	g := testgw.Start(t)
	pushModel(t, g, "scorer", "1", scorer(t, []string{"x"}, []float32{1}, 0))
	setRoute(t, g, "alpha", `{"variants":[{"name":"stable","model":"scorer","version":"1","weight":100}]}`)
	setRoute(t, g, "beta", `{"variants":[{"name":"stable","model":"scorer","version":"1","weight":100}]}`)
	a := call(t, "GET", g.URL+"/v1/events?route=nope", "", nil)
	if msg, _ := a.body["error"].(string); a.status != 404 || !strings.Contains(msg, `"nope"`) || !strings.Contains(msg, "alpha, beta") {
		t.Errorf("unknown route: %d %s, want 404 naming alpha, beta", a.status, a.raw)
	}
	for q, want := range map[string]string{
		"route=alpha&since=yesterday":                                       "since=",
		"route=alpha&until=2026-13-01T00:00:00Z":                            "until=",
		"route=alpha&format=xlsx":                                           "format",
		"route=alpha&since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z": "not after",
		"since=2026-01-02T00:00:00Z":                                        "route",
		"route=../etc":                                                      "route name",
	} {
		a := call(t, "GET", g.URL+"/v1/events?"+q, "", nil)
		if msg, _ := a.body["error"].(string); a.status != 400 || !strings.Contains(msg, want) {
			t.Errorf("%s: %d %s, want 400 naming %s", q, a.status, a.raw, want)
		}
	}
	// A known route with nothing archived yet is an empty export.
	a = call(t, "GET", g.URL+"/v1/events?route=alpha&format=csv", "", nil)
	if recs, err := csv.NewReader(bufio.NewReader(strings.NewReader(a.raw))).ReadAll(); a.status != 200 || err != nil || len(recs) != 1 {
		t.Errorf("empty csv export: %d %v %q", a.status, err, a.raw)
	}
}
