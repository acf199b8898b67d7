package router

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/golden"
)

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
	golden.Check(t, "route.golden.json", append(out, '\n'))
}
