package monitor

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// appendEventJSON appends ev as JSON, byte for byte what json.Marshal
// writes (same fields and order, sorted map keys, the same number and
// string forms, HTML-safe escapes), without reflection: the event encoding
// was the publisher's largest cost. Values of types it does not know are
// encoded by json.Marshal. An error (a NaN, a time out of range) means the
// caller should fall back to json.Marshal, which reports it.
func appendEventJSON(b []byte, ev *Event) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, ev.ID)
	b = append(b, `,"ts":`...)
	if y := ev.TS.Year(); y < 0 || y > 9999 {
		return b, errors.New("event time out of range")
	}
	b = append(b, '"')
	b = ev.TS.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","route":`...)
	b = appendJSONString(b, ev.Route)
	b = append(b, `,"variant":`...)
	b = appendJSONString(b, ev.Variant)
	b = append(b, `,"model":`...)
	b = appendJSONString(b, ev.Model)
	b = append(b, `,"version":`...)
	b = appendJSONString(b, ev.Version)
	b = append(b, `,"features":`...)
	var err error
	if b, err = appendJSONObject(b, ev.Features); err != nil {
		return b, err
	}
	b = append(b, `,"outputs":`...)
	if b, err = appendJSONObject(b, ev.Outputs); err != nil {
		return b, err
	}
	b = append(b, `,"latency_us":`...)
	b = strconv.AppendInt(b, ev.LatencyUS, 10)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(ev.Status), 10)
	if ev.Error != "" {
		b = append(b, `,"error":`...)
		b = appendJSONString(b, ev.Error)
	}
	if ev.Shadow {
		b = append(b, `,"shadow":true`...)
	}
	if ev.Pinned {
		b = append(b, `,"pinned":true`...)
	}
	if ev.Truncated {
		b = append(b, `,"truncated":true`...)
	}
	return append(b, '}'), nil
}

// appendJSONObject writes m with its keys sorted, as json.Marshal does.
func appendJSONObject(b []byte, m map[string]any) ([]byte, error) {
	if m == nil {
		return append(b, "null"...), nil
	}
	var stack [16]string
	keys := stack[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	var err error
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		if b, err = appendJSONValue(b, m[k]); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

func appendJSONValue(b []byte, v any) ([]byte, error) {
	var err error
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendJSONString(b, x), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case float64:
		return appendJSONFloat(b, x, 64)
	case float32:
		return appendJSONFloat(b, float64(x), 32)
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case int32:
		return strconv.AppendInt(b, int64(x), 10), nil
	case map[string]any:
		return appendJSONObject(b, x)
	case []any:
		if x == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendJSONValue(b, e); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	case []float32:
		return appendJSONFloats(b, x, 32)
	case []float64:
		return appendJSONFloats(b, x, 64)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, data...), nil
}

func appendJSONFloats[F float32 | float64](b []byte, xs []F, bits int) ([]byte, error) {
	if xs == nil {
		return append(b, "null"...), nil
	}
	b = append(b, '[')
	var err error
	for i, f := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = appendJSONFloat(b, float64(f), bits); err != nil {
			return b, err
		}
	}
	return append(b, ']'), nil
}

// appendJSONFloat is encoding/json's float encoder.
func appendJSONFloat(b []byte, f float64, bits int) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, errors.New("unsupported float value")
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// jsonPlainASCII marks the ASCII bytes json.Marshal writes as they are (HTML
// escaping on: <, > and & are escaped).
var jsonPlainASCII = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendJSONString is encoding/json's string encoder with HTML escaping.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if jsonPlainASCII[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
