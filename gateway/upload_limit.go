package gateway

import (
	"bytes"
	"time"

	"github.com/valyala/fasthttp"
)

// uploadReadTimeout bounds reading one upload's body; --read-timeout is
// sized for inference bodies, and a 2 GiB model takes longer on a slow link.
const uploadReadTimeout = 15 * time.Minute

// uploadLimit gives artifact uploads (PUT of a model version, its
// reference, or a plugin version) their own body limit, --max-upload, apart
// from --max-body, which bounds every other request (inference bodies). The
// limit is chosen from the request line before the body is read, so an
// upload whose Content-Length is over it is answered 413 without reading it.
// Uploads also get a longer read deadline than --read-timeout.
func (g *Gateway) uploadLimit(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if isUpload(h.Method(), h.RequestURI()) {
		return fasthttp.RequestConfig{MaxRequestBodySize: g.opts.MaxUploadBytes, ReadTimeout: max(uploadReadTimeout, g.opts.ReadTimeout)}
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
