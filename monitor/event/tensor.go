package event

// WideElements is the widest row an event carries value by value: an input
// or output with more elements per row (all but its first dimension; the
// whole of a rank-0 or rank-1 tensor) is wide (an image, an audio clip) and
// carried as a TensorSummary instead, under its name, as {"summary": {...}}.
// A batch of many narrow rows stays tabular. Declared features (a model's
// feature list) are always carried by value.
const WideElements = 1024

// SummaryKey is the key under a tensor's name that holds its summary:
// features: {"pixel_values": {"summary": {...}}}.
const SummaryKey = "summary"

// MaxSummaryChannels is the most channels a summary gives statistics for
// one by one (RGBA): see TensorSummary.Channels.
const MaxSummaryChannels = 4

// TensorSummary stands in an event for a tensor wider than WideElements.
type TensorSummary struct {
	Shape    []int64 `json:"shape"`
	Datatype string  `json:"datatype"`
	// Bytes is the tensor's size in the raw layout of the OIP binary
	// extension (BYTES: each element's 4-byte length and its bytes).
	Bytes int `json:"bytes"`
	// Hash is "xxh64:" and the 16 hex digits of the XXH64 hash (seed 0) of
	// the elements' little-endian bytes (FP16 after its conversion to FP32,
	// BOOL one byte, BYTES as in Bytes): equal tensors have equal hashes.
	Hash string `json:"hash"`
	// Stats are over the finite values of a numeric or BOOL tensor (BOOL as
	// 0 and 1); absent for BYTES or when no value is finite.
	*Stats
	// NonFinite counts the NaN and infinite values left out of Stats.
	NonFinite int `json:"non_finite,omitempty"`
	// Channels are Stats per channel, for a rank-4 tensor whose layout names
	// at most MaxSummaryChannels channels: NCHW when dimension 1 is 1 to 4,
	// else NHWC when the last dimension is 1 to 4. Absent otherwise, or when
	// a channel has no finite value.
	Channels []Stats `json:"channels,omitempty"`
}

// Stats summarise a tensor's values (std is the population standard
// deviation).
type Stats struct {
	Mean float64 `json:"mean"`
	Std  float64 `json:"std"`
	Min  float64 `json:"min"`
	Max  float64 `json:"max"`
}

// SummaryStats names the statistics of Stats as they appear in JSON, in the
// order monitoring series are made of them ("<tensor>.mean", and
// "<tensor>.c<i>.mean" for channel i).
var SummaryStats = [...]string{"mean", "std", "min", "max"}

// SummarySeries calls fn with each monitoring series of a decoded event
// value that is a tensor summary ({"summary": {...}}): "<name>.<stat>" for
// the whole tensor, then "<name>.c<i>.<stat>" per channel. It reports
// whether v was a summary. Drift and live statistics track these series in
// place of the tensor's values.
func SummarySeries(name string, v any, fn func(series string, value float64)) bool {
	obj, ok := v.(map[string]any)
	if !ok {
		return false
	}
	sum, ok := obj[SummaryKey].(map[string]any)
	if !ok {
		return false
	}
	statSeries(name+".", sum, fn)
	chans, _ := sum["channels"].([]any)
	for i, c := range chans {
		if i >= MaxSummaryChannels {
			break
		}
		if cm, ok := c.(map[string]any); ok {
			statSeries(name+".c"+string(rune('0'+i))+".", cm, fn)
		}
	}
	return true
}

func statSeries(prefix string, m map[string]any, fn func(string, float64)) {
	for _, s := range SummaryStats {
		if f, ok := m[s].(float64); ok {
			fn(prefix+s, f)
		}
	}
}
