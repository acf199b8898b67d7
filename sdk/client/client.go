// Package client is the Go client SDK for a weir gateway: the admin API
// (models, plugins, routes, rollouts, features) and inference, over HTTP/JSON
// as described in the external contract. It imports nothing from weir (none
// of its server packages), so any program can use it.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client talks to one gateway. It is safe for concurrent use.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New returns a client for the gateway at baseURL (e.g. http://127.0.0.1:8080)
// that sends token as the admin bearer token (may be empty for inference only).
func New(baseURL, token string) *Client {
	return &Client{
		base:  strings.TrimRight(baseURL, "/"),
		token: token,
		http:  &http.Client{Timeout: 5 * time.Minute},
	}
}

// WithHTTPClient returns a copy of c that sends requests with hc.
func (c *Client) WithHTTPClient(hc *http.Client) *Client {
	cc := *c
	cc.http = hc
	return &cc
}

// Error is a non-2xx answer from the gateway.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
}

// ModelInfo describes a model and its versions, as GET /v1/models lists them.
type ModelInfo struct {
	Name     string        `json:"name"`
	Latest   string        `json:"latest,omitempty"`
	Versions []VersionInfo `json:"versions"`
}

// VersionInfo is one version of a model.
type VersionInfo struct {
	Version   string    `json:"version"`
	State     string    `json:"state"`
	Features  []string  `json:"features,omitempty"`
	Size      int64     `json:"size,omitempty"`
	SHA256    string    `json:"sha256,omitempty"`
	Uploaded  time.Time `json:"uploaded,omitempty"`
	Reference bool      `json:"reference,omitempty"`
	Batching  *Batching `json:"batching,omitempty"` // nil when off
}

// Batching is a model version's dynamic batching setting: concurrent
// requests whose inputs agree past the first dimension run as one batch of
// up to MaxBatchSize rows. MaxBatchSize 0 turns it off.
type Batching struct {
	MaxBatchSize int `json:"max_batch_size"`
	// MaxQueueDelay is how long a request may wait for others to join its
	// batch: a duration such as "500us" or "2ms" ("" is 0).
	MaxQueueDelay       string `json:"max_queue_delay,omitempty"`
	PreferredBatchSizes []int  `json:"preferred_batch_sizes,omitempty"`
}

// PushOptions are what PushModelWith may set besides the bytes.
type PushOptions struct {
	Features []string
	Batching *Batching // nil: unchanged (off for a new version)
}

// PluginInfo describes an uploaded plugin and its versions.
type PluginInfo struct {
	Name     string   `json:"name"`
	Latest   string   `json:"latest,omitempty"`
	Versions []string `json:"versions"`
}

// PushModel uploads ONNX bytes as name@version, with an optional feature list.
func (c *Client) PushModel(ctx context.Context, name, version string, onnx io.Reader, features []string) error {
	return c.PushModelWith(ctx, name, version, onnx, PushOptions{Features: features})
}

// PushModelWith uploads ONNX bytes as name@version with options: a feature
// list, a dynamic batching setting.
func (c *Client) PushModelWith(ctx context.Context, name, version string, onnx io.Reader, o PushOptions) error {
	_, err := c.PushModelResult(ctx, name, version, onnx, o)
	return err
}

// Pushed is the gateway's answer to a push that succeeded.
type Pushed struct {
	// Created is false when the version was there already with the same
	// bytes: nothing changed (versions are immutable; other bytes are
	// refused with HTTP 409).
	Created bool   `json:"created"`
	Message string `json:"message"`
}

// PushModelResult is PushModelWith, saying whether the push created the
// version.
func (c *Client) PushModelResult(ctx context.Context, name, version string, onnx io.Reader, o PushOptions) (Pushed, error) {
	q := url.Values{}
	if len(o.Features) > 0 {
		q.Set("features", strings.Join(o.Features, ","))
	}
	if b := o.Batching; b != nil {
		q.Set("max_batch_size", strconv.Itoa(b.MaxBatchSize))
		if b.MaxQueueDelay != "" {
			q.Set("max_queue_delay", b.MaxQueueDelay)
		}
		if len(b.PreferredBatchSizes) > 0 {
			sizes := make([]string, len(b.PreferredBatchSizes))
			for i, n := range b.PreferredBatchSizes {
				sizes[i] = strconv.Itoa(n)
			}
			q.Set("preferred_batch_sizes", strings.Join(sizes, ","))
		}
	}
	p := "/v1/models/" + url.PathEscape(name) + "/versions/" + url.PathEscape(version)
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	var out Pushed
	err := c.do(ctx, http.MethodPut, p, "application/octet-stream", onnx, &out)
	return out, err
}

// SetBatching changes name@version's dynamic batching setting on every
// gateway replica (Batching{} turns it off).
func (c *Client) SetBatching(ctx context.Context, name, version string, b Batching) error {
	p := "/v1/models/" + url.PathEscape(name) + "/versions/" + url.PathEscape(version) + "/batching"
	return c.Send(ctx, http.MethodPut, p, b, nil)
}

// PushReference uploads the reference (training) data of name@version, CSV
// with a header row (contentType text/csv) or a JSON array of objects.
func (c *Client) PushReference(ctx context.Context, name, version string, body io.Reader, contentType string) error {
	p := "/v1/models/" + url.PathEscape(name) + "/versions/" + url.PathEscape(version) + "/reference"
	return c.do(ctx, http.MethodPut, p, contentType, body, nil)
}

// DeleteModel removes name@version (the gateway answers 409 while a route uses it).
func (c *Client) DeleteModel(ctx context.Context, name, version string) error {
	return c.do(ctx, http.MethodDelete, "/v1/models/"+url.PathEscape(name)+"/versions/"+url.PathEscape(version), "", nil, nil)
}

// ListModels lists every model with its versions.
func (c *Client) ListModels(ctx context.Context) ([]ModelInfo, error) {
	var out struct {
		Models []ModelInfo `json:"models"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/models", "", nil, &out)
	return out.Models, err
}

// PushPlugin uploads Wasm bytes as plugin name@version, with the
// gateway's default limits.
func (c *Client) PushPlugin(ctx context.Context, name, version string, wasm io.Reader) error {
	return c.PushPluginLimits(ctx, name, version, wasm, PluginLimits{})
}

// PluginLimits override a plugin's defaults (16 MiB, 20ms); zero fields
// keep them.
type PluginLimits struct {
	MemoryMB int
	Timeout  time.Duration
}

// PushPluginLimits uploads a plugin with its own limits.
func (c *Client) PushPluginLimits(ctx context.Context, name, version string, wasm io.Reader, l PluginLimits) error {
	_, err := c.PushPluginResult(ctx, name, version, wasm, l)
	return err
}

// PushPluginResult is PushPluginLimits, saying whether the push created
// the version.
func (c *Client) PushPluginResult(ctx context.Context, name, version string, wasm io.Reader, l PluginLimits) (Pushed, error) {
	q := url.Values{}
	if l.MemoryMB > 0 {
		q.Set("memory_mb", strconv.Itoa(l.MemoryMB))
	}
	if l.Timeout > 0 {
		q.Set("timeout", l.Timeout.String())
	}
	p := "/v1/plugins/" + url.PathEscape(name) + "/versions/" + url.PathEscape(version)
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	var out Pushed
	err := c.do(ctx, http.MethodPut, p, "application/wasm", wasm, &out)
	return out, err
}

// DeletePlugin removes plugin name@version.
func (c *Client) DeletePlugin(ctx context.Context, name, version string) error {
	return c.do(ctx, http.MethodDelete, "/v1/plugins/"+url.PathEscape(name)+"/versions/"+url.PathEscape(version), "", nil, nil)
}

// ListPlugins lists every plugin with its versions.
func (c *Client) ListPlugins(ctx context.Context) ([]PluginInfo, error) {
	var out struct {
		Plugins []PluginInfo `json:"plugins"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/plugins", "", nil, &out)
	return out.Plugins, err
}

// SetRoute creates or replaces a route.
func (c *Client) SetRoute(ctx context.Context, name string, route json.RawMessage) error {
	return c.do(ctx, http.MethodPut, "/v1/routes/"+url.PathEscape(name), "application/json", bytes.NewReader(route), nil)
}

// GetRoute returns a route's configuration.
func (c *Client) GetRoute(ctx context.Context, name string) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.do(ctx, http.MethodGet, "/v1/routes/"+url.PathEscape(name), "", nil, &out)
	return out, err
}

// DeleteRoute removes a route.
func (c *Client) DeleteRoute(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/routes/"+url.PathEscape(name), "", nil, nil)
}

// StartRollout starts a canary rollout on route and returns its status.
func (c *Client) StartRollout(ctx context.Context, route string, spec json.RawMessage) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.do(ctx, http.MethodPost, "/v1/routes/"+url.PathEscape(route)+"/rollout", "application/json", bytes.NewReader(spec), &out)
	return out, err
}

// Rollout returns the status of route's rollout.
func (c *Client) Rollout(ctx context.Context, route string) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.do(ctx, http.MethodGet, "/v1/routes/"+url.PathEscape(route)+"/rollout", "", nil, &out)
	return out, err
}

// RolloutAction sends promote, pause, resume or abort to route's rollout.
func (c *Client) RolloutAction(ctx context.Context, route, action string) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.do(ctx, http.MethodPost, "/v1/routes/"+url.PathEscape(route)+"/rollout/"+url.PathEscape(action), "application/json", nil, &out)
	return out, err
}

// Get fetches any JSON endpoint of the gateway (path begins with /) into out.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, "", nil, out)
}

// Send calls any endpoint with a JSON body and decodes the JSON answer into out.
func (c *Client) Send(ctx context.Context, method, path string, body any, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	return c.do(ctx, method, path, "application/json", r, out)
}

// Backfill uploads a historical file (format "csv" or "parquet") to be
// replayed through a feature set's aggregations in timestamp order, and
// returns how many rows were accepted. The rows are in the feature stream
// when it returns; aggregates follow within the aggregator's flush interval.
func (c *Client) Backfill(ctx context.Context, set string, file io.Reader, format string) (int, error) {
	ct := "text/csv"
	if format == "parquet" {
		ct = "application/vnd.apache.parquet"
	}
	var out struct {
		Accepted int `json:"accepted"`
	}
	err := c.do(ctx, http.MethodPost, "/v1/featuresets/"+url.PathEscape(set)+"/backfill?format="+url.QueryEscape(format), ct, file, &out)
	return out.Accepted, err
}

// Infer sends an Open Inference Protocol request to model (a model or route
// name) and, when version is not empty, pins that version.
func (c *Client) Infer(ctx context.Context, model, version string, req json.RawMessage) (json.RawMessage, error) {
	p := "/v2/models/" + url.PathEscape(model)
	if version != "" {
		p += "/versions/" + url.PathEscape(version)
	}
	var out json.RawMessage
	err := c.do(ctx, http.MethodPost, p+"/infer", "application/json", bytes.NewReader(req), &out)
	return out, err
}

// Predict sends a raw JSON event through route's plugins and model.
func (c *Client) Predict(ctx context.Context, route string, event json.RawMessage) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.do(ctx, http.MethodPost, "/v1/routes/"+url.PathEscape(route)+"/predict", "application/json", bytes.NewReader(event), &out)
	return out, err
}

// Metrics returns the gateway's Prometheus text exposition.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	req, err := c.request(ctx, http.MethodGet, "/metrics", "", nil)
	if err != nil {
		return "", err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode/100 != 2 {
		return "", &Error{Status: resp.StatusCode, Message: strings.TrimSpace(string(b))}
	}
	return string(b), nil
}

func (c *Client) request(ctx context.Context, method, path, contentType string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if sr, ok := body.(*io.SectionReader); ok {
		// A file section (a streamed artifact) has a known length: send it
		// as Content-Length, so a gateway can refuse an upload too large
		// (413) before it is sent, instead of mid-stream.
		req.ContentLength = sr.Size()
		req.GetBody = func() (io.ReadCloser, error) {
			return io.NopCloser(io.NewSectionReader(sr, 0, sr.Size())), nil
		}
	}
	if contentType != "" && body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// answerError is the Error of a non-2xx answer with body b: its "error"
// field, else the body, else the status text.
func answerError(status int, b []byte) *Error {
	var e struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &Error{Status: status, Message: msg}
}

// EventsQuery chooses the events ExportEvents asks for.
type EventsQuery struct {
	// Since and Until bound the events' time (zero: unbounded); Until is
	// exclusive.
	Since, Until time.Time
	// Format is "parquet" (the default), "csv" or "jsonl".
	Format string
}

// ExportEvents streams a route's archived events (GET /v1/events) into w
// and returns the bytes written. An answer cut short is an error.
func (c *Client) ExportEvents(ctx context.Context, route string, q EventsQuery, w io.Writer) (int64, error) {
	v := url.Values{"route": {route}}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	if q.Format != "" {
		v.Set("format", q.Format)
	}
	req, err := c.request(ctx, http.MethodGet, "/v1/events?"+v.Encode(), "", nil)
	if err != nil {
		return 0, err
	}
	// An export is as long as the archive: no whole-request timeout.
	hc := *c.http
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("weir gateway at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return 0, answerError(resp.StatusCode, b)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("export of route %s cut short after %d bytes: %w", route, n, err)
	}
	return n, nil
}

func (c *Client) do(ctx context.Context, method, path, contentType string, body io.Reader, out any) error {
	req, err := c.request(ctx, method, path, contentType, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("weir gateway at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read answer of %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return answerError(resp.StatusCode, b)
	}
	if out == nil || len(b) == 0 {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = append((*raw)[:0], b...)
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
	}
	return nil
}
