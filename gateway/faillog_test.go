package gateway_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/internal/testpoll"
)

// A failed request is logged at warn with its route, variant, model
// version, the plugin its error names, the error and its request id; a
// flood of failures is rate-limited and says how many lines it left out.
func TestFailedRequestsAreLoggedAtWarnRateLimited(t *testing.T) {
	var logs testpoll.Buffer
	g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}))
	pushModel(t, g, "scorer", "1", scorer(t, txFeatures, []float32{0.5, 0.8, 3}, -4))
	pushPlugin(t, g, "trap", "1", plugin(t, "trap"))
	setRoute(t, g, "tx", `{"plugins":[{"name":"trap"}],"variants":[{"name":"stable","model":"scorer","version":"1","weight":100}]}`)

	resp, err := http.Post(g.URL+"/v1/routes/tx/predict", "application/json", strings.NewReader(`{"amount":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("trapping plugin answered %d, want 502", resp.StatusCode)
	}
	line := ""
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `msg="request failed"`) {
			line = l
		}
	}
	for _, want := range []string{"level=WARN", "route=tx", "variant=stable", "model=scorer", "version=1", "plugin=trap", "status=502", "request_id=", "err="} {
		if !strings.Contains(line, want) {
			t.Errorf("failed request log line %q lacks %q; log:\n%s", line, want, logs.String())
		}
	}

	for i := range 200 {
		body := fmt.Sprintf(`{"inputs":[{"name":"features","shape":[1,2],"datatype":"FP32","data":[%d,1]}]}`, i)
		resp, err := http.Post(g.URL+"/v2/models/scorer/infer", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	n := strings.Count(logs.String(), `msg="request failed"`)
	if n > 60 || n < 2 {
		t.Errorf("%d failed requests made %d log lines, want rate-limited (burst 20, then 5 a second)", 201, n)
	}
	testpoll.For(t, 10*time.Second, "a log line saying how many failures were suppressed", func() error {
		resp, err := http.Post(g.URL+"/v2/models/scorer/infer", "application/json", strings.NewReader(`{"inputs":[]}`))
		if err == nil {
			resp.Body.Close()
		}
		if l := logs.String(); !strings.Contains(l, "suppressed=") {
			return fmt.Errorf("none of %d \"request failed\" lines says suppressed=", strings.Count(l, `msg="request failed"`))
		}
		return nil
	})
}

// weir features backfill goes through the HTTP API with the admin token.
func TestFeatureBackfillThroughHTTP(t *testing.T) {
	g := testgw.Start(t)
	ctx := context.Background()
	set := `{"key":"account_id","timestamp_field":"ts","aggregations":[{"name":"tx_count_1h","op":"count","window":"1h"}]}`
	if err := g.Client.Send(ctx, "PUT", "/v1/featuresets/tx", rawJSON(set), nil); err != nil {
		t.Fatalf("define set: %v", err)
	}
	now := time.Now().Unix()
	csv := fmt.Sprintf("account_id,amount,ts\na1,10,%d\na1,20,%d\na2,5,%d\n", now-60, now-30, now-10)
	n, err := g.Client.Backfill(ctx, "tx", strings.NewReader(csv), "csv")
	if err != nil || n != 3 {
		t.Fatalf("backfill: %d rows, %v; want 3", n, err)
	}
	testpoll.For(t, 20*time.Second, "a1's tx_count_1h is 2 after the backfill", func() error {
		var out struct {
			Features map[string]any `json:"features"`
		}
		if err := g.Client.Get(ctx, "/v1/features/a1", &out); err != nil {
			return err
		}
		if got := fmt.Sprint(out.Features["tx_count_1h"]); got != "2" {
			return fmt.Errorf("a1's tx_count_1h is %s (features %v)", got, out.Features)
		}
		return nil
	})

	req, _ := http.NewRequest("POST", g.URL+"/v1/featuresets/tx/backfill", strings.NewReader(csv))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("backfill without the admin token: %d, want 401", resp.StatusCode)
	}
}

type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }
