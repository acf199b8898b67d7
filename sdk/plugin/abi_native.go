//go:build !wasip1

package plugin

import (
	"errors"
	"fmt"
	"time"
)

// Outside Wasm the host is simulated, so that plugin logic can be unit
// tested natively with Invoke.

var (
	simConfig   []byte
	simFeatures map[string][]byte
	simStart    = time.Now()
)

// Invoke runs the registered handler natively on input as the host would,
// with config as the route's config for the plugin (nil for none) and
// features as the online feature store (entity -> JSON object). It applies
// the host's rules to the result: the output must be one complete JSON
// object, and a panic in the handler is returned as an error starting
// "panic: ", as the host would report it. It is only available in native
// builds.
func Invoke(input, config []byte, features map[string][]byte) ([]byte, error) {
	simConfig, simFeatures = config, features
	out, err := invoke(input)
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, errors.New("plugin returned no output")
	}
	if _, err := DecodeObject(out); err != nil {
		return nil, fmt.Errorf("plugin output is not a JSON object (the host refuses it): %w; output starts %q", err, prefix(out, 40))
	}
	return append([]byte(nil), out...), nil
}

func prefix(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

func hostLog(level Level, msg string) {
	println("plugin log", int32(level), msg)
}

func hostConfig(buf []byte) int32 {
	if len(simConfig) <= len(buf) {
		copy(buf, simConfig)
	}
	return int32(len(simConfig))
}

func hostFeatures(entity string, buf []byte) int32 {
	f, ok := simFeatures[entity]
	if !ok {
		return -1
	}
	if len(f) <= len(buf) {
		copy(buf, f)
	}
	return int32(len(f))
}

func hostNow() int64 { return int64(time.Since(simStart)) }

// MetricCall is one Count (Kind 0) or Observe (Kind 1) call seen natively.
type MetricCall struct {
	Kind  int32
	Name  string
	Value float64
}

var simMetrics []MetricCall

// RecordedMetrics returns the Count and Observe calls made natively since
// the last RecordedMetrics, for unit tests. Native builds only.
func RecordedMetrics() []MetricCall {
	m := simMetrics
	simMetrics = nil
	return m
}

func hostMetric(kind int32, name string, v float64) {
	simMetrics = append(simMetrics, MetricCall{kind, name, v})
}
