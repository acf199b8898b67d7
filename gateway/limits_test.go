package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/internal/testpoll"
)

// rowsBody is a predict body of n rows for the scorer over txFeatures.
func rowsBody(n int) []byte {
	var b strings.Builder
	b.WriteString("[")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"amount_log":%d,"amount_zscore":0.5,"merchant_risk":0.1}`, i)
	}
	b.WriteString("]")
	return []byte(b.String())
}

// TestLimits pins issue 11 defect 5 on the gateway: rows per predict are
// capped (--max-rows, 413 naming the flag), and no error echoes a huge
// value from the request.
func TestLimits(t *testing.T) {
	g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) { o.MaxRows = 5 }))
	pushModel(t, g, "scorer", "1", scorer(t, txFeatures, []float32{0.5, 0.8, 3}, -4))

	if a := call(t, "POST", g.URL+"/v1/routes/scorer/predict", "", rowsBody(5)); a.status != 200 {
		t.Fatalf("5 rows with --max-rows 5: %d %s", a.status, a.raw)
	}
	a := call(t, "POST", g.URL+"/v1/routes/scorer/predict", "", rowsBody(6))
	if a.status != 413 || !strings.Contains(a.raw, "--max-rows") || !strings.Contains(a.raw, "5") {
		t.Errorf("6 rows with --max-rows 5: %d %s, want 413 naming --max-rows", a.status, a.raw)
	}

	// Values from the request are never echoed whole in an error.
	huge := strings.Repeat("A", 200<<10)
	for _, c := range []struct{ path, body string }{
		{"/v2/models/scorer/infer", `{"inputs":[{"name":"` + huge + `","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}`},
		{"/v2/models/scorer/infer", `{"inputs":[{"name":"features","shape":[1,3],"datatype":"` + huge + `","data":[1,2,3]}]}`},
		{"/v2/models/scorer/infer", `{"inputs":[{"name":"features","shape":[1,3],"datatype":"FP32","data":["` + huge + `",2,3]}]}`},
		{"/v1/routes/scorer/predict", `{"amount_log":"` + huge + `","amount_zscore":0.5,"merchant_risk":0.1}`},
	} {
		a := call(t, "POST", g.URL+c.path, "", []byte(c.body))
		if a.status < 400 || a.status > 499 || a.body["error"] == nil {
			t.Errorf("%s with a 200 KiB value: %d %.200s, want a 4xx JSON error", c.path, a.status, a.raw)
		}
		if len(a.raw) > 2048 {
			t.Errorf("%s: the error is %d bytes, echoing the request: %.200s...", c.path, len(a.raw), a.raw)
		}
	}
}

// metricLines returns the /metrics lines of a metric family.
func metricLines(t testing.TB, g *testgw.Gateway, family string) []string {
	t.Helper()
	a := call(t, "GET", g.URL+"/metrics", "", nil)
	var out []string
	for _, l := range strings.Split(a.raw, "\n") {
		if strings.HasPrefix(l, family+"{") || strings.HasPrefix(l, family+" ") {
			out = append(out, l)
		}
	}
	return out
}

// TestUnknownNamesMakeNoSeries pins issue 11 defect 6: requests for names
// that do not exist create no metric series and no events; they share one
// "unknown" label.
func TestUnknownNamesMakeNoSeries(t *testing.T) {
	g := testgw.Start(t)
	pushModel(t, g, "scorer", "1", scorer(t, txFeatures, []float32{0.5, 0.8, 3}, -4))
	req := []byte(`{"inputs":[{"name":"features","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}`)
	for i := range 50 {
		for _, p := range []string{
			fmt.Sprintf("/v2/models/junk-%d/infer", i),
			fmt.Sprintf("/v2/models/junk-%d/versions/v%d/infer", i, i),
			fmt.Sprintf("/v2/models/scorer/versions/junk-%d/infer", i),
			fmt.Sprintf("/v1/routes/junk-%d/predict", i),
		} {
			if a := call(t, "POST", g.URL+p, "", req); a.status != 404 {
				t.Fatalf("POST %s: %d %s, want 404", p, a.status, a.raw)
			}
		}
	}
	if a := call(t, "POST", g.URL+"/v2/models/scorer/infer", "", req); a.status != 200 {
		t.Fatalf("valid infer: %d %s", a.status, a.raw)
	}
	for _, fam := range []string{"weir_requests_total", "weir_request_duration_seconds_count"} {
		lines := metricLines(t, g, fam)
		for _, l := range lines {
			if strings.Contains(l, "junk") {
				t.Errorf("a name that does not exist became a label: %s", l)
			}
		}
		if len(lines) > 3 {
			t.Errorf("%s has %d series after 200 junk requests:\n%s", fam, len(lines), strings.Join(lines, "\n"))
		}
	}
	// Only the valid request's event is published.
	var last []string
	testpoll.For(t, 30*time.Second, "the valid request's event to be published", func() error {
		last = metricLines(t, g, "weir_events_published_total")
		if len(last) != 1 || !strings.HasSuffix(last[0], " 1") {
			return fmt.Errorf("weir_events_published_total series %q, want one at 1", last)
		}
		return nil
	})
	if l := metricLines(t, g, "weir_events_published_total"); l[0] != last[0] {
		t.Errorf("events published: %v", l)
	}
}

// TestHTTPTimeouts pins issue 11 defect 7: a half-sent request and an idle
// keep-alive connection are closed by the server, not held forever.
func TestHTTPTimeouts(t *testing.T) {
	g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) {
		o.ReadTimeout, o.IdleTimeout = time.Second, time.Second
	}))
	host := strings.TrimPrefix(g.URL, "http://")
	for name, send := range map[string]string{
		"half-sent body":    "POST /v2/models/x/infer HTTP/1.1\r\nHost: weir\r\nContent-Length: 100\r\n\r\n{\"inputs\"",
		"half-sent headers": "GET /v2/health/live HTTP/1.1\r\nHost: weir\r\nX-Slow: ",
		"idle keep-alive":   "GET /v2/health/live HTTP/1.1\r\nHost: weir\r\n\r\n",
	} {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write([]byte(send)); err != nil {
			t.Fatal(err)
		}
		// Generous: the server's limit is 1s; a server without one holds
		// the connection past this.
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		got, err := io.ReadAll(conn)
		conn.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%s: the server still held the connection after 20s (read %q)", name, got)
		}
	}
}

// TestRequestDeadline: every request's context has a deadline
// (--request-timeout), which plugin, feature-store and NATS calls inherit.
func TestRequestDeadline(t *testing.T) {
	g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) { o.RequestTimeout = 3 * time.Second }))
	d, ok := gateway.RequestDeadlineForTest(g.Gateway)
	if !ok || d <= 0 || d > 3*time.Second {
		t.Errorf("request context deadline: %v %v, want within 3s", d, ok)
	}
}

// logModel is y = log(x) over one named feature "a": log(0) is -Inf and
// log(-1) NaN.
func logModel(t testing.TB) []byte {
	t.Helper()
	m := onnx.NewModel("log", 0)
	gr := m.Graph()
	gr.Input("x", onnx.Float, onnx.Sym("batch"), onnx.Fixed(1))
	gr.Output("y", onnx.Float, onnx.Sym("batch"), onnx.Fixed(1))
	gr.Node("Log", []string{"x"}, []string{"y"})
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestNonFiniteOutputs pins issue 11 defect 3: NaN and infinite outputs
// answer 200 on predict with the OIP convention ("NaN", "Infinity",
// "-Infinity"), as /v2/.../infer does, instead of a 500.
func TestNonFiniteOutputs(t *testing.T) {
	g := testgw.Start(t)
	if err := g.Client.PushModel(context.Background(), "log", "1", bytes.NewReader(logModel(t)), []string{"a"}); err != nil {
		t.Fatal(err)
	}
	for body, want := range map[string]any{
		`{"a":0}`:           "-Infinity",
		`{"a":-1}`:          "NaN",
		`[{"a":1},{"a":0}]`: []any{0.0, "-Infinity"},
	} {
		a := call(t, "POST", g.URL+"/v1/routes/log/predict", "", []byte(body))
		if a.status != 200 {
			t.Errorf("predict %s: %d %s", body, a.status, a.raw)
			continue
		}
		got := a.body["outputs"].(map[string]any)["y"]
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("predict %s: y = %v, want %v", body, got, want)
		}
	}
	a := call(t, "POST", g.URL+"/v2/models/log/infer", "", []byte(`{"inputs":[{"name":"x","shape":[1,1],"datatype":"FP32","data":[0]}]}`))
	if a.status != 200 || !strings.Contains(a.raw, `"-Infinity"`) {
		t.Errorf("infer log(0): %d %s", a.status, a.raw)
	}
}
