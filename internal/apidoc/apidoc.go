// Package apidoc checks, in tests, that docs/api.md (the API reference users
// read) names an endpoint or command. It is for tests only and imports
// nothing from weir, so the gateway's and the CLI's tests can both use it.
package apidoc

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// Doc is docs/api.md with every path parameter written as "{}", so that
// "/v2/models/{name}", fiber's "/v2/models/:name" and a doc's
// "/v2/models/{model}" compare equal.
type Doc struct{ text string }

var docParam = regexp.MustCompile(`\{[^}/]*\}`)

// Load reads docs/api.md from the repository this file is in.
func Load(t testing.TB) Doc {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "..", "docs", "api.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read the API reference: %v", err)
	}
	return Doc{text: docParam.ReplaceAllString(string(b), "{}")}
}

var fiberParam = regexp.MustCompile(`:[A-Za-z_]+\??`)

// HasEndpoint reports whether the doc names method and a fiber route path
// ("/v2/models/:name/infer", "/ui/*") together, as "GET /v2/models/{name}".
func (d Doc) HasEndpoint(method, path string) bool {
	return strings.Contains(d.text, method+" "+fiberParam.ReplaceAllString(path, "{}"))
}

// Has reports whether the doc contains s as written.
func (d Doc) Has(s string) bool { return strings.Contains(d.text, s) }
