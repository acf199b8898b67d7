package canary

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/router"
)

// Spec is the body of POST /v1/routes/{route}/rollout. Thresholds left out
// are not checked; a threshold of 0 is checked (max_error_rate 0: no error
// allowed).
type Spec struct {
	Variant      string   `json:"variant"`  // the canary variant's name; default "canary"
	Model        string   `json:"model"`    // the canary's model
	Version      string   `json:"version"`  // and version
	Steps        []int    `json:"steps"`    // canary weights; default [5,25,50,100]
	Interval     Duration `json:"interval"` // analysis interval per step; default 30s
	MaxErrorRate *float64 `json:"max_error_rate,omitempty"`
	MaxP99Ms     *float64 `json:"max_p99_ms,omitempty"`
	MaxDrift     *float64 `json:"max_drift,omitempty"`
	// DriftMode is what max_drift is compared with: "relative" (the
	// default, also when empty): per feature and output, the canary's drift
	// minus the stable version's, so that a shift in the inputs both see is
	// not held against the canary; "absolute": the canary's own largest
	// drift. docs/rationale.md, "Canaries are judged against stable".
	DriftMode string `json:"drift_mode,omitempty"`
	// MinRequests the canary must serve in a step before it is judged; at
	// least 1 is always required, so zero traffic waits instead of passing.
	MinRequests int64 `json:"min_requests"`
}

// Duration is a time.Duration written in JSON as a Go duration string ("30s").
type Duration time.Duration

// MarshalJSON writes the duration as a string ("30s").
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string; errors are weirerr Invalid.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return weirerr.Invalidf("rollout field interval is %s: expected a duration string such as \"30s\"", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return weirerr.Invalidf("rollout field interval is %q: expected a duration such as \"30s\" or \"500ms\"", s)
	}
	*d = Duration(v)
	return nil
}

// Drift modes of Spec.DriftMode.
const (
	DriftRelative = "relative"
	DriftAbsolute = "absolute"
)

// Defaults filled in by ParseSpec and Start.
var (
	DefaultSteps    = []int{5, 25, 50, 100}
	DefaultInterval = 30 * time.Second
)

// MinInterval is the shortest analysis interval accepted.
const MinInterval = 10 * time.Millisecond

// ParseSpec decodes a rollout body strictly (unknown fields are errors),
// fills defaults and validates it. Errors are weirerr Invalid (400).
func ParseSpec(raw []byte) (Spec, error) {
	var s Spec
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		var we *weirerr.Error
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &we):
			return Spec{}, we
		case errors.As(err, &te):
			return Spec{}, weirerr.Invalidf("rollout field %s: got JSON %s, expected %s", te.Field, te.Value, te.Type)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return Spec{}, weirerr.Invalidf("rollout has unknown field %s: expected variant, model, version, steps, interval, max_error_rate, max_p99_ms, max_drift, drift_mode, min_requests", strings.TrimPrefix(err.Error(), "json: unknown field "))
		case errors.Is(err, io.EOF):
			return Spec{}, weirerr.Invalidf("rollout body is empty: expected a JSON object with model, version and steps")
		}
		return Spec{}, weirerr.Invalidf("rollout body is not valid JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Spec{}, weirerr.Invalidf("rollout body has data after the JSON object: expected exactly one object")
	}
	s = s.withDefaults()
	return s, s.Validate()
}

func (s Spec) withDefaults() Spec {
	if s.Variant == "" {
		s.Variant = "canary"
	}
	if s.Steps == nil {
		s.Steps = DefaultSteps
	}
	s.Steps = append([]int(nil), s.Steps...)
	if s.Interval == 0 {
		s.Interval = Duration(DefaultInterval)
	}
	return s
}

// Validate checks a spec with defaults filled in.
func (s Spec) Validate() error {
	if !router.ValidName(s.Variant) {
		return weirerr.Invalidf("rollout field variant is %q: expected a variant name (1-64 characters of A-Z a-z 0-9 . _ -)", s.Variant)
	}
	if !router.ValidName(s.Model) {
		return weirerr.Invalidf("rollout field model is %q: expected the canary's model name", s.Model)
	}
	if s.Version != "" && !router.ValidName(s.Version) {
		return weirerr.Invalidf("rollout field version is %q: expected a version name", s.Version)
	}
	if len(s.Steps) == 0 {
		return weirerr.Invalidf("rollout field steps is empty: expected increasing weights ending at 100, e.g. [5,25,50,100]")
	}
	for i, w := range s.Steps {
		if w < 1 || w > 100 {
			return weirerr.Invalidf("rollout field steps[%d] is %d: expected a weight from 1 to 100", i, w)
		}
		if i > 0 && w <= s.Steps[i-1] {
			return weirerr.Invalidf("rollout field steps[%d] is %d after %d: expected strictly increasing weights", i, w, s.Steps[i-1])
		}
	}
	if last := s.Steps[len(s.Steps)-1]; last != 100 {
		return weirerr.Invalidf("rollout field steps ends at %d: expected the last step to be 100", last)
	}
	if d := time.Duration(s.Interval); d < MinInterval {
		return weirerr.Invalidf("rollout field interval is %v: expected at least %v", d, MinInterval)
	}
	for _, t := range []struct {
		name string
		v    *float64
	}{{"max_error_rate", s.MaxErrorRate}, {"max_p99_ms", s.MaxP99Ms}, {"max_drift", s.MaxDrift}} {
		if t.v != nil && !(*t.v >= 0) { // also rejects NaN
			return weirerr.Invalidf("rollout field %s is %v: expected a number >= 0", t.name, *t.v)
		}
	}
	if s.MaxErrorRate != nil && *s.MaxErrorRate > 1 {
		return weirerr.Invalidf("rollout field max_error_rate is %v: expected a fraction from 0 to 1 (0.01 = 1%%)", *s.MaxErrorRate)
	}
	if s.DriftMode != "" && s.DriftMode != DriftRelative && s.DriftMode != DriftAbsolute {
		return weirerr.Invalidf("rollout field drift_mode is %q: expected \"relative\" (the default) or \"absolute\"", s.DriftMode)
	}
	if s.MinRequests < 0 {
		return weirerr.Invalidf("rollout field min_requests is %d: expected a count >= 0", s.MinRequests)
	}
	return nil
}

func (s Spec) target() string {
	if s.Version == "" {
		return s.Model
	}
	return fmt.Sprintf("%s@%s", s.Model, s.Version)
}
