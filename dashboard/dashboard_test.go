package dashboard_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/weirhq/weir/dashboard"
)

func newApp() *fiber.App {
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	dashboard.Mount(app)
	return app
}

func get(t *testing.T, app *fiber.App, path string, header ...string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := app.Test(req, -1)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

var assetRef = regexp.MustCompile(`"(/ui/[a-z.]+)\?v=([0-9a-f]{12})"`)

func TestPageLinksHashedAssets(t *testing.T) {
	app := newApp()
	resp, body := get(t, app, "/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("GET / Content-Type = %q, want text/html; charset=utf-8", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("GET / Cache-Control = %q, want no-cache (the page names the asset hashes)", cc)
	}
	if strings.Contains(body, "{{v:") {
		t.Fatalf("GET / left a version placeholder unreplaced:\n%s", body)
	}
	refs := assetRef.FindAllStringSubmatch(body, -1)
	if len(refs) != 2 {
		t.Fatalf("GET / links %d hashed assets, want 2 (style.css, app.js): %v", len(refs), refs)
	}
	for _, ref := range refs {
		resp, _ := get(t, app, ref[1]+"?v="+ref[2])
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d", ref[0], resp.StatusCode)
		}
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			t.Errorf("GET %s?v=<its hash> Cache-Control = %q, want immutable", ref[1], cc)
		}
		if et := resp.Header.Get("ETag"); et != `"`+ref[2]+`"` {
			t.Errorf("GET %s ETag = %q, want the hash index.html names, %q", ref[1], et, ref[2])
		}
	}
}

func TestAssets(t *testing.T) {
	app := newApp()
	for _, tc := range []struct{ path, ctype, contains string }{
		{"/ui/app.js", "text/javascript; charset=utf-8", "lineChart"},
		{"/ui/charts.js", "text/javascript; charset=utf-8", "export function lineChart"},
		{"/ui/dom.js", "text/javascript; charset=utf-8", "export function h"},
		{"/ui/style.css", "text/css; charset=utf-8", ":root"},
	} {
		resp, body := get(t, app, tc.path)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d", tc.path, resp.StatusCode)
			continue
		}
		if ct := resp.Header.Get("Content-Type"); ct != tc.ctype {
			t.Errorf("GET %s Content-Type = %q, want %q", tc.path, ct, tc.ctype)
		}
		if !strings.Contains(body, tc.contains) {
			t.Errorf("GET %s does not contain %q", tc.path, tc.contains)
		}
		// Without the current hash the browser must revalidate.
		if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET %s Cache-Control = %q, want no-cache", tc.path, cc)
		}
		etag := resp.Header.Get("ETag")
		if etag == "" {
			t.Errorf("GET %s has no ETag", tc.path)
			continue
		}
		resp, body = get(t, app, tc.path, "If-None-Match", etag)
		if resp.StatusCode != http.StatusNotModified || body != "" {
			t.Errorf("GET %s If-None-Match %s = %d with %d bytes, want 304 and none", tc.path, etag, resp.StatusCode, len(body))
		}
		resp, _ = get(t, app, tc.path, "If-None-Match", `"stale"`)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s with a stale ETag = %d, want 200", tc.path, resp.StatusCode)
		}
	}
}

func TestUnknownAssetIsNotFound(t *testing.T) {
	app := newApp()
	for _, p := range []string{"/ui/nope.js", "/ui/", "/ui/../dashboard.go", "/ui/index.html"} {
		if resp, _ := get(t, app, p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, resp.StatusCode)
		}
	}
}

// BenchmarkServeAsset measures a cached asset through fiber's handler: the
// dashboard's own cost is a map lookup and a few headers.
func BenchmarkServeAsset(b *testing.B) {
	h := newApp().Handler()
	var req fasthttp.Request
	req.SetRequestURI("/ui/app.js")
	var ctx fasthttp.RequestCtx
	b.ReportAllocs()
	for b.Loop() {
		ctx.Init(&req, nil, nil)
		h(&ctx)
		if ctx.Response.StatusCode() != http.StatusOK {
			b.Fatalf("GET /ui/app.js = %d", ctx.Response.StatusCode())
		}
	}
}

var tokenInLocalStorage = regexp.MustCompile(`localStorage\.\w+\(\s*TOKEN_KEY`)

// TestSecurityHeaders pins issue 11 defect 11: the dashboard cannot be
// framed (clickjacking its promote/abort buttons) and runs only its own
// scripts.
func TestSecurityHeaders(t *testing.T) {
	app := newApp()
	for _, p := range []string{"/", "/ui/app.js"} {
		resp, _ := get(t, app, p)
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: Content-Security-Policy %q lacks %q", p, csp, want)
			}
		}
		if xfo := resp.Header.Get("X-Frame-Options"); xfo != "DENY" {
			t.Errorf("GET %s: X-Frame-Options %q, want DENY", p, xfo)
		}
	}
	// The admin token lives for the tab only, not on disk for every page
	// of the origin to read later (drift history may live there).
	_, js := get(t, app, "/ui/app.js")
	if tokenInLocalStorage.MatchString(js) || !strings.Contains(js, "sessionStorage.setItem(TOKEN_KEY") {
		t.Error("app.js keeps the admin token in localStorage, want sessionStorage")
	}
}
