package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weirhq/weir/internal/testpoll"
	"github.com/weirhq/weir/internal/weirerr"
)

// mapFeatures is a real FeatureReader over a map; block, when set, holds
// reads until it is closed, so tests can keep calls in flight.
type mapFeatures struct {
	m       map[string]string
	block   chan struct{}
	entered chan struct{}
}

func (f *mapFeatures) ReadFeatures(ctx context.Context, entity string) ([]byte, bool, error) {
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.block != nil {
		<-f.block
	}
	v, ok := f.m[entity]
	return []byte(v), ok, nil
}

func newHost(t testing.TB, o Options) *Host {
	t.Helper()
	if o.CacheDir == "" {
		o.CacheDir = cacheDir
	}
	if o.Limits.Timeout == 0 {
		// The machines tests run on are shared and loaded: a 20ms default
		// would fail ordinary calls on a scheduling stall. Tests of the
		// deadline set theirs.
		o.Limits.Timeout = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	h, err := NewHost(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

func load(t testing.TB, h *Host, name string, l Limits) {
	t.Helper()
	if err := h.Load(context.Background(), name, "1", wasmFile(t, name), l); err != nil {
		t.Fatalf("Load %s: %v", name, err)
	}
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("output %q is not a JSON object: %v", b, err)
	}
	return m
}

// wantErr checks err's kind and that its message contains every part.
func wantErr(t *testing.T, err error, kind weirerr.Kind, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want kind %d containing %q", kind, parts)
	}
	if k := weirerr.KindOf(err); k != kind {
		t.Errorf("error %q has kind %d, want %d", err, k, kind)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

const txn = `{"account_id":"acct-42","amount":120,"merchant":"m1","ts":"2024-05-01T13:45:00Z","currency":"EUR"}`

func TestEchoReturnsInputAndOwnedBytes(t *testing.T) {
	h := newHost(t, Options{PoolSize: 1})
	load(t, h, "wat-echo", Limits{})
	ctx := context.Background()
	first, err := h.Call(ctx, "wat-echo", "1", nil, []byte(txn))
	if err != nil {
		t.Fatal(err)
	}
	if string(first) != txn {
		t.Fatalf("echo returned %q, want %q", first, txn)
	}
	// A second call through the same (only) instance must not change the
	// bytes the first call returned.
	if _, err := h.Call(ctx, "wat-echo", "1", nil, []byte(`{"other":"input, longer than before, to move things"}`)); err != nil {
		t.Fatal(err)
	}
	if string(first) != txn {
		t.Fatalf("first output changed to %q after a second call", first)
	}
}

func TestFraudFeatures(t *testing.T) {
	feats := &mapFeatures{m: map[string]string{"acct-42": `{"amount_mean_24h":100,"amount_std_24h":10,"tx_count_1h":3}`}}
	h := newHost(t, Options{PoolSize: 2, Features: feats})
	load(t, h, "fraud-features", Limits{})
	cfg := []byte(`{"merchant_risk":{"m1":0.9},"default_risk":0.1}`)
	ctx := context.Background()

	out, err := h.Call(ctx, "fraud-features", "1", cfg, []byte(txn))
	if err != nil {
		t.Fatal(err)
	}
	got := decode(t, out)
	want := map[string]any{
		"account_id": "acct-42", "amount": 120.0, "merchant": "m1", "currency": "EUR",
		"ts": "2024-05-01T13:45:00Z", "hour_of_day": 13.0, "amount_zscore": 2.0,
		"merchant_risk": 0.9, "amount_log": math.Log1p(120), "is_night": 0.0,
		"tx_count_1h": 3.0, "merchants_24h": 0.0,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || fmt.Sprint(g) != fmt.Sprint(v) {
			t.Errorf("%s = %v, want %v (output %s)", k, g, v, out)
		}
	}

	// Unknown account: no history; unix-seconds ts at night; unknown merchant.
	out, err = h.Call(ctx, "fraud-features", "1", cfg,
		[]byte(`{"account_id":"nobody","amount":30,"merchant":"m9","ts":1714530600}`))
	if err != nil {
		t.Fatal(err)
	}
	got = decode(t, out)
	if got["amount_zscore"] != 0.0 || got["merchant_risk"] != 0.1 || got["hour_of_day"] != 2.0 || got["is_night"] != 1.0 || got["tx_count_1h"] != 0.0 {
		t.Errorf("defaults not applied: %s", out)
	}

	// A bad event is the guest's clean error, naming the plugin.
	_, err = h.Call(ctx, "fraud-features", "1", cfg, []byte(`{"amount":"lots"}`))
	wantErr(t, err, weirerr.Upstream, `plugin "fraud-features@1"`, `field "amount" must be a number`)
}

func TestDecision(t *testing.T) {
	h := newHost(t, Options{PoolSize: 1})
	load(t, h, "decision", Limits{})
	cfg := []byte(`{"review":0.5,"block":0.8}`)
	for _, tc := range []struct {
		outputs, want string
	}{
		{`{"probability":[[0.93]]}`, "block"},
		{`{"probability":[0.6]}`, "review"},
		{`[{"name":"probability","shape":[1,1],"datatype":"FP32","data":[0.1]}]`, "allow"},
	} {
		in := `{"event":{"amount":5},"features":{"amount_log":1.7},"outputs":` + tc.outputs + `}`
		out, err := h.Call(context.Background(), "decision", "1", cfg, []byte(in))
		if err != nil {
			t.Fatalf("%s: %v", tc.outputs, err)
		}
		if got := decode(t, out); got["decision"] != tc.want {
			t.Errorf("outputs %s: got %s, want decision %s", tc.outputs, out, tc.want)
		}
	}
	_, err := h.Call(context.Background(), "decision", "1", []byte(`{"score_output":"nope"}`), []byte(`{"outputs":{"p":[1]}}`))
	wantErr(t, err, weirerr.Upstream, `plugin "decision@1"`, `no output named "nope"`)
}

func TestCNormalize(t *testing.T) {
	h := newHost(t, Options{PoolSize: 1})
	load(t, h, "c-normalize", Limits{})
	in := `{"Name":"  ALICE Smith ","amount":5000,"low":-3,"ok":12.5,"flag":true,"nested":{"A":"B"},"tags":["X"]}`
	out, err := h.Call(context.Background(), "c-normalize", "1", []byte(`{"min":0,"max":1000}`), []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	got := decode(t, out)
	want := map[string]any{"Name": "alice smith", "amount": 1000.0, "low": 0.0, "ok": 12.5, "flag": true,
		"nested": map[string]any{"A": "B"}, "tags": []any{"X"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %s, want %v", out, want)
	}
	_, err = h.Call(context.Background(), "c-normalize", "1", nil, []byte(`   `))
	wantErr(t, err, weirerr.Upstream, `plugin "c-normalize@1"`, "input is not a JSON object")
}

func TestDeadlineStopsInfiniteLoopAndNextCallSucceeds(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newHost(t, Options{PoolSize: 2, Registerer: reg})
	load(t, h, "loop", Limits{Timeout: DefaultTimeout})
	_, err := h.Call(context.Background(), "loop", "1", nil, []byte(`{"loop":"forever"}`))
	wantErr(t, err, weirerr.Upstream, `plugin "loop@1": deadline of 20ms exceeded`)

	out, err := h.CallWithLimits(context.Background(), "loop", "1", nil, []byte(`{}`), Limits{Timeout: 2 * time.Second})
	if err != nil || string(out) != `{}` {
		t.Fatalf("call after a deadline: %q, %v", out, err)
	}
	if n := testutil.ToFloat64(h.metrics.failures.WithLabelValues("loop", "1", "deadline")); n != 1 {
		t.Errorf("deadline failures = %v, want 1", n)
	}
	// The discarded instance is replaced in the background: the pool is
	// back to as many idle instances as it wants (one, or two if the call
	// after the deadline found none free and grew it).
	pv := h.plugins[pluginKey{"loop", "1"}]
	testpoll.For(t, 5*time.Second, "the discarded instance replaced", func() error {
		pv.mu.Lock()
		want, n := pv.want, len(pv.free)
		pv.mu.Unlock()
		if n != want {
			return fmt.Errorf("%d of %d instances idle", n, want)
		}
		return nil
	})

	// A per-call limit overrides the plugin's.
	_, err = h.CallWithLimits(context.Background(), "loop", "1", nil, []byte(`{"loop":"forever"}`), Limits{Timeout: 5 * time.Millisecond})
	wantErr(t, err, weirerr.Upstream, "deadline of 5ms exceeded")
}

// The deadline timer stays set between calls (guard): a call with a
// deadline earlier than the one it was set for must set it earlier.
func TestShortDeadlineAfterALongOne(t *testing.T) {
	h := newHost(t, Options{PoolSize: 1})
	load(t, h, "loop", Limits{})
	if _, err := h.CallWithLimits(context.Background(), "loop", "1", nil, []byte(`{}`), Limits{Timeout: 10 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := h.CallWithLimits(context.Background(), "loop", "1", nil, []byte(`{"loop":"forever"}`), Limits{Timeout: 5 * time.Millisecond})
		done <- err
	}()
	select {
	case err := <-done:
		wantErr(t, err, weirerr.Upstream, "deadline of 5ms exceeded")
	case <-time.After(testpoll.MinWait):
		t.Fatalf("a 5ms deadline did not stop a loop within %s: the timer stayed set for the call before's 10 minutes", testpoll.MinWait)
	}
}

// expire, the deadline timer's function, interrupts only an entry that
// is running and past its deadline; before the deadline it sets the timer
// for it, and between entries it does nothing.
func TestExpireFiresOnlyIntoARunningEntryPastItsDeadline(t *testing.T) {
	pv, in := takeTheOnlyEcho(t)
	defer pv.put(in, false) // its interrupt flag may be set: replace it
	state := func() (fired, armed bool, armedAt int64) {
		in.dmu.Lock()
		defer in.dmu.Unlock()
		return in.fired.Load(), in.armed, in.armedAt
	}
	setEntry := func(dl int64) {
		in.dmu.Lock()
		in.dl = dl
		in.dmu.Unlock()
	}

	in.expire() // no entry running
	if fired, armed, _ := state(); fired || armed {
		t.Fatalf("between entries: fired %v, armed %v; want neither", fired, armed)
	}
	dl := pv.host.mono() + int64(time.Hour)
	setEntry(dl)
	in.expire() // an entry before its deadline
	if fired, armed, at := state(); fired || !armed || at != dl {
		t.Fatalf("before the deadline: fired %v, armed %v at %d; want not fired, armed at %d", fired, armed, at, dl)
	}
	setEntry(0)
	in.expire() // the timer set above runs after the entry returned
	if fired, armed, _ := state(); fired || armed {
		t.Fatalf("after the entry returned: fired %v, armed %v; want neither", fired, armed)
	}
	setEntry(pv.host.mono() - 1)
	in.expire() // an entry past its deadline
	if fired, _, _ := state(); !fired {
		t.Fatal("past the deadline: not fired")
	}
	if v := in.interrupt.Get(); v != 1 {
		t.Errorf("past the deadline: interrupt global %d, want 1", v)
	}
	setEntry(0)
}

func TestMemoryLimit(t *testing.T) {
	h := newHost(t, Options{PoolSize: 1})
	// A generous deadline: growing memory copies it, and test machines are
	// shared.
	load(t, h, "grow", Limits{MemoryPages: 32, Timeout: 5 * time.Second})
	_, err := h.Call(context.Background(), "grow", "1", nil, []byte(`{}`))
	wantErr(t, err, weirerr.Upstream, `plugin "grow@1": memory limit of 32 pages (2 MiB) exceeded`)

	// A plugin whose memory starts above its limit is refused at load.
	err = h.Load(context.Background(), "fraud-features", "1", wasmFile(t, "fraud-features"), Limits{MemoryPages: 8})
	wantErr(t, err, weirerr.Invalid, "memory starts at", "over its limit of 8 pages")
}

// TestFailedGrowNamesTheLimit pins issue 30 item 13: a guest that handles
// a refused memory.grow itself (set_error "out of memory", or weir_alloc
// returning 0) gets its call reported as the memory limit it hit, which is
// what docs/plugin-abi.md promises.
func TestFailedGrowNamesTheLimit(t *testing.T) {
	h := newHost(t, Options{PoolSize: 1})
	load(t, h, "growoom", Limits{MemoryPages: 32, Timeout: 5 * time.Second})
	_, err := h.Call(context.Background(), "growoom", "1", nil, []byte(`{}`))
	wantErr(t, err, weirerr.Upstream, `plugin "growoom@1"`, "memory limit of 32 pages (2 MiB) exceeded", "out of memory")
	// weir_alloc grows by the input's pages: an input over the limit.
	_, err = h.Call(context.Background(), "growoom", "1", nil, bytes.Repeat([]byte(" "), 3<<20))
	wantErr(t, err, weirerr.Upstream, "weir_alloc(3145728) returned 0", "memory limit of 32 pages (2 MiB) exceeded")
}

func TestTrap(t *testing.T) {
	h := newHost(t, Options{PoolSize: 1})
	load(t, h, "trap", Limits{})
	_, err := h.Call(context.Background(), "trap", "1", nil, []byte(`{}`))
	wantErr(t, err, weirerr.Upstream, `plugin "trap@1": trapped`, "unreachable")
}

func TestGuestErrorKeepsInstance(t *testing.T) {
	h := newHost(t, Options{PoolSize: 1})
	load(t, h, "guesterr", Limits{})
	before := instanceSeq.Load()
	for range 3 {
		_, err := h.Call(context.Background(), "guesterr", "1", nil, []byte(`{}`))
		wantErr(t, err, weirerr.Upstream, `plugin "guesterr@1": failed (status 7): amount is missing`)
	}
	if n := instanceSeq.Load() - before; n != 0 {
		t.Errorf("%d instances were created after clean guest errors, want 0", n)
	}
}

func TestBadOutput(t *testing.T) {
	h := newHost(t, Options{PoolSize: 1})
	load(t, h, "nooutput", Limits{})
	_, err := h.Call(context.Background(), "nooutput", "1", nil, []byte(`{}`))
	wantErr(t, err, weirerr.Upstream, "without calling set_output")
	_, err = h.Call(context.Background(), "nooutput", "1", nil, []byte(`{}`))
	wantErr(t, err, weirerr.Upstream, "not a JSON object", `"[1,2]"`)
}

func TestStdoutGoesToTheLogRateLimited(t *testing.T) {
	var logs testpoll.Buffer
	reg := prometheus.NewRegistry()
	h := newHost(t, Options{
		PoolSize: 1, Registerer: reg, LogBurst: 10, LogLinesPerSecond: 1,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	load(t, h, "stdout", Limits{})
	out, err := h.Call(context.Background(), "stdout", "1", nil, []byte(`{"a":1}`))
	if err != nil || string(out) != `{"a":1}` {
		t.Fatalf("got %q, %v", out, err)
	}
	text := logs.String()
	if !strings.Contains(text, `msg="hello from the guest" plugin=stdout@1 source=stdout`) {
		t.Fatalf("guest stdout not in the log:\n%s", text)
	}
	if n := strings.Count(text, "hello from the guest"); n > 11 {
		t.Errorf("%d guest lines logged, want at most the burst of 10 (+1 refilled)", n)
	}
	if n := testutil.ToFloat64(h.metrics.logDropped.WithLabelValues("stdout", "1")); n < 189 {
		t.Errorf("dropped lines = %v, want at least 189 of 200", n)
	}
}

func TestNotLoaded(t *testing.T) {
	h := newHost(t, Options{PoolSize: 1})
	_, err := h.Call(context.Background(), "nope", "1", nil, []byte(`{}`))
	wantErr(t, err, weirerr.NotFound, "nope@1")
	wantErr(t, h.Unload("nope", "1"), weirerr.NotFound, "nope@1")
	wantErr(t, h.Load(context.Background(), "../etc", "1", wasmFile(t, "wat-echo"), Limits{}), weirerr.Invalid, `"../etc"`)
}

func TestConcurrentCalls(t *testing.T) {
	feats := &mapFeatures{m: map[string]string{"acct-42": `{"amount_mean_24h":100,"amount_std_24h":10,"tx_count_1h":3}`}}
	h := newHost(t, Options{PoolSize: 4, Features: feats, Limits: Limits{Timeout: 2 * time.Second}})
	load(t, h, "wat-echo", Limits{})
	load(t, h, "fraud-features", Limits{})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				in := fmt.Sprintf(`{"account_id":"acct-42","amount":%d,"g":%d,"i":%d}`, 100+g, g, i)
				out, err := h.Call(context.Background(), "wat-echo", "1", nil, []byte(in))
				if err != nil || string(out) != in {
					errs <- fmt.Errorf("echo %s: %q, %v", in, out, err)
					return
				}
				out, err = h.Call(context.Background(), "fraud-features", "1", nil, []byte(in))
				if err != nil {
					errs <- err
					return
				}
				var m map[string]any
				if err := json.Unmarshal(out, &m); err != nil || m["g"] != float64(g) || m["amount_zscore"] != float64(g)/10 {
					errs <- fmt.Errorf("fraud-features %s: %s, %v", in, out, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestUnloadWhileCallsInFlight(t *testing.T) {
	feats := &mapFeatures{
		m:       map[string]string{"acct-42": `{"amount_mean_24h":100,"amount_std_24h":10}`},
		block:   make(chan struct{}),
		entered: make(chan struct{}, 8),
	}
	h := newHost(t, Options{PoolSize: 2, Features: feats, Limits: Limits{Timeout: 10 * time.Second}})
	load(t, h, "fraud-features", Limits{})

	type result struct {
		out []byte
		err error
	}
	results := make(chan result, 2)
	for range 2 {
		go func() {
			out, err := h.Call(context.Background(), "fraud-features", "1", nil, []byte(txn))
			results <- result{out, err}
		}()
	}
	<-feats.entered
	<-feats.entered // both calls are inside the guest, in the features import

	if err := h.Unload("fraud-features", "1"); err != nil {
		t.Fatal(err)
	}
	if h.Loaded("fraud-features", "1") {
		t.Error("Loaded after Unload")
	}
	_, err := h.Call(context.Background(), "fraud-features", "1", nil, []byte(txn))
	wantErr(t, err, weirerr.NotFound, "fraud-features@1")

	close(feats.block)
	for range 2 {
		r := <-results
		if r.err != nil {
			t.Fatalf("in-flight call failed after Unload: %v", r.err)
		}
		if m := decode(t, r.out); m["amount_zscore"] != 2.0 {
			t.Errorf("in-flight call returned %s", r.out)
		}
	}
	// The last returned instance releases the compiled module.
	testpoll.For(t, 5*time.Second, "the compiled module released after Unload", func() error {
		h.compileMu.Lock()
		defer h.compileMu.Unlock()
		if n := len(h.modules); n != 0 {
			return fmt.Errorf("%d compiled module(s) still held", n)
		}
		return nil
	})
}

func TestOverloadWhenAllInstancesBusy(t *testing.T) {
	feats := &mapFeatures{m: map[string]string{}, block: make(chan struct{}), entered: make(chan struct{}, 1)}
	h := newHost(t, Options{PoolSize: 1, Features: feats, Limits: Limits{Timeout: 10 * time.Second}})
	load(t, h, "fraud-features", Limits{})
	done := make(chan error, 1)
	go func() {
		_, err := h.Call(context.Background(), "fraud-features", "1", nil, []byte(txn))
		done <- err
	}()
	<-feats.entered
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := h.Call(ctx, "fraud-features", "1", nil, []byte(txn))
	wantErr(t, err, weirerr.Overloaded, `plugin "fraud-features@1": all 1 instances`)
	close(feats.block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Waiting for a busy pool is not the plugin's time: a call that waited
// longer than its plugin deadline for the only instance still runs with the
// whole deadline once it gets it.
func TestInstanceWaitDoesNotCountAgainstTheDeadline(t *testing.T) {
	feats := &mapFeatures{m: map[string]string{}, block: make(chan struct{}), entered: make(chan struct{}, 2)}
	h := newHost(t, Options{PoolSize: 1, Features: feats, Limits: Limits{Timeout: 10 * time.Second}})
	load(t, h, "fraud-features", Limits{})
	first := make(chan error, 1)
	go func() {
		_, err := h.Call(context.Background(), "fraud-features", "1", nil, []byte(txn))
		first <- err
	}()
	<-feats.entered // the only instance is busy until block is closed
	second := make(chan error, 1)
	go func() {
		_, err := h.AppendCall(context.Background(), nil, "fraud-features", "1", nil, []byte(txn), Limits{Timeout: 100 * time.Millisecond})
		second <- err
	}()
	time.Sleep(300 * time.Millisecond) // the second call waits three times its own deadline
	close(feats.block)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatalf("a call that waited for the pool lost its deadline to the wait: %v", err)
	}
}

func TestValidateRejectsBadUploads(t *testing.T) {
	h := newHost(t, Options{PoolSize: 1})
	ctx := context.Background()
	random := make([]byte, 512)
	rand.New(rand.NewSource(1)).Read(random)
	for _, tc := range []struct {
		name  string
		wasm  []byte
		parts []string
	}{
		{"random bytes", random, []string{"not a WebAssembly module"}},
		{"empty", nil, []string{"not a WebAssembly module"}},
		{"truncated", append([]byte("\x00asm\x01\x00\x00\x00"), 1, 2, 3), []string{"not a valid WebAssembly module"}},
		{"missing exports", wasmFile(t, "noexports"), []string{
			"missing export weir_abi_version", "missing export weir_alloc",
			"export weir_call has type func(i32) -> i32, want func(i32, i32) -> i32", "missing export memory"}},
		{"foreign imports", wasmFile(t, "foreign"), []string{
			"imports the host does not offer", `env.open_socket (unknown module "env")`,
			"weir.read_file (not a function the host offers)", "weir.log with type func(i64)"}},
		{"wrong ABI version", wasmFile(t, "abi2"), []string{"weir_abi_version returned 2", "ABI version 1"}},
		{"reserved export", wasmFile(t, "reserved"), []string{`exports "weir_interrupt", a name the host reserves`}},
		{"_initialize loops", wasmFile(t, "initloop"), []string{"does not start", "_initialize did not return within"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, h.Validate(ctx, tc.wasm), weirerr.Invalid, tc.parts...)
			wantErr(t, h.Load(ctx, "bad", "1", tc.wasm, Limits{}), weirerr.Invalid, tc.parts...)
		})
	}
	for _, good := range []string{"wat-echo", "fraud-features", "decision", "c-normalize"} {
		if err := h.Validate(ctx, wasmFile(t, good)); err != nil {
			t.Errorf("Validate(%s): %v", good, err)
		}
	}
	if h.Loaded("bad", "1") || len(h.modules) != 0 {
		t.Errorf("validation kept something: %d modules", len(h.modules))
	}
}

func TestSameBytesCompileOnce(t *testing.T) {
	h := newHost(t, Options{PoolSize: 1})
	ctx := context.Background()
	echo := wasmFile(t, "wat-echo")
	for _, name := range []string{"a", "b", "a"} {
		if err := h.Load(ctx, name, "1", echo, Limits{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := h.compiles.Load(); n != 1 {
		t.Errorf("compiled %d times, want 1", n)
	}
	err := h.Load(ctx, "a", "1", wasmFile(t, "trap"), Limits{})
	wantErr(t, err, weirerr.Conflict, "a@1 is already loaded with different bytes")
	// Unloading one name keeps the module the other still uses.
	if err := h.Unload("a", "1"); err != nil {
		t.Fatal(err)
	}
	if out, err := h.Call(ctx, "b", "1", nil, []byte(`{"x":1}`)); err != nil || string(out) != `{"x":1}` {
		t.Fatalf("b after unloading a: %q, %v", out, err)
	}
}

func TestCompilationCacheOnDisk(t *testing.T) {
	dir := t.TempDir()
	h1, err := NewHost(context.Background(), Options{PoolSize: 1, CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := h1.Load(context.Background(), "c-normalize", "1", wasmFile(t, "c-normalize"), Limits{}); err != nil {
		t.Fatal(err)
	}
	if err := h1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("cache dir %s is empty (%v)", dir, err)
	}
	// A new host on the same directory loads and serves from the cache.
	h2 := newHost(t, Options{PoolSize: 1, CacheDir: dir})
	load(t, h2, "c-normalize", Limits{})
	if _, err := h2.Call(context.Background(), "c-normalize", "1", nil, []byte(`{"A":"B"}`)); err != nil {
		t.Fatal(err)
	}
}

func TestCloseIsIdempotentAndRefusesLoads(t *testing.T) {
	h, err := NewHost(context.Background(), Options{PoolSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	load(t, h, "wat-echo", Limits{})
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	err = h.Load(context.Background(), "wat-echo", "2", wasmFile(t, "wat-echo"), Limits{})
	if !errors.Is(err, err) || weirerr.KindOf(err) != weirerr.Unavailable {
		t.Errorf("Load after Close: %v, want Unavailable", err)
	}
}

func TestGoRuntimeBehaviours(t *testing.T) {
	var logs testpoll.Buffer
	h := newHost(t, Options{PoolSize: 1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	load(t, h, "goplugin", Limits{})
	ctx := context.Background()
	call := func(do string) ([]byte, error) {
		return h.Call(ctx, "goplugin", "1", nil, []byte(`{"do":"`+do+`","x":[1,{"y":null}]}`))
	}

	out, err := call("echo")
	if err != nil || string(out) != `{"do":"echo","x":[1,{"y":null}]}` {
		t.Fatalf("echo: %s, %v", out, err)
	}

	// The SDK recovers a panic and reports it through set_error.
	_, err = call("panic")
	wantErr(t, err, weirerr.Upstream, `plugin "goplugin@1": failed (status 1): panic: the plugin panicked on purpose [at main.handle (main.go:`)

	// The Go runtime's stdout, stderr and the log import reach the log.
	for _, do := range []string{"print", "log"} {
		if _, err := call(do); err != nil {
			t.Fatalf("%s: %v", do, err)
		}
	}
	text := logs.String()
	for _, want := range []string{
		`level=INFO msg="printed by a Go plugin" plugin=goplugin@1 source=stdout`,
		`level=WARN msg="complained by a Go plugin" plugin=goplugin@1 source=stderr`,
		`level=WARN msg="logged by a Go plugin" plugin=goplugin@1 source=log`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("log lacks %s:\n%s", want, text)
		}
	}

	out, err = call("sleep")
	if err != nil {
		t.Fatal(err)
	}
	if slept := decode(t, out)["slept_ns"].(float64); slept < float64(2*time.Millisecond) {
		t.Errorf("time.Sleep(2ms) in the guest took %v", time.Duration(slept))
	}

	_, err = h.CallWithLimits(ctx, "goplugin", "1", nil, []byte(`{"do":"hoard"}`), Limits{MemoryPages: 128})
	wantErr(t, err, weirerr.Upstream, `plugin "goplugin@1": memory limit of 128 pages (8 MiB) exceeded`)

	_, err = call("fail")
	wantErr(t, err, weirerr.Upstream, "failed (status 1): asked to fail")
}

// TestRecoveredPanicKeepsTheInstance: a panicking Go handler fails its
// call with the panic's text and keeps its instance, so concurrent panics
// do not drain the pool into 429s.
func TestRecoveredPanicKeepsTheInstance(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newHost(t, Options{PoolSize: 2, Registerer: reg})
	load(t, h, "goplugin", Limits{})
	const calls, workers = 100, 8
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	next := make(chan struct{}, calls)
	for range calls {
		next <- struct{}{}
	}
	close(next)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				_, err := h.Call(context.Background(), "goplugin", "1", nil, []byte(`{"do":"convert"}`))
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		wantErr(t, err, weirerr.Upstream, "panic: interface conversion: interface {} is nil, not string", "main.handle (main.go:")
	}
	if n := testutil.ToFloat64(h.metrics.failures.WithLabelValues("goplugin", "1", "guest_error")); n != calls {
		t.Errorf("%v calls failed as guest errors, want %d", n, calls)
	}
	if n := testutil.ToFloat64(h.metrics.failures.WithLabelValues("goplugin", "1", "trap")); n != 0 {
		t.Errorf("%v calls trapped (instance thrown away), want 0", n)
	}
}

func TestRecursionEnds(t *testing.T) {
	h := newHost(t, Options{PoolSize: 1})
	load(t, h, "recurse", Limits{})
	_, err := h.Call(context.Background(), "recurse", "1", nil, []byte(`{}`))
	wantErr(t, err, weirerr.Upstream, `plugin "recurse@1"`)
	if !strings.Contains(err.Error(), "stack overflow") && !strings.Contains(err.Error(), "deadline") {
		t.Errorf("error %q names neither a stack overflow nor the deadline", err)
	}
}

// TestIdleRunsBetweenCalls: a plugin exporting weir_idle gets it called
// after every idleEvery-th call, before its instance serves the next one;
// one that traps there is replaced without failing any request; a wrong
// type is refused at load.
func TestIdleRunsBetweenCalls(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newHost(t, Options{PoolSize: 1, Registerer: reg})
	load(t, h, "idle", Limits{})
	for i := range 3 * idleEvery {
		out, err := h.Call(context.Background(), "idle", "1", nil, []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf(`{"idle":%d}`, i/idleEvery); string(out) != want {
			t.Fatalf("call %d answered %s, want %s (weir_idle after every %d calls)", i, out, want, idleEvery)
		}
	}
	before := instanceSeq.Load()
	for i := range idleEvery {
		in := []byte(`{}`)
		if i == idleEvery-1 {
			in = []byte(`t`) // the weir_idle after this call traps
		}
		if _, err := h.Call(context.Background(), "idle", "1", nil, in); err != nil {
			t.Fatalf("a call before a trapping weir_idle: %v", err)
		}
	}
	// The next call gets a fresh instance (its count starts again).
	testpoll.For(t, 30*time.Second, "a fresh instance after weir_idle trapped", func() error {
		out, err := h.Call(context.Background(), "idle", "1", nil, []byte(`{}`))
		if err != nil {
			return err
		}
		if string(out) != `{"idle":0}` && string(out) != `{"idle":1}` {
			return fmt.Errorf("answered %s from the instance whose weir_idle trapped", out)
		}
		return nil
	})
	if n := instanceSeq.Load() - before; n < 1 {
		t.Errorf("%d instances created after weir_idle trapped, want 1", n)
	}
	if got := testutil.ToFloat64(h.metrics.failures.WithLabelValues("idle", "1", "idle")); got != 1 {
		t.Errorf("weir_plugin_failures_total{kind=idle} = %v, want 1", got)
	}

	err := h.Load(context.Background(), "badidle", "1", wasmFile(t, "badidle"), Limits{})
	wantErr(t, err, weirerr.Invalid, "export weir_idle has type func(i32) -> i32, want func()")
}

// TestIdleLeavesAnInstanceFree: instances take turns in the pool, so under
// steady one-at-a-time traffic they all reach their idleEvery-th call
// together; if each then ran weir_idle, the next request would wait for one
// of them (the Go SDK's collection, here a half-second sleep). An instance
// runs weir_idle only while another is free to serve, and sequential calls
// never wait.
func TestIdleLeavesAnInstanceFree(t *testing.T) {
	h := newHost(t, Options{PoolSize: 2})
	load(t, h, "sleepidle", Limits{})
	var slow []string
	for i := range 6 * idleEvery {
		start := time.Now()
		if _, err := h.Call(context.Background(), "sleepidle", "1", nil, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 250*time.Millisecond {
			slow = append(slow, fmt.Sprintf("call %d took %v", i, d.Round(time.Millisecond)))
		}
	}
	if len(slow) > 0 {
		t.Errorf("%d calls waited for an instance running weir_idle (it sleeps 500ms): %s", len(slow), strings.Join(slow, "; "))
	}
}

// TestPoolGrowsWithConcurrency: a loaded version starts one instance, not
// a pool of them (a Go plugin's is megabytes, and a version no route calls
// needs none warm); concurrent calls that find none free grow it, up to
// PoolSize, and then run at once.
func TestPoolGrowsWithConcurrency(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newHost(t, Options{PoolSize: 4, Registerer: reg})
	load(t, h, "nap", Limits{})
	load(t, h, "wat-echo", Limits{})
	instances := func(name string) float64 {
		return testutil.ToFloat64(h.metrics.instances.WithLabelValues(name, "1"))
	}
	if n, m := instances("nap"), instances("wat-echo"); n != 1 || m != 1 {
		t.Fatalf("after load: %v and %v instances, want 1 each (weir_plugin_instances)", n, m)
	}
	concurrently := func() {
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if _, err := h.Call(context.Background(), "nap", "1", nil, []byte(`{}`)); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	testpoll.For(t, 30*time.Second, "the pool grown to 4 by 4 concurrent calls", func() error {
		concurrently()
		if n := instances("nap"); n != 4 {
			return fmt.Errorf("%v instances", n)
		}
		return nil
	})
	if n := instances("wat-echo"); n != 1 {
		t.Errorf("a version nobody called has %v instances, want 1", n)
	}
	h.Unload("nap", "1")
	testpoll.For(t, 30*time.Second, "nap's instances gone after unload", func() error {
		if n := testutil.CollectAndCount(h.metrics.instances, "weir_plugin_instances"); n != 1 {
			return fmt.Errorf("%d series of weir_plugin_instances, want wat-echo's alone", n)
		}
		return nil
	})
}

// TestGoPluginCollectsBetweenCalls: a Go plugin allocating 32 KiB a call
// for 3000 calls needs tens of collections; with weir_idle they all happen
// between calls, none while a handler runs. One instance, so that its
// weir_idle always runs when due (in a larger pool an instance may defer it
// while the others are busy or idling: TestIdleLeavesAnInstanceFree).
func TestGoPluginCollectsBetweenCalls(t *testing.T) {
	h := newHost(t, Options{PoolSize: 1})
	load(t, h, "goplugin", Limits{})
	for range 3000 {
		if _, err := h.Call(context.Background(), "goplugin", "1", nil, []byte(`{"do":"garbage"}`)); err != nil {
			t.Fatal(err)
		}
	}
	out, err := h.Call(context.Background(), "goplugin", "1", nil, []byte(`{"do":"collections"}`))
	if err != nil {
		t.Fatal(err)
	}
	m := decode(t, out)
	inCalls, total := m["in_calls"].(float64), m["total"].(float64)
	t.Logf("collections: %v, %v of them inside calls", total, inCalls)
	if total < 10 {
		t.Errorf("%v collections for 96 MiB of garbage: the test no longer makes the plugin collect", total)
	}
	if inCalls != 0 {
		t.Errorf("%v of %v collections completed inside calls, want 0 (weir_idle collects between calls)", inCalls, total)
	}
}

// waitingFeatures is a FeatureReader that waits for its context to end.
type waitingFeatures struct{ err chan error }

func (f *waitingFeatures) ReadFeatures(ctx context.Context, entity string) ([]byte, bool, error) {
	<-ctx.Done()
	f.err <- ctx.Err()
	return nil, false, ctx.Err()
}

// A features read that waits ends with the call, at its deadline.
func TestFeatureReadEndsWithTheCall(t *testing.T) {
	feats := &waitingFeatures{err: make(chan error, 1)}
	h := newHost(t, Options{Features: feats})
	load(t, h, "fraud-features", Limits{Timeout: 50 * time.Millisecond})
	done := make(chan error, 1)
	go func() {
		_, err := h.Call(context.Background(), "fraud-features", "1", nil, []byte(txn))
		done <- err
	}()
	select {
	case err := <-feats.err:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("the read's context ended with %v, want DeadlineExceeded", err)
		}
	case <-time.After(testpoll.MinWait):
		t.Fatal("a features read waiting on its context outlived a 50ms call")
	}
	// The guest then ran on without features or was stopped at its
	// deadline, depending on which came first: either way the call ends.
	select {
	case <-done:
	case <-time.After(testpoll.MinWait):
		t.Fatal("the call did not return after its features read ended")
	}
}
