package dashboard

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"
)

//go:embed ui
var uiFS embed.FS

// asset is one embedded file, ready to serve: its bytes never change for
// the life of the process, so the content hash is computed once and used
// as the ETag (and as the ?v= cache-buster index.html puts on its links).
type asset struct {
	body  []byte
	ctype string
	etag  string // quoted, as the header carries it
	hash  string // first 12 hex digits of the SHA-256
}

// assets is the embedded dashboard, keyed by path under /ui/ ("app.js").
// The page itself is index.html, served at GET /.
type assets struct {
	files map[string]*asset
	index *asset
}

// versionPlaceholder in index.html is replaced, per file name, by that
// file's content hash, so that a new binary busts browser caches.
const versionPlaceholder = "{{v:"

var defaultAssets = mustLoad(uiFS)

func mustLoad(fsys fs.FS) *assets {
	a, err := load(fsys)
	if err != nil {
		panic("dashboard: embedded assets: " + err.Error()) // a build defect, caught by any test
	}
	return a
}

func load(fsys fs.FS) (*assets, error) {
	a := &assets{files: map[string]*asset{}}
	err := fs.WalkDir(fsys, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		a.files[strings.TrimPrefix(p, "ui/")] = newAsset(p, b)
		return nil
	})
	if err != nil {
		return nil, err
	}
	idx, ok := a.files["index.html"]
	if !ok {
		return nil, fs.ErrNotExist
	}
	delete(a.files, "index.html")
	a.index = newAsset("index.html", a.stamp(idx.body))
	return a, nil
}

// stamp replaces each {{v:NAME}} in html with NAME's content hash.
func (a *assets) stamp(html []byte) []byte {
	s := string(html)
	for name, f := range a.files {
		s = strings.ReplaceAll(s, versionPlaceholder+name+"}}", f.hash)
	}
	return []byte(s)
}

func newAsset(name string, b []byte) *asset {
	sum := sha256.Sum256(b)
	h := hex.EncodeToString(sum[:])[:12]
	ctype := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) { // not left to the host's mime tables
	case ".js":
		ctype = "text/javascript; charset=utf-8"
	case ".css":
		ctype = "text/css; charset=utf-8"
	case ".html":
		ctype = "text/html; charset=utf-8"
	case ".svg":
		ctype = "image/svg+xml"
	}
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	return &asset{body: b, ctype: ctype, etag: `"` + h + `"`, hash: h}
}

// Mount registers the dashboard on app: GET / serves the page and
// GET /ui/* its embedded assets. Call it before any catch-all handler.
func Mount(app *fiber.App) {
	defaultAssets.mount(app)
}

// mount registers a's page and assets on app.
func (a *assets) mount(app *fiber.App) {
	app.Get("/", func(c *fiber.Ctx) error { return serve(c, a.index, false) })
	app.Get("/ui/*", func(c *fiber.Ctx) error {
		f, ok := a.files[c.Params("*")]
		if !ok {
			// A *fiber.Error, not a weirerr: it renders as 404 under any
			// app's error handler, the gateway's included.
			return fiber.NewError(fiber.StatusNotFound, "no dashboard asset "+c.Path())
		}
		// A request carrying the current hash can be cached for good: a
		// new build changes the hash index.html asks for.
		return serve(c, f, c.Query("v") == f.hash)
	})
}

const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func serve(c *fiber.Ctx, f *asset, immutable bool) error {
	if immutable {
		c.Set(fiber.HeaderCacheControl, "public, max-age=31536000, immutable")
	} else {
		c.Set(fiber.HeaderCacheControl, "no-cache") // revalidate with the ETag
	}
	c.Set(fiber.HeaderETag, f.etag)
	c.Set("X-Content-Type-Options", "nosniff")
	// Only the dashboard's own scripts run, it talks only to its gateway,
	// and no other site may frame it (its buttons promote and abort
	// rollouts). Inline styles are allowed: the charts set colours and
	// widths through style attributes.
	c.Set("Content-Security-Policy", contentSecurityPolicy)
	c.Set("X-Frame-Options", "DENY")
	if match := c.Get(fiber.HeaderIfNoneMatch); match != "" && etagMatches(match, f.etag) {
		return c.SendStatus(fiber.StatusNotModified)
	}
	c.Set(fiber.HeaderContentType, f.ctype)
	return c.Send(f.body)
}

// etagMatches reports whether an If-None-Match header names etag (it may
// list several, or be weak).
func etagMatches(header, etag string) bool {
	for _, m := range strings.Split(header, ",") {
		m = strings.TrimPrefix(strings.TrimSpace(m), "W/")
		if m == etag || m == "*" {
			return true
		}
	}
	return false
}
