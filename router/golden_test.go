package router

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n got: %s\nwant: %s", name, got, want)
	}
}

// The JSON shape GET /v1/routes/{route} returns is part of the contract.
func TestRouteJSONGolden(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "route.in.json"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse("fraud", raw)
	if err != nil {
		t.Fatal(err)
	}
	r.revision = 7 // as a Store would set them
	r.updatedAt = time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
	out, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "route.golden.json", append(out, '\n'))
}
