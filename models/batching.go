package models

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/weirhq/weir/internal/weirerr"
)

// Batching is a model version's dynamic batching setting, as Triton's
// dynamic batcher has it: concurrent requests whose inputs agree in all but
// the first (batch) dimension are queued, concatenated along that axis, run
// once and split back. The zero value is off. docs/rationale.md says how
// batches are chosen.
type Batching struct {
	// MaxBatchSize is the most rows (first-dimension entries) one batched
	// run holds; 0 turns batching off. A request with at least this many
	// rows runs alone.
	MaxBatchSize int
	// MaxQueueDelay is how long the oldest queued request waits for others
	// to join before its batch runs, whatever its size. 0 runs a batch as
	// soon as a runner is free (batches then form only while runners are
	// busy).
	MaxQueueDelay time.Duration
	// PreferredBatchSizes, when set, are the batch sizes to aim for: a batch
	// of the largest runs at once; after MaxQueueDelay the largest preferred
	// size that is queued runs (or, if none is, what is queued).
	PreferredBatchSizes []int
}

// Limits on a Batching setting: past them it is refused.
const (
	MaxBatchRows      = 1 << 16
	MaxQueueDelayMax  = time.Second
	maxPreferredSizes = 32
)

// Enabled reports whether batching is on.
func (b Batching) Enabled() bool { return b.MaxBatchSize > 0 }

// Validate checks a setting's numbers (not the model: see
// Session.CheckBatchable) and sorts its preferred sizes.
func (b *Batching) Validate() error {
	if b.MaxBatchSize < 0 || b.MaxBatchSize == 1 {
		return weirerr.Invalidf("max_batch_size %d: use 0 to turn batching off, or at least 2", b.MaxBatchSize)
	}
	if b.MaxBatchSize > MaxBatchRows {
		return weirerr.Invalidf("max_batch_size %d is past the limit of %d rows", b.MaxBatchSize, MaxBatchRows)
	}
	if b.MaxQueueDelay < 0 || b.MaxQueueDelay > MaxQueueDelayMax {
		return weirerr.Invalidf("max_queue_delay %s must be between 0 and %s", b.MaxQueueDelay, MaxQueueDelayMax)
	}
	if !b.Enabled() {
		if b.MaxQueueDelay != 0 || len(b.PreferredBatchSizes) > 0 {
			return weirerr.Invalidf("max_queue_delay and preferred_batch_sizes need max_batch_size (at least 2); max_batch_size 0 turns batching off")
		}
		return nil
	}
	if len(b.PreferredBatchSizes) > maxPreferredSizes {
		return weirerr.Invalidf("%d preferred_batch_sizes given, the limit is %d", len(b.PreferredBatchSizes), maxPreferredSizes)
	}
	for _, p := range b.PreferredBatchSizes {
		if p < 1 || p > b.MaxBatchSize {
			return weirerr.Invalidf("preferred batch size %d must be between 1 and max_batch_size %d", p, b.MaxBatchSize)
		}
	}
	slices.Sort(b.PreferredBatchSizes)
	b.PreferredBatchSizes = slices.Compact(b.PreferredBatchSizes)
	return nil
}

// String is the setting as the API shows it, for logs.
func (b Batching) String() string {
	if !b.Enabled() {
		return "off"
	}
	s := fmt.Sprintf("max_batch_size=%d max_queue_delay=%s", b.MaxBatchSize, delayString(b.MaxQueueDelay))
	if len(b.PreferredBatchSizes) > 0 {
		s += " preferred_batch_sizes=" + joinInts(b.PreferredBatchSizes)
	}
	return s
}

type batchingJSON struct {
	MaxBatchSize        int    `json:"max_batch_size"`
	MaxQueueDelay       string `json:"max_queue_delay"`
	PreferredBatchSizes []int  `json:"preferred_batch_sizes,omitempty"`
}

// MarshalJSON writes {"max_batch_size": 32, "max_queue_delay": "500us",
// "preferred_batch_sizes": [8, 16]}.
func (b Batching) MarshalJSON() ([]byte, error) {
	return json.Marshal(batchingJSON{MaxBatchSize: b.MaxBatchSize, MaxQueueDelay: delayString(b.MaxQueueDelay), PreferredBatchSizes: b.PreferredBatchSizes})
}

// delayString is a duration as ParseQueueDelay reads it, in ASCII ("500us",
// not Go's "500µs").
func delayString(d time.Duration) string { return strings.ReplaceAll(d.String(), "µs", "us") }

// UnmarshalJSON reads what MarshalJSON writes; the delay is a Go duration
// ("500us", "2ms"). Unknown fields are refused, so a misspelt one is not
// silently ignored. It does not Validate.
func (b *Batching) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var j batchingJSON
	if err := dec.Decode(&j); err != nil {
		return weirerr.Invalidf("batching setting: %w (expected {\"max_batch_size\": 32, \"max_queue_delay\": \"500us\", \"preferred_batch_sizes\": [8, 16]})", err)
	}
	if dec.More() {
		return weirerr.Invalidf("batching setting: more than one JSON value")
	}
	out := Batching{MaxBatchSize: j.MaxBatchSize, PreferredBatchSizes: j.PreferredBatchSizes}
	if j.MaxQueueDelay != "" {
		d, err := ParseQueueDelay(j.MaxQueueDelay)
		if err != nil {
			return err
		}
		out.MaxQueueDelay = d
	}
	*b = out
	return nil
}

// ParseQueueDelay reads a max_queue_delay: a Go duration such as "500us"
// or "2ms" ("0" is allowed).
func ParseQueueDelay(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, weirerr.Invalidf("max_queue_delay %q is not a duration like \"500us\" or \"2ms\"", s)
	}
	return d, nil
}

// ParseBatchSizes reads a comma-separated list of batch sizes ("8,16,32").
func ParseBatchSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, weirerr.Invalidf("preferred batch size %q is not a whole number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func joinInts(ns []int) string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ",")
}

// CheckBatchable reports whether requests to the model can be batched:
// every input and output has a dynamic first dimension (the batch axis).
// The error names the first tensor that has none, with its shape.
func (s *Session) CheckBatchable() error {
	for _, in := range s.inputs {
		if len(in.Shape) == 0 || in.Shape[0] >= 0 {
			return weirerr.Invalidf("the model cannot be batched: input %q has shape %v, whose first dimension is not a batch axis (-1, dynamic)", in.Name, in.Shape)
		}
	}
	for _, out := range s.outputs {
		if len(out.Shape) == 0 || out.Shape[0] >= 0 {
			return weirerr.Invalidf("the model cannot be batched: output %q has shape %v, whose first dimension is not a batch axis (-1, dynamic)", out.Name, out.Shape)
		}
	}
	return nil
}
