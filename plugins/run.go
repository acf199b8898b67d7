package plugins

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/weirhq/weir/internal/weirerr"
)

// RunOptions describe one local plugin call (RunOnce).
type RunOptions struct {
	// Name and Version are how errors and logs name the plugin. Defaults
	// "plugin" and "local".
	Name, Version string
	// Input is the event, a JSON object.
	Input []byte
	// Config is the route's config for the plugin, a JSON object or nil.
	Config []byte
	// Features is the online feature store the features import reads:
	// entity -> JSON object.
	Features map[string][]byte
	// Limits are the plugin's limits; zero fields take the gateway's
	// defaults (DefaultMemoryPages, DefaultTimeout).
	Limits Limits
	// CacheDir, when set, keeps compiled modules between runs (as the
	// gateway's Options.CacheDir does), so running a large module again
	// does not compile it again.
	CacheDir string
}

// RunResult is what a local call did.
type RunResult struct {
	// Output is the plugin's output, a JSON object, when the call succeeded.
	Output []byte
	// Logs are the plugin's log lines (log import, stdout, stderr), in order.
	Logs []LogLine
	// Duration is the call's time as the gateway measures it: borrowing a
	// warm instance, copying the input in, weir_call and copying the output
	// out. Loading (compiling, starting instances) is not included.
	Duration time.Duration
	// Limits are the limits the call ran under.
	Limits Limits
}

// LogLine is one line a plugin logged.
type LogLine struct {
	Level   slog.Level
	Source  string // "log", "stdout", "stderr" or "features"
	Message string
}

// RunOnce runs one call of the plugin wasm locally, in a host configured as
// the gateway's (same ABI checks, limits, deadline, memory cap, sandbox and
// log capture) but with no gateway, model or NATS: it is `weir plugin run`.
// The error is the one the gateway would answer with (weirerr kinds); the
// result's logs and duration are filled in either way.
func RunOnce(ctx context.Context, wasm []byte, o RunOptions) (RunResult, error) {
	if o.Name == "" {
		o.Name = "plugin"
	}
	if o.Version == "" {
		o.Version = "local"
	}
	if err := checkObject("input", o.Input); err != nil {
		return RunResult{}, err
	}
	if o.Config != nil {
		if err := checkObject("config", o.Config); err != nil {
			return RunResult{}, err
		}
	}
	for entity, f := range o.Features {
		if err := checkObject(fmt.Sprintf("features of %q", entity), f); err != nil {
			return RunResult{}, err
		}
	}
	logs := &logCapture{}
	h, err := NewHost(ctx, Options{
		PoolSize: 1,
		CacheDir: o.CacheDir,
		Features: mapReader(o.Features),
		Logger:   slog.New(logs),
		// A local run shows every line: no rate limit worth the name.
		LogLinesPerSecond: 1 << 20,
		LogBurst:          1 << 20,
	})
	if err != nil {
		return RunResult{}, err
	}
	defer h.Close(context.Background())
	res := RunResult{Limits: o.Limits.withDefaults(h.opts.Limits)}
	if err := h.Load(ctx, o.Name, o.Version, wasm, o.Limits); err != nil {
		res.Logs = logs.lines()
		return res, err
	}
	start := time.Now()
	res.Output, err = h.Call(ctx, o.Name, o.Version, o.Config, o.Input)
	res.Duration = time.Since(start)
	res.Logs = logs.lines()
	return res, err
}

func checkObject(what string, b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		if err == nil {
			err = fmt.Errorf("got null")
		}
		return weirerr.Invalidf("%s is not a JSON object: %w", what, err)
	}
	return nil
}

// mapReader is a FeatureReader over a map.
type mapReader map[string][]byte

func (m mapReader) ReadFeatures(_ context.Context, entity string) ([]byte, bool, error) {
	f, ok := m[entity]
	return f, ok, nil
}

// logCapture is a slog.Handler keeping the guest's lines (records with a
// "source" attribute); host events are dropped.
type logCapture struct {
	mu  sync.Mutex
	out []LogLine
}

func (c *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCapture) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *logCapture) WithGroup(string) slog.Handler            { return c }

func (c *logCapture) Handle(_ context.Context, r slog.Record) error {
	var source string
	var extra []string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "source":
			source = a.Value.String()
		case "plugin":
		default:
			extra = append(extra, a.Key+"="+a.Value.String())
		}
		return true
	})
	msg := r.Message
	if source == "" { // a host event about the plugin (dropped lines, say)
		source = "host"
		if len(extra) > 0 {
			msg += " (" + strings.Join(extra, ", ") + ")"
		}
		if r.Level < slog.LevelWarn {
			return nil
		}
	}
	c.mu.Lock()
	c.out = append(c.out, LogLine{Level: r.Level, Source: source, Message: msg})
	c.mu.Unlock()
	return nil
}

func (c *logCapture) lines() []LogLine {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]LogLine(nil), c.out...)
}

// WriteLogs writes log lines as `weir plugin run` prints them.
func WriteLogs(w io.Writer, lines []LogLine) {
	for _, l := range lines {
		fmt.Fprintf(w, "%-5s %-8s %s\n", l.Level, l.Source, l.Message)
	}
}
