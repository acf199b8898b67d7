package plugins

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weirhq/weir/internal/testpoll"
	"github.com/weirhq/weir/internal/weirerr"
)

// The example plugins run through the local runner (what `weir plugin run`
// does), one per language: WAT, C and Go.
func TestRunOnceRunsTheExamples(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		plugin string
		o      RunOptions
		want   map[string]any
	}{
		{"wat-echo", RunOptions{Input: []byte(txn), Limits: Limits{Timeout: 2 * time.Second}}, map[string]any{"account_id": "acct-42", "amount": 120.0}},
		{"c-normalize", RunOptions{Input: []byte(`{"merchant":"  GiftCards ","amount":5000}`), Config: []byte(`{"min":0,"max":1000}`), Limits: Limits{Timeout: 2 * time.Second}},
			map[string]any{"merchant": "giftcards", "amount": 1000.0}},
		{"fraud-features", RunOptions{
			Input:    []byte(`{"account_id":"a1","amount":900,"merchant":"giftcards","ts":"2026-11-25T03:00:00Z"}`),
			Config:   []byte(`{"merchant_risk":{"giftcards":0.9}}`),
			Features: map[string][]byte{"a1": []byte(`{"amount_mean_24h":50,"amount_std_24h":25}`)},
			Limits:   Limits{Timeout: 2 * time.Second},
		}, map[string]any{"merchant_risk": 0.9, "amount_zscore": 10.0, "is_night": 1.0}},
		{"decision", RunOptions{Input: []byte(`{"outputs":{"score":0.93}}`), Config: []byte(`{"review":0.5,"block":0.8}`), Limits: Limits{Timeout: 2 * time.Second}},
			map[string]any{"decision": "block", "score": 0.93}},
	}
	for _, c := range cases {
		t.Run(c.plugin, func(t *testing.T) {
			res, err := RunOnce(ctx, wasmFile(t, c.plugin), cached(c.o))
			if err != nil {
				t.Fatalf("RunOnce: %v (logs %v)", err, res.Logs)
			}
			var got map[string]any
			if err := json.Unmarshal(res.Output, &got); err != nil {
				t.Fatalf("output %s: %v", res.Output, err)
			}
			for k, v := range c.want {
				if got[k] != v {
					t.Errorf("output[%q] = %v, want %v (output %s)", k, got[k], v, res.Output)
				}
			}
			if res.Duration <= 0 || res.Limits.Timeout == 0 || res.Limits.MemoryPages != DefaultMemoryPages {
				t.Errorf("duration %v, limits %+v", res.Duration, res.Limits)
			}
		})
	}
}

func TestRunOnceReportsFailuresAndLogs(t *testing.T) {
	ctx := context.Background()
	long := Limits{Timeout: 2 * time.Second}

	// Logs are captured, in order, with their source.
	res, err := RunOnce(ctx, wasmFile(t, "goplugin"), cached(RunOptions{Input: []byte(`{"do":"print"}`), Limits: long}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range res.Logs {
		got = append(got, l.Level.String()+" "+l.Source+" "+l.Message)
	}
	if want := "INFO stdout printed by a Go plugin|WARN stderr complained by a Go plugin"; strings.Join(got, "|") != want {
		t.Errorf("logs %q, want %q", got, want)
	}

	for _, c := range []struct {
		name, plugin string
		o            RunOptions
		kind         weirerr.Kind
		want         string
	}{
		{"guest error", "guesterr", RunOptions{Input: []byte(`{}`), Limits: long}, weirerr.Upstream, `plugin "plugin@local": failed (status 7): amount is missing`},
		{"panic", "goplugin", RunOptions{Name: "g", Version: "2", Input: []byte(`{"do":"convert"}`), Limits: long}, weirerr.Upstream, `plugin "g@2": failed (status 1): panic: interface conversion`},
		{"deadline", "loop", RunOptions{Input: []byte(`{"longer":"than ten bytes"}`), Limits: Limits{Timeout: 50 * time.Millisecond}}, weirerr.Upstream, "deadline of 50ms exceeded"},
		{"memory", "goplugin", RunOptions{Input: []byte(`{"do":"hoard"}`), Limits: Limits{Timeout: 5 * time.Second, MemoryPages: 128}}, weirerr.Upstream, "memory limit of 128 pages (8 MiB) exceeded"},
		{"not a plugin", "noexports", RunOptions{Input: []byte(`{}`)}, weirerr.Invalid, "missing export weir_alloc"},
		{"input not an object", "wat-echo", RunOptions{Input: []byte(`[1]`)}, weirerr.Invalid, "input is not a JSON object"},
		{"bad config", "wat-echo", RunOptions{Input: []byte(`{}`), Config: []byte(`x`)}, weirerr.Invalid, "config is not a JSON object"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := RunOnce(ctx, wasmFile(t, c.plugin), cached(c.o))
			wantErr(t, err, c.kind, c.want)
		})
	}
}

// cached shares the tests' compilation cache, so each module compiles once.
func cached(o RunOptions) RunOptions {
	o.CacheDir = cacheDir
	return o
}

func TestLogCaptureKeepsHostWarnings(t *testing.T) {
	c := &logCapture{}
	l := slog.New(c)
	l.Info("plugin loaded", "plugin", "p@1")
	l.Warn("plugin log lines dropped by the rate limit", "plugin", "p@1", "dropped", 3)
	l.Debug("hello", "plugin", "p@1", "source", "log")
	lines := c.lines()
	if len(lines) != 2 || lines[0].Source != "host" || lines[0].Message != "plugin log lines dropped by the rate limit (dropped=3)" || lines[1].Message != "hello" {
		t.Errorf("captured %+v", lines)
	}
}

// Loading the same bytes with other limits applies them (a re-push that
// changes a version's limits); with the same limits it is a no-op.
func TestLoadWithNewLimitsReplacesThePool(t *testing.T) {
	h := newHost(t, Options{PoolSize: 1})
	ctx := context.Background()
	wasm := wasmFile(t, "loop")
	long := []byte(`{"longer":"than ten bytes"}`)
	for _, d := range []time.Duration{40 * time.Millisecond, 40 * time.Millisecond, 90 * time.Millisecond} {
		if err := h.Load(ctx, "loop", "1", wasm, Limits{Timeout: d}); err != nil {
			t.Fatal(err)
		}
		_, err := h.Call(ctx, "loop", "1", nil, long)
		wantErr(t, err, weirerr.Upstream, "deadline of "+d.String()+" exceeded")
	}
	if err := h.Load(ctx, "loop", "1", wasmFile(t, "wat-echo"), Limits{}); weirerr.KindOf(err) != weirerr.Conflict {
		t.Errorf("other bytes under a loaded version: %v, want a conflict", err)
	}
}

func TestMetricImportExportsBoundedSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newHost(t, Options{PoolSize: 1, Registerer: reg})
	load(t, h, "metric", Limits{})
	for range 3 {
		if _, err := h.Call(context.Background(), "metric", "1", nil, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	const want = `
# HELP weir_plugin_metric_dropped_total Metric import calls refused: a bad name, more than 16 names per plugin version, a bad kind or value.
# TYPE weir_plugin_metric_dropped_total counter
weir_plugin_metric_dropped_total{plugin="metric",version="1"} 3
# HELP weir_plugin_metric_total Counts a plugin reports through the metric import (kind 0), by plugin, version and name.
# TYPE weir_plugin_metric_total counter
weir_plugin_metric_total{name="calls",plugin="metric",version="1"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "weir_plugin_metric_total", "weir_plugin_metric_dropped_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(h.metrics.guestValue, "weir_plugin_metric_value"); n != 1 {
		t.Errorf("%d observed series, want 1", n)
	}
	// The names are bounded per plugin version.
	g := h.metrics.forPlugin("many", "1").guest
	for i := range maxGuestMetrics + 4 {
		g.record(metricCount, []byte("n"+string(rune('a'+i))), 1)
	}
	if got := testutil.ToFloat64(g.dropped); got != 4 {
		t.Errorf("%v names over the bound dropped, want 4", got)
	}
	// Unloading drops the plugin's series.
	if err := h.Unload("metric", "1"); err != nil {
		t.Fatal(err)
	}
	testpoll.For(t, 10*time.Second, "the unloaded plugin's series to go", func() error {
		if n := testutil.CollectAndCount(h.metrics.guestCount, "weir_plugin_metric_total"); n != maxGuestMetrics {
			return fmt.Errorf("%d weir_plugin_metric_total series, want %d (the kept plugin's)", n, maxGuestMetrics)
		}
		return nil
	})
}
