package gateway

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/models"
)

// uploadReadTimeout bounds reading one upload's body; --read-timeout is
// sized for inference bodies, and a 2 GiB model takes longer on a slow link.
const uploadReadTimeout = 15 * time.Minute

// Request bodies are streamed (the server runs with StreamRequestBody), so
// that an upload of gigabytes goes to disk as it arrives instead of into a
// buffer of its size, and so that no body is read before its request is
// authenticated and admitted: a handler reads it when it needs it, with
// requestBody (bounded by --max-body, its Content-Encoding undone under
// the same limit) or, for an upload, receiveUpload or readUpload (bounded
// by --max-upload). Both limits count the bytes actually received, chunked
// bodies included, and buffers grow by what arrives, never by what
// Content-Length claims; a body over its limit is answered 413 without
// being read further. A body no handler read is drained if small, else its
// connection is closed after lingering (linger.go).

// uploadLimit gives artifact uploads (PUT of a model version, its
// reference, or a plugin version) a longer read deadline than
// --read-timeout. It runs when the request's header has arrived. (With
// streamed bodies, fasthttp's MaxRequestBodySize only sizes what it reads
// ahead; the limits themselves are enforced below.)
func (g *Gateway) uploadLimit(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if isUpload(h.Method(), h.RequestURI()) {
		return fasthttp.RequestConfig{ReadTimeout: max(uploadReadTimeout, g.opts.ReadTimeout)}
	}
	return fasthttp.RequestConfig{}
}

// isUpload reports whether method and uri are PUT /v1/models/{m}/versions/{v}[/reference]
// or PUT /v1/plugins/{p}/versions/{v}.
func isUpload(method, uri []byte) bool {
	if !bytes.Equal(method, []byte("PUT")) {
		return false
	}
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	parts := bytes.Split(bytes.TrimPrefix(uri, []byte("/")), []byte("/"))
	if len(parts) < 5 || !bytes.Equal(parts[0], []byte("v1")) || !bytes.Equal(parts[3], []byte("versions")) {
		return false
	}
	switch string(parts[1]) {
	case "models":
		return len(parts) == 5 || (len(parts) == 6 && bytes.Equal(parts[5], []byte("reference")))
	case "plugins":
		return len(parts) == 5
	}
	return false
}

func isUploadRequest(c *fiber.Ctx) bool {
	h := &c.Request().Header
	return isUpload(h.Method(), h.RequestURI())
}

// maxDrain is how much of a body no handler read (a bad name, no token)
// is read and dropped after the answer, so that the connection can carry a
// next request; more, and it is closed.
const maxDrain = 256 << 10

const (
	bodyDoneKey = "weir.bodyDone" // the body was read to its end, or the connection is closed
	bodyKey     = "weir.body"     // what requestBody read
)

// streamedBodies refuses a compressed upload before its handler runs, and
// drains (or closes the connection of) what the handler left unread.
func (g *Gateway) streamedBodies(c *fiber.Ctx) error {
	req := c.Request()
	if encoded(req) && isUploadRequest(c) {
		closeUnread(c)
		return weirerr.Invalidf("Content-Encoding %q on an upload: send the file as it is", req.Header.ContentEncoding())
	}
	err := c.Next()
	if c.Locals(bodyDoneKey) == nil && req.IsBodyStream() {
		if n, derr := io.CopyN(io.Discard, req.BodyStream(), maxDrain+1); n > maxDrain || (derr != nil && derr != io.EOF) {
			closeUnread(c)
		}
	}
	return err
}

// requestBody reads the request's body, bounded by --max-body, and undoes
// its Content-Encoding (gzip or deflate) under the same limit: the body as
// it was before compression, which the handler may keep. Handlers call it
// once the request is authenticated and (inference) admitted under
// --max-inflight, and its model or route found, so that no stranger's body
// is read, let alone inflated. Later calls return the same bytes.
func (g *Gateway) requestBody(c *fiber.Ctx) ([]byte, error) {
	if b, ok := c.Locals(bodyKey).([]byte); ok {
		return b, nil
	}
	req := c.Request()
	var body []byte
	if req.IsBodyStream() {
		var buf bytes.Buffer
		if _, err := g.readBody(c, &buf, g.opts.MaxBodyBytes, "request body", "--max-body"); err != nil {
			return nil, err
		}
		body = buf.Bytes()
	} else {
		c.Locals(bodyDoneKey, true)
		body = bytes.Clone(req.Body())
	}
	body, err := g.decodeContent(req, body)
	if err != nil {
		return nil, err
	}
	c.Locals(bodyKey, body)
	return body, nil
}

// encoded reports whether the request's Content-Encoding says its body is
// anything but as it is.
func encoded(req *fasthttp.Request) bool {
	enc := req.Header.ContentEncoding()
	return len(enc) > 0 && !bytes.EqualFold(enc, []byte("identity"))
}

// decodeContent undoes the Content-Encoding (gzip or deflate) of body
// under --max-body, like any body, the inflated bytes counted against it.
// Left to fiber's Body(), a body was inflated without a bound (250 KiB of
// gzip became 256 MiB of memory); inflated before its handler ran, it was
// inflated for strangers and outside --max-inflight.
func (g *Gateway) decodeContent(req *fasthttp.Request, body []byte) ([]byte, error) {
	if !encoded(req) {
		return body, nil
	}
	enc := string(req.Header.ContentEncoding())
	var zr io.Reader
	switch strings.ToLower(enc) {
	case "gzip", "x-gzip":
		r, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, weirerr.Invalidf("request body is not gzip (Content-Encoding %s): %w", enc, err)
		}
		zr = r
	case "deflate":
		r, err := zlib.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, weirerr.Invalidf("request body is not zlib deflate (Content-Encoding %s): %w", enc, err)
		}
		zr = r
	default:
		return nil, weirerr.Invalidf("Content-Encoding %q is not supported: send gzip, deflate or an uncompressed body", enc)
	}
	limit := g.opts.MaxBodyBytes
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(zr, int64(limit)+1))
	switch {
	case n > int64(limit):
		return nil, weirerr.TooLargef("request body decompresses to more than the gateway's limit of %s (--max-body)", sizeString(int64(limit)))
	case err != nil:
		return nil, weirerr.Invalidf("decompressing the request body (Content-Encoding %s): %w", enc, err)
	}
	return buf.Bytes(), nil
}

// readBody copies the request body into w, refusing it (413) once it is
// over limit bytes; what is the body's name in the error, flag the limit's.
// A body that is not read to its end leaves the connection unusable for a
// next request, so on every error the connection is closed after the answer.
func (g *Gateway) readBody(c *fiber.Ctx, w io.Writer, limit int, what, flag string) (int64, error) {
	req := c.Request()
	c.Locals(bodyDoneKey, true) // read to its end, or the connection is closed
	tooLarge := func() error {
		return weirerr.TooLargef("%s is larger than the gateway's limit of %s (%s)", what, sizeString(int64(limit)), flag)
	}
	if n := req.Header.ContentLength(); n > limit {
		closeUnread(c)
		return 0, tooLarge()
	}
	n, err := io.Copy(w, io.LimitReader(req.BodyStream(), int64(limit)+1))
	switch {
	case err != nil:
		closeUnread(c)
		var we *writeError
		if errors.As(err, &we) {
			return n, we.err
		}
		return n, weirerr.Invalidf("reading the %s: %w (received %d bytes)", what, err, n)
	case n > int64(limit):
		closeUnread(c)
		return n, tooLarge()
	}
	return n, nil
}

// sizeString writes n bytes as the flags are usually given: whole MiB or
// GiB when n is one, else bytes.
func sizeString(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// writeError marks a failure of the destination (the disk), not of the
// request, so that readBody does not blame the client for it.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }

type diskWriter struct{ f *os.File }

func (d diskWriter) Write(p []byte) (int, error) {
	n, err := d.f.Write(p)
	if err != nil {
		return n, &writeError{fmt.Errorf("upload spool: %w", err)}
	}
	return n, nil
}

// receiveUpload streams an upload's body to a temporary file under the data
// dir (mode 0600), hashing it on the way, bounded by --max-upload. On success
// the caller removes f.Path when done with it, on every path (whoever moved
// it away leaves nothing to remove); on error nothing is left behind.
func (g *Gateway) receiveUpload(c *fiber.Ctx, what string) (models.File, error) {
	tmp, err := os.CreateTemp(g.uploadDir(), "upload-*")
	if err != nil {
		return models.File{}, fmt.Errorf("upload spool: %w", err)
	}
	f := models.File{Path: tmp.Name()}
	h := sha256.New()
	f.Size, err = g.readBody(c, io.MultiWriter(diskWriter{tmp}, h), g.opts.MaxUploadBytes, what, "--max-upload")
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("upload spool: %w", cerr)
	}
	if err != nil {
		os.Remove(f.Path)
		return models.File{}, err
	}
	f.SHA256 = hex.EncodeToString(h.Sum(nil))
	return f, nil
}

// readUpload reads an upload's body into memory, bounded by --max-upload,
// for artifacts whose consumer needs all the bytes at once anyway (wazero
// compiles a plugin from a byte slice; reference data is parsed whole): it
// holds one copy of the body, grown as it arrives.
func (g *Gateway) readUpload(c *fiber.Ctx, what string) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := g.readBody(c, &buf, g.opts.MaxUploadBytes, what, "--max-upload"); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// uploadDir is where uploads are spooled: under the data dir, on the same
// file system as the model cache, so a model is moved there, not copied.
func (g *Gateway) uploadDir() string { return filepath.Join(g.opts.DataDir, "uploads") }

// prepareUploadDir creates the upload dir (0700) and removes what a crash
// left there: nothing in it outlives the request that wrote it.
func prepareUploadDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("upload dir: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("upload dir: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "upload-") {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return nil
}
