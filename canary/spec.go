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
// are not checked, except max_drift: the canary's answers are judged
// against the stable's by default (DefaultMaxDrift), and max_drift "off"
// turns that off. A threshold of 0 is checked (max_error_rate 0: no error
// allowed).
type Spec struct {
	Variant      string   `json:"variant"`  // the canary variant's name; default "canary"
	Model        string   `json:"model"`    // the canary's model
	Version      string   `json:"version"`  // and version
	Steps        []int    `json:"steps"`    // canary weights; default [5,25,50,100]
	Interval     Duration `json:"interval"` // analysis interval per step; default 30s
	MaxErrorRate *float64 `json:"max_error_rate,omitempty"`
	MaxP99Ms     *float64 `json:"max_p99_ms,omitempty"`
	// MaxDrift bounds how far the canary's answers may lie from the stable
	// variant's over the same period (PSI, per numeric output; default
	// DefaultMaxDrift) and, when given, the drift monitor's figure judged
	// relative to the stable version (DriftMode). "off": neither is judged.
	MaxDrift *DriftLimit `json:"max_drift,omitempty"`
	// DriftMode says what the drift monitor's figures are for: "relative"
	// (the default, also when empty): shown, the canary's drift against the
	// stable version's, and not judged (the answers gate judges the canary
	// against the stable over one period); "absolute": the canary's own
	// largest drift, inputs included, is judged against max_drift too.
	// docs/rationale.md, "Canaries are judged against stable".
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

// DriftLimit is max_drift: a number >= 0, or "off" (Off) to judge no drift.
type DriftLimit struct {
	Off   bool
	Value float64
}

// Limit is a max_drift of v (tests and callers building a Spec).
func Limit(v float64) *DriftLimit { return &DriftLimit{Value: v} }

// MarshalJSON writes the number, or "off".
func (l DriftLimit) MarshalJSON() ([]byte, error) {
	if l.Off {
		return []byte(`"off"`), nil
	}
	return json.Marshal(l.Value)
}

// UnmarshalJSON reads a number or "off"; errors are weirerr Invalid.
func (l *DriftLimit) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		if s != "off" {
			return weirerr.Invalidf("rollout field max_drift is %q: expected a number >= 0, or \"off\" to judge no drift", s)
		}
		*l = DriftLimit{Off: true}
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return weirerr.Invalidf("rollout field max_drift is %s: expected a number >= 0, or \"off\" to judge no drift", b)
	}
	*l = DriftLimit{Value: v}
	return nil
}

// DefaultMaxDrift is the max_drift of a rollout that gives none: a PSI of
// 0.25 between the canary's and the stable's answers is the usual mark of
// a significant shift (0.1-0.25 moderate), and at MinAnswers answers each
// the noise of the figure is well below it.
const DefaultMaxDrift = 0.25

// MinAnswers is how many answers of each variant (since the rollout
// started) the answers gate needs before it judges.
const MinAnswers = 100

// answerLimit is the max_drift the answers gate applies; on is false for
// "off".
func (s Spec) answerLimit() (limit float64, on bool) {
	switch {
	case s.MaxDrift == nil:
		return DefaultMaxDrift, true
	case s.MaxDrift.Off:
		return 0, false
	}
	return s.MaxDrift.Value, true
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
	var maxDrift *float64
	if s.MaxDrift != nil && !s.MaxDrift.Off {
		maxDrift = &s.MaxDrift.Value
	}
	for _, t := range []struct {
		name string
		v    *float64
	}{{"max_error_rate", s.MaxErrorRate}, {"max_p99_ms", s.MaxP99Ms}, {"max_drift", maxDrift}} {
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
