package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/weirhq/weir/examples/fraud"
	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/internal/testpoll"
)

// TestFraudDemoScreenshot renders the fraud demo (plugins, two trained
// model versions with reference data, a canary at 5% under live traffic)
// and saves the page to $WEIR_FRAUD_SCREENSHOT, e.g. ../docs/dashboard.png.
// It needs the demo's Wasm plugins (make plugins) and about a minute, so it
// runs only when asked.
func TestFraudDemoScreenshot(t *testing.T) {
	out := os.Getenv("WEIR_FRAUD_SCREENSHOT")
	if out == "" {
		t.Skip("set WEIR_FRAUD_SCREENSHOT=PATH.png to render the fraud demo")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("needs Chromium at %s (apt-get install -y chromium): %v", chromiumPath, err)
	}
	plugins := filepath.Join("..", "build", "plugins")
	g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) { o.CanaryTick = 200 * time.Millisecond }))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tr, err := fraud.TrainAll()
	if err != nil {
		t.Fatal(err)
	}
	if err := fraud.Setup(ctx, g.Client, tr, plugins, true, io.Discard); err != nil {
		t.Fatalf("install the fraud demo (make plugins builds %s): %v", plugins, err)
	}
	// History first, as make run and make demo do: accounts without it have
	// zero aggregates (amount_zscore reads 0) and the drift panel would show
	// a false alert that recovers as history builds up.
	const history = 5000
	gen := fraud.NewGenerator(7, fraud.Accounts, time.Now().UTC().Add(-history*fraud.SimGap))
	if err := fraud.Backfill(ctx, g.Client, gen, history); err != nil {
		t.Fatalf("backfill: %v", err)
	}
	sctx, stop := context.WithCancel(ctx)
	streamed := make(chan error, 1)
	go func() {
		streamed <- fraud.Stream(sctx, g.Client, gen, 80, 0, nil)
	}()
	defer func() { stop(); <-streamed }()

	// A few 10 s buckets of traffic make the charts worth looking at.
	testpoll.For(t, 60*time.Second, "two buckets of traffic", func() error {
		if n := busyBuckets(t, ctx, g, "stable"); n < 2 {
			return fmt.Errorf("%d buckets with stable traffic", n)
		}
		return nil
	})
	if _, err := g.Client.StartRollout(ctx, fraud.RouteName, json.RawMessage(`{"model":"fraud","version":"2","steps":[5,25,50,100],"interval":"30s","min_requests":50,"max_error_rate":0.01,"max_p99_ms":50,"max_drift":1}`)); err != nil {
		t.Fatalf("start rollout: %v", err)
	}
	testpoll.For(t, 60*time.Second, "two buckets of canary traffic", func() error {
		if n := busyBuckets(t, ctx, g, "canary"); n < 2 {
			return fmt.Errorf("%d buckets with canary traffic", n)
		}
		return nil
	})

	errs := &consoleErrors{}
	browser := startBrowser(t, errs)
	if err := chromedp.Do(browser, chromedp.EmulateViewport(1440, 1000), chromedp.Navigate(dashboardURL(t, g.URL)+"/")); err != nil {
		t.Fatalf("open the dashboard: %v", err)
	}
	waitText(t, browser, `#route-title`, "fraud")
	waitTextContains(t, browser, `#route-head .pipeline`, "fraud-features")
	waitText(t, browser, `#rollout-weight`, "5%")
	waitTextContains(t, browser, `#chart-rps .legend`, "canary")
	waitTextContains(t, browser, `#drift .drift-cell`, "reference uploaded")
	waitTextContains(t, browser, `#plugins`, "decision")
	// Drift history is kept by the page from its own polls: let it draw a
	// line of about ten points.
	testpoll.For(t, 40*time.Second, "drift history on the page", func() error {
		if n := evalJS[int](t, browser, `Math.max(0, ...[...document.querySelectorAll('#drift .series path')].map((p) => (p.getAttribute('d').match(/L/g) || []).length))`); n < 10 {
			return fmt.Errorf("the longest drift line has %d segments, want at least 10", n)
		}
		return nil
	})

	png, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", out)
	errs.check(t)
}

// busyBuckets counts the time series buckets of a fraud variant that saw
// traffic.
func busyBuckets(t *testing.T, ctx context.Context, g *testgw.Gateway, variant string) int {
	t.Helper()
	var ts struct {
		Variants []struct {
			Variant string `json:"variant"`
			Points  []struct {
				Requests int64 `json:"requests"`
			} `json:"points"`
		} `json:"variants"`
	}
	if err := g.Client.Get(ctx, "/v1/routes/"+fraud.RouteName+"/timeseries?since=5m", &ts); err != nil {
		t.Fatalf("timeseries: %v", err)
	}
	n := 0
	for _, v := range ts.Variants {
		for _, p := range v.Points {
			if v.Variant == variant && p.Requests > 0 {
				n++
			}
		}
	}
	return n
}
