package plugin

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
)

// ABIVersion is the version of the weir plugin ABI this SDK implements.
const ABIVersion = 1

// Event is a JSON object as the host sends it: values are map[string]any,
// []any, string, float64, bool or nil.
type Event = map[string]any

// Level is a log level for Log.
type Level int32

// Log levels, as numbered by the ABI.
const (
	LevelDebug Level = 0
	LevelInfo  Level = 1
	LevelWarn  Level = 2
	LevelError Level = 3
)

var (
	eventHandler func(Event) (Event, error)
	bytesHandler func([]byte) ([]byte, error)

	outBuf []byte // reused output buffer: the host copies it at set_output

	cfgBuf    []byte // scratch for reading the config from the host
	cfgLast   []byte // the config bytes cfgParsed was parsed from
	cfgParsed Event  // reused while the host sends the same config bytes
	cfgValid  bool   // cfgParsed matches the config of the current call
	featBuf   []byte
)

// Handle registers the plugin's function over a decoded JSON object. The
// returned Event is encoded as the plugin's output; returning an error fails
// the request with the error's message. Call it from init.
func Handle(h func(Event) (Event, error)) { eventHandler = h }

// HandleBytes registers a function over raw JSON bytes, for plugins that
// want to do their own parsing. The returned bytes must be a JSON object.
func HandleBytes(h func(in []byte) ([]byte, error)) { bytesHandler = h }

// invoke runs the registered handler on one input and returns the output or
// an error message. A panic in the handler is recovered and returned as an
// error ("panic: VALUE [at FRAMES]"), so the host reports it through
// set_error and keeps the instance: the Go runtime is sound after a
// recovered panic, and a trap would make the host throw the instance away.
func invoke(in []byte) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, panicError(r)
		}
	}()
	cfgValid = false
	if bytesHandler != nil {
		return bytesHandler(in)
	}
	if eventHandler == nil {
		return nil, errors.New("plugin registered no handler: call plugin.Handle in init")
	}
	ev, err := DecodeObject(in)
	if err != nil {
		return nil, err
	}
	res, err := eventHandler(ev)
	if err != nil {
		return nil, err
	}
	if res == nil {
		res = Event{}
	}
	outBuf, err = AppendJSON(outBuf[:0], res)
	return outBuf, err
}

// heapSamples are what idle reads: the heap's objects now, what was live
// after the last collection, and where the runtime will collect next.
var heapSamples = []metrics.Sample{
	{Name: "/memory/classes/heap/objects:bytes"},
	{Name: "/gc/heap/live:bytes"},
	{Name: "/gc/heap/goal:bytes"},
}

// idle runs when the host calls weir_idle, after a call has answered and
// off the request path. Go's runtime collects garbage when the heap nears
// its goal, which would otherwise happen inside some later call and add
// milliseconds to that request; collecting here, once the heap is half way
// from its live size to the goal, keeps collections out of calls unless
// one call alone allocates half the way.
func idle() {
	metrics.Read(heapSamples)
	objects, live, goal := heapSamples[0].Value.Uint64(), heapSamples[1].Value.Uint64(), heapSamples[2].Value.Uint64()
	if goal > live && objects >= live+(goal-live)/2 {
		runtime.GC()
	}
}

// panicFrames is how many stack frames a recovered panic's message names.
const panicFrames = 4

// panicError describes a recovered panic: its value and the first frames
// of the code that panicked (the runtime's and this package's own frames
// left out), e.g.
//
//	panic: interface conversion: interface {} is nil, not string [at main.enrich (main.go:21) <- main.helper (main.go:40)]
//
// Called from invoke's deferred function, the panicking frames are still on
// the stack.
func panicError(r any) error {
	msg := "panic: " + fmt.Sprint(r)
	pcs := make([]uintptr, 32)
	n := runtime.Callers(3, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	var at []string
	for len(at) < panicFrames {
		f, more := frames.Next()
		if f.Function != "" && !strings.HasPrefix(f.Function, "runtime.") && !sdkFrame(f) {
			file := f.File
			if i := strings.LastIndexByte(file, '/'); i >= 0 {
				file = file[i+1:]
			}
			at = append(at, f.Function+" ("+file+":"+strconv.Itoa(f.Line)+")")
		}
		if !more {
			break
		}
	}
	if len(at) > 0 {
		msg += " [at " + strings.Join(at, " <- ") + "]"
	}
	return errors.New(msg)
}

// sdkFrame reports a frame of this package's own code (not its tests),
// which a panic's message leaves out.
func sdkFrame(f runtime.Frame) bool {
	return strings.HasPrefix(f.Function, "github.com/weirhq/weir/sdk/plugin.") && !strings.HasSuffix(f.File, "_test.go")
}

// ConfigBytes returns the raw JSON config the route gives this plugin, or
// nil when it gives none. The slice is valid until the next call.
func ConfigBytes() []byte {
	n := hostConfig(cfgBuf[:cap(cfgBuf)])
	if int(n) > cap(cfgBuf) {
		cfgBuf = make([]byte, n)
		n = hostConfig(cfgBuf)
	}
	if n <= 0 {
		return nil
	}
	return cfgBuf[:n]
}

// Config returns the route's config for this plugin as an Event (empty when
// none). It is parsed once and reused while the config does not change, so
// treat it as read-only.
func Config() Event {
	if cfgValid {
		return cfgParsed
	}
	raw := ConfigBytes()
	if cfgParsed == nil || !bytes.Equal(raw, cfgLast) {
		cfgLast = append(cfgLast[:0], raw...)
		cfgParsed = Event{}
		if len(raw) > 0 {
			if m, err := DecodeObject(raw); err == nil {
				cfgParsed = m
			} else {
				Log(LevelWarn, "config is not a JSON object: "+err.Error())
			}
		}
	}
	cfgValid = true
	return cfgParsed
}

// Features returns the online features stored for entity. found is false
// when the entity has none; err is set when the feature store failed.
func Features(entity string) (features Event, found bool, err error) {
	n := hostFeatures(entity, featBuf[:cap(featBuf)])
	if int(n) > cap(featBuf) {
		featBuf = make([]byte, n)
		n = hostFeatures(entity, featBuf)
	}
	switch {
	case n == -1:
		return nil, false, nil
	case n < 0:
		return nil, false, errors.New("feature store unavailable (status " + strconv.Itoa(int(n)) + ")")
	}
	m, err := DecodeObject(featBuf[:n])
	if err != nil {
		return nil, false, errors.New("features of " + strconv.Quote(entity) + ": " + err.Error())
	}
	return m, true, nil
}

// Log writes msg to the gateway log under the plugin's name.
func Log(level Level, msg string) { hostLog(level, msg) }

// Count adds v (at least 0) to the counter name, which the gateway exports
// as weir_plugin_metric_total{plugin,version,name}. Names are a lower-case
// letter then up to 39 of a-z 0-9 _; a plugin version may use 16 names
// (Count and Observe together); other calls are dropped and counted in
// weir_plugin_metric_dropped_total.
func Count(name string, v float64) { hostMetric(0, name, v) }

// Observe records v in the histogram name, exported as
// weir_plugin_metric_value{plugin,version,name} (buckets 0.001 to ~4200,
// x4 apart). Names are bounded as for Count.
func Observe(name string, v float64) { hostMetric(1, name, v) }

// Now returns the host's monotonic clock in nanoseconds.
func Now() int64 { return hostNow() }

// Number returns v as a float64 when it is a JSON number or a string holding
// one.
func Number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	}
	return 0, false
}
