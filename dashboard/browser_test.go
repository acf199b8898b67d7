package dashboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/internal/testpoll"
)

const chromiumPath = "/usr/bin/chromium"

// TestDashboardInBrowser drives the page in a real headless Chromium against
// a real gateway: it loads without console errors, lists the route, shows a
// rollout started through the API with its weight, reports a bad token, and
// aborts the rollout with the right one.
func TestDashboardInBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the browser tests need Chromium at %s (Debian: apt-get install -y chromium): %v", chromiumPath, err)
	}
	g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) { o.CanaryTick = 20 * time.Millisecond }))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	for _, v := range []string{"1", "2"} {
		m, err := onnx.LogisticRegression("m", []string{"x"}, []float32{1}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Client.PushModel(ctx, "m", v, bytes.NewReader(m), nil); err != nil {
			t.Fatalf("push m@%s: %v", v, err)
		}
	}
	if err := g.Client.SetRoute(ctx, "demo", json.RawMessage(`{"variants":[{"name":"stable","model":"m","version":"1","weight":100}]}`)); err != nil {
		t.Fatalf("set route: %v", err)
	}
	predict(t, g.URL, 20)

	base := dashboardURL(t, g.URL)
	errs := &consoleErrors{}
	browser := startBrowser(t, errs)

	if err := chromedp.Do(browser,
		chromedp.EmulateViewport(1440, 1000),
		chromedp.Navigate(base+"/"),
	); err != nil {
		t.Fatalf("open the dashboard: %v", err)
	}

	// The route appears, is selected (it is the only one), and has no rollout.
	waitText(t, browser, `.route-item[data-route="demo"] .route-name`, "demo")
	waitText(t, browser, `#route-title`, "demo")
	waitText(t, browser, `#rollout-none`, "No rollout on this route yet. Start a canary with")
	waitText(t, browser, `#health-text`, "ready")
	waitTextContains(t, browser, `#models tr[data-model="m"]`, "m")

	// A rollout started through the API shows up with its weight and steps.
	if _, err := g.Client.StartRollout(ctx, "demo", json.RawMessage(`{"model":"m","version":"2","steps":[10,50,100],"interval":"1h","min_requests":1000}`)); err != nil {
		t.Fatalf("start rollout: %v", err)
	}
	// At 10%, 30 requests miss the canary 4% of the time: send until it
	// has answered some.
	predictUntilVariant(t, g.URL, "demo", "canary", 3)
	waitText(t, browser, `#rollout-weight`, "10%")
	waitText(t, browser, `#rollout-state .badge`, "progressing")
	waitTextContains(t, browser, `#rollout-step`, "step 1 of 3 · 1h per step")
	waitTextContains(t, browser, `.route-item[data-route="demo"] .badge`, "progressing · 10%")
	waitLabel(t, browser, `#split-card .split-big`, "stable 90%, canary 10%")
	// Every poll after the rollout started brought traffic onto the charts.
	waitTextContains(t, browser, `#chart-rps .legend`, "canary")

	// Versioned OIP calls bypass the split: a row of their own in the split
	// table, no pseudo-variant on the charts. Two batches: the second row
	// update comes from a poll that started after the first batch was
	// counted, so its charts had the pinned series to leave out.
	pinned(t, g.URL, 3)
	waitText(t, browser, `#split-card .pinned-row td:nth-child(4)`, "0.05")
	pinned(t, g.URL, 3)
	waitText(t, browser, `#split-card .pinned-row td:nth-child(4)`, "0.10")
	waitTextContains(t, browser, `#split-card .pinned-row`, "m@2")
	for _, chart := range []string{"#chart-rps", "#chart-err", "#chart-lat"} {
		if legend := evalJS[string](t, browser, `document.querySelector('`+chart+` .legend')?.textContent ?? ''`); strings.Contains(legend, "pinned") {
			t.Errorf("%s shows pinned calls as a variant: legend %q", chart, legend)
		}
	}

	shot := screenshot(t, browser)
	if len(shot) == 0 {
		t.Fatal("empty screenshot")
	}

	// Without a token, Abort explains where to find it and opens the field.
	click(t, browser, `button[data-action="abort"]`)
	waitTextContains(t, browser, `#action-error`, "weir-data/admin-token")
	if hidden := evalJS[bool](t, browser, `document.getElementById('token-panel').hidden`); hidden {
		t.Fatal("the token panel stayed closed after an action without a token")
	}

	// A wrong token shows the API's 401, and the rollout keeps going.
	setToken(t, browser, "not-the-token")
	click(t, browser, `button[data-action="abort"]`)
	waitTextContains(t, browser, `#action-error`, "401")
	if st := rolloutState(t, ctx, g); st != "progressing" {
		t.Fatalf("after an abort with a bad token the rollout is %q, want progressing", st)
	}

	// The real token aborts: the API and the page agree it rolled back.
	setToken(t, browser, g.Token)
	click(t, browser, `button[data-action="abort"]`)
	testpoll.For(t, 10*time.Second, "the rollout to roll back", func() error {
		if st := rolloutState(t, ctx, g); st != "rolled_back" {
			return fmt.Errorf("rollout is %q", st)
		}
		return nil
	})
	waitText(t, browser, `#rollout-state .badge`, "rolled back")
	waitText(t, browser, `#rollout-weight`, "0%")
	waitTextContains(t, browser, `#action-notice`, "abort done: rollout is rolled back")
	waitLabel(t, browser, `#split-card .split-big`, "stable 100%, canary 0%")
	waitTextContains(t, browser, `.history`, "rolled back")
	if n := evalJS[int](t, browser, `document.querySelectorAll('button[data-action]').length`); n != 0 {
		t.Fatalf("a finished rollout still shows %d action buttons", n)
	}

	errs.check(t)
}

// TestDriftGridInBrowser checks the drift grid in a real Chromium against
// a real gateway: a version with traffic comes before one without, every
// card names its feature in full (collecting ones too), and a page opened
// later draws history from before it was opened.
func TestDriftGridInBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the browser tests need Chromium at %s (Debian: apt-get install -y chromium): %v", chromiumPath, err)
	}
	g := testgw.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// Long names, as real features have: a 250 px card cut them to "acc…".
	features := []string{"account_age_days_since_signup", "amount_usd_rolling_24h_mean"}
	var ref strings.Builder
	ref.WriteString(strings.Join(features, ",") + "\n")
	for i := range 300 {
		fmt.Fprintf(&ref, "%d,%d\n", i%5, i%7)
	}
	// 1 serves the traffic and 2 (the newer, listed first before) none; 3
	// has no reference and collects one from its first events.
	for _, v := range []string{"1", "2", "3"} {
		m, err := onnx.LogisticRegression("m", features, []float32{0.1, 0.1}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Client.PushModel(ctx, "m", v, bytes.NewReader(m), nil); err != nil {
			t.Fatalf("push m@%s: %v", v, err)
		}
		if v != "3" {
			if err := g.Client.PushReference(ctx, "m", v, strings.NewReader(ref.String()), "text/csv"); err != nil {
				t.Fatalf("reference of m@%s: %v", v, err)
			}
		}
	}
	for route, v := range map[string]string{"demo": "1", "side": "3"} {
		if err := g.Client.SetRoute(ctx, route, json.RawMessage(`{"variants":[{"name":"stable","model":"m","version":"`+v+`","weight":100}]}`)); err != nil {
			t.Fatalf("set route %s: %v", route, err)
		}
	}
	body := func(i int) string {
		return fmt.Sprintf(`{%q:%d,%q:%d}`, features[0], i%5, features[1], i%7)
	}
	predictRoute(t, g.URL, "demo", 150, body)
	predictRoute(t, g.URL, "side", 5, body)

	base := dashboardURL(t, g.URL)
	errs := &consoleErrors{}
	browser := startBrowser(t, errs)
	if err := chromedp.Do(browser, chromedp.EmulateViewport(1440, 1000), chromedp.Navigate(base+"/")); err != nil {
		t.Fatalf("open the dashboard: %v", err)
	}
	cell := func(v, f string) string {
		return fmt.Sprintf(`#drift .drift-cell[data-version="%s"][data-feature="%s"]`, v, f)
	}
	for _, f := range features {
		waitText(t, browser, cell("1", f)+" .drift-feature", f)
		waitTextContains(t, browser, cell("2", f), "warming up (0 of 100)")
		waitTextContains(t, browser, cell("3", f), "collecting reference (5 of 1,000)")
	}
	// Judged: m@1 has a score and a chart point.
	testpoll.For(t, 30*time.Second, "m@1 judged and charted", func() error {
		js := fmt.Sprintf(`document.querySelector('%s .chart')?.dataset.first ?? ''`, cell("1", features[0]))
		if got := evalJS[string](t, browser, js); got == "" {
			return fmt.Errorf("the chart of m@1 %s has no point yet", features[0])
		}
		return nil
	})

	// The live version comes first, then the one collecting, then the idle one.
	top := func(v string) float64 {
		return evalJS[float64](t, browser, fmt.Sprintf(`document.querySelector('%s').getBoundingClientRect().top`, cell(v, features[0])))
	}
	if t1, t3, t2 := top("1"), top("3"), top("2"); !(t1 < t3 && t3 < t2) {
		t.Errorf("drift cards top at m@1 %v, m@3 %v, m@2 %v px: want the live version first and the idle one last", t1, t3, t2)
	}
	// Every card names its feature in full: not cut, not squeezed out by a
	// state text, and the whole name in a tooltip.
	names := evalJS[[]map[string]any](t, browser, `[...document.querySelectorAll('#drift .drift-cell')].map((c) => {
		const n = c.querySelector('.drift-feature');
		return {card: c.dataset.version + '/' + c.dataset.feature, text: n?.textContent ?? '', title: n?.title ?? '',
			width: n?.clientWidth ?? 0, overflow: n ? n.scrollWidth > n.clientWidth : true};
	})`)
	if len(names) < 6 {
		t.Errorf("the drift grid has %d cards, want at least 6 (two features of three versions): %v", len(names), names)
	}
	for _, n := range names {
		card, _ := n["card"].(string)
		want := card[strings.Index(card, "/")+1:]
		if n["text"] != want || n["title"] != want || n["overflow"] != false || n["width"].(float64) < 20 {
			t.Errorf("card %s names its feature %q (title %q, %v px wide, overflowing %v), want %q in full", card, n["text"], n["title"], n["width"], n["overflow"], want)
		}
	}

	// A page opened now draws traffic and drift from before it was opened.
	later, closeLater := chromedp.NewContext(browser)
	defer closeLater()
	if err := chromedp.Do(later, chromedp.EmulateViewport(1440, 1000), chromedp.Navigate(base+"/")); err != nil {
		t.Fatalf("open a second page: %v", err)
	}
	waitTextContains(t, later, cell("1", features[0]), features[0])
	for _, chart := range []string{"#chart-err", cell("1", features[0]) + " .chart"} {
		js := fmt.Sprintf(`(() => { const f = Number(document.querySelector('%s')?.dataset.first); return f > 0 && f < performance.timeOrigin ? '' : 'first point ' + f + ', page opened ' + performance.timeOrigin; })()`, chart)
		waitJS(t, later, chart+" history", js, "", func(got string) bool { return got == "" })
	}
	shot := screenshot(t, later)
	if len(shot) == 0 {
		t.Fatal("empty screenshot")
	}
	errs.check(t)
}

// dashboardURL checks that the gateway serves the dashboard at GET / (it
// calls dashboard.Mount) and returns its URL.
func dashboardURL(t *testing.T, gw string) string {
	t.Helper()
	resp, err := http.Get(gw + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `id="route-list"`) {
		t.Fatalf("GET %s/ = %d without the dashboard page: does gateway/http.go call dashboard.Mount?", gw, resp.StatusCode)
	}
	return gw
}

// startBrowser launches a fresh headless Chromium whose page reports its
// console errors to errs.
func startBrowser(t *testing.T, errs *consoleErrors) context.Context {
	t.Helper()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc, chromedp.WithListener(errs.listen))
	t.Cleanup(cancel)
	return ctx
}

// consoleErrors collects console.error calls and uncaught exceptions.
type consoleErrors struct {
	mu   sync.Mutex
	msgs []string
}

// listen is a chromedp listener: it must return fast and not call back
// into the browser.
func (ce *consoleErrors) listen(ev any) {
	var msg string
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError {
			return
		}
		var parts []string
		for _, a := range ev.Args {
			parts = append(parts, a.Description+string(a.Value))
		}
		msg = "console.error: " + strings.Join(parts, " ")
	case *runtime.EventExceptionThrown:
		msg = "exception: " + ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			msg += " " + ev.ExceptionDetails.Exception.Description
		}
	default:
		return
	}
	ce.mu.Lock()
	ce.msgs = append(ce.msgs, msg)
	ce.mu.Unlock()
}

func (ce *consoleErrors) check(t *testing.T) {
	t.Helper()
	ce.mu.Lock()
	defer ce.mu.Unlock()
	if len(ce.msgs) > 0 {
		t.Fatalf("the page logged %d errors:\n%s", len(ce.msgs), strings.Join(ce.msgs, "\n"))
	}
}

func evalJS[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

func waitText(t *testing.T, ctx context.Context, sel, want string) {
	t.Helper()
	waitFor(t, ctx, sel, want, func(got string) bool { return got == want })
}

func waitTextContains(t *testing.T, ctx context.Context, sel, want string) {
	t.Helper()
	waitFor(t, ctx, sel, want, func(got string) bool { return strings.Contains(got, want) })
}

// waitLabel waits for the aria-label of sel, which is what the split bar
// says to screen readers (its segments are too narrow for text at 10%).
func waitLabel(t *testing.T, ctx context.Context, sel, want string) {
	t.Helper()
	js := fmt.Sprintf(`document.querySelector(%q)?.getAttribute('aria-label') ?? ''`, sel)
	waitJS(t, ctx, sel+" aria-label", js, want, func(got string) bool { return got == want })
}

func waitFor(t *testing.T, ctx context.Context, sel, want string, ok func(string) bool) {
	t.Helper()
	js := fmt.Sprintf(`(document.querySelector(%q)?.textContent ?? '').replace(/\s+/g, ' ').trim()`, sel)
	waitJS(t, ctx, sel, js, want, ok)
}

// waitJS polls the string js evaluates to until ok accepts it (testpoll.For).
func waitJS(t *testing.T, ctx context.Context, what, js, want string, ok func(string) bool) {
	t.Helper()
	testpoll.For(t, 10*time.Second, fmt.Sprintf("%s to show %q", what, want), func() error {
		if got := evalJS[string](t, ctx, js); !ok(got) {
			return fmt.Errorf("%s shows %q", what, got)
		}
		return nil
	})
}

func click(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(cctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeEnabled)); err != nil {
		t.Fatalf("click %s: %v", sel, err)
	}
}

// setToken types a token into the header's field and saves it, as a user
// would.
func setToken(t *testing.T, ctx context.Context, token string) {
	t.Helper()
	if evalJS[bool](t, ctx, `document.getElementById('token-panel').hidden`) {
		click(t, ctx, `#token-toggle`)
	}
	// Empty the field as a user selecting its text would.
	evalJS[string](t, ctx, `document.getElementById('token-input').value = ''`)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(cctx,
		chromedp.SendKeys(chromedp.CSS(`#token-input`), token),
		chromedp.Click(chromedp.CSS(`#token-save`)),
	); err != nil {
		t.Fatalf("enter the token: %v", err)
	}
	if got := evalJS[string](t, ctx, `sessionStorage.getItem('weir.adminToken') ?? ''`); got != token {
		t.Fatalf("the page stored token %q, want %q", got, token)
	}
}

func screenshot(t *testing.T, ctx context.Context) []byte {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	paths := []string{filepath.Join(t.TempDir(), "dashboard.png")}
	if p := os.Getenv("WEIR_SCREENSHOT"); p != "" {
		paths = append(paths, p)
	}
	for _, p := range paths {
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatalf("save screenshot: %v", err)
		}
	}
	t.Logf("screenshot: %s", strings.Join(paths, ", "))
	return png
}

func predict(t *testing.T, url string, n int) {
	t.Helper()
	predictRoute(t, url, "demo", n, func(i int) string { return fmt.Sprintf(`{"x":%d}`, i%5) })
}

// predictUntilVariant sends predictions to route until variant has answered
// n of them (at most 5,000 requests).
func predictUntilVariant(t *testing.T, url, route, variant string, n int) {
	t.Helper()
	seen := 0
	for i := 0; seen < n; i++ {
		if i == 5000 {
			t.Fatalf("%d predictions on route %s, %d answered by %s; want %d", i, route, seen, variant, n)
		}
		resp, err := http.Post(url+"/v1/routes/"+route+"/predict", "application/json", strings.NewReader(fmt.Sprintf(`{"x":%d}`, i%5)))
		if err != nil {
			t.Fatal(err)
		}
		var a struct {
			Variant string `json:"variant"`
		}
		err = json.NewDecoder(resp.Body).Decode(&a)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("predict: %s %v", resp.Status, err)
		}
		if a.Variant == variant {
			seen++
		}
	}
}

// predictRoute sends n predictions to route, the i-th with body(i).
func predictRoute(t *testing.T, url, route string, n int, body func(int) string) {
	t.Helper()
	for i := range n {
		resp, err := http.Post(url+"/v1/routes/"+route+"/predict", "application/json", strings.NewReader(body(i)))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("predict: %s", resp.Status)
		}
	}
}

// pinned sends n OIP calls that name m's version 2 on route demo.
func pinned(t *testing.T, url string, n int) {
	t.Helper()
	for range n {
		resp, err := http.Post(url+"/v2/models/demo/versions/2/infer", "application/json",
			strings.NewReader(`{"inputs":[{"name":"features","shape":[1,1],"datatype":"FP32","data":[1]}]}`))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("pinned infer: %s", resp.Status)
		}
	}
}

func rolloutState(t *testing.T, ctx context.Context, g *testgw.Gateway) string {
	t.Helper()
	raw, err := g.Client.Rollout(ctx, "demo")
	if err != nil {
		t.Fatalf("rollout status: %v", err)
	}
	var st struct {
		State string `json:"state"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	return st.State
}
