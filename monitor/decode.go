package monitor

import (
	"encoding/json"
	"strconv"

	"github.com/weirhq/weir/internal/jsonx"
)

// decodeEvent decodes one event's JSON into ev, with json.Unmarshal's result
// and errors. Every consumer decodes every event, and encoding/json's
// reflection was most of that cost, so the form appendEventJSON writes (the
// contract's keys, each once, values of their own types) is read by hand.
// Anything else (another spelling of a key, which encoding/json matches
// without regard to case, an unknown or repeated key, a null, a value of
// another type, a syntax error) goes to json.Unmarshal, so what is accepted
// and how a refusal reads never depend on the fast path.
func decodeEvent(raw []byte, ev *Event) error {
	if decodeEventFast(raw, ev) {
		return nil
	}
	*ev = Event{}
	return json.Unmarshal(raw, ev)
}

// The event's keys, as appendEventJSON writes them.
const (
	keyID = iota
	keyTS
	keyRoute
	keyVariant
	keyModel
	keyVersion
	keyFeatures
	keyOutputs
	keyLatency
	keyStatus
	keyError
	keyShadow
	keyPinned
	keyTruncated
)

func eventField(k []byte) int {
	switch string(k) {
	case "id":
		return keyID
	case "ts":
		return keyTS
	case "route":
		return keyRoute
	case "variant":
		return keyVariant
	case "model":
		return keyModel
	case "version":
		return keyVersion
	case "features":
		return keyFeatures
	case "outputs":
		return keyOutputs
	case "latency_us":
		return keyLatency
	case "status":
		return keyStatus
	case "error":
		return keyError
	case "shadow":
		return keyShadow
	case "pinned":
		return keyPinned
	case "truncated":
		return keyTruncated
	}
	return -1
}

// decodeEventFast decodes raw into ev if it is in the form appendEventJSON
// writes; false leaves ev partly written.
func decodeEventFast(raw []byte, ev *Event) bool {
	s := jsonx.Scanner{B: raw}
	s.WS()
	if s.EOF() || s.B[s.I] != '{' {
		return false
	}
	s.I++
	var seen uint32
	for first := true; ; first = false {
		key, more, err := s.NextKey(first)
		if err != nil {
			return false
		}
		if !more {
			break
		}
		k := eventField(key)
		if k < 0 || seen&(1<<k) != 0 {
			return false
		}
		seen |= 1 << k
		var ok bool
		switch k {
		case keyID:
			ok = eventString(&s, &ev.ID)
		case keyRoute:
			ok = eventString(&s, &ev.Route)
		case keyVariant:
			ok = eventString(&s, &ev.Variant)
		case keyModel:
			ok = eventString(&s, &ev.Model)
		case keyVersion:
			ok = eventString(&s, &ev.Version)
		case keyError:
			ok = eventString(&s, &ev.Error)
		case keyTS:
			// time.Time's UnmarshalJSON parses the bytes between the quotes
			// as they are, escapes and all.
			start := s.I
			ok = s.B[s.I] == '"'
			if ok {
				_, err := s.Str()
				ok = err == nil && ev.TS.UnmarshalText(s.B[start+1:s.I-1]) == nil
			}
		case keyFeatures:
			ok = eventObject(&s, &ev.Features)
		case keyOutputs:
			ok = eventObject(&s, &ev.Outputs)
		case keyLatency:
			ok = eventInt(&s, &ev.LatencyUS)
		case keyStatus:
			var n int64
			ok = eventInt(&s, &n)
			ev.Status = int(n)
		case keyShadow:
			ok = eventBool(&s, &ev.Shadow)
		case keyPinned:
			ok = eventBool(&s, &ev.Pinned)
		case keyTruncated:
			ok = eventBool(&s, &ev.Truncated)
		}
		if !ok {
			return false
		}
	}
	s.WS()
	return s.EOF()
}

func eventString(s *jsonx.Scanner, dst *string) bool {
	if s.B[s.I] != '"' {
		return false
	}
	v, err := s.StrAsString()
	*dst = v
	return err == nil
}

func eventObject(s *jsonx.Scanner, dst *map[string]any) bool {
	if s.B[s.I] != '{' {
		return false
	}
	v, err := s.Value(1) // a member of the event
	*dst, _ = v.(map[string]any)
	return err == nil
}

func eventInt(s *jsonx.Scanner, dst *int64) bool {
	c := s.B[s.I]
	if c != '-' && !jsonx.IsDigit(c) {
		return false
	}
	tok, err := s.Number()
	if err != nil {
		return false
	}
	n, err := strconv.ParseInt(string(tok), 10, 64)
	*dst = n
	return err == nil
}

func eventBool(s *jsonx.Scanner, dst *bool) bool {
	switch s.B[s.I] {
	case 't':
		*dst = true
		return s.Literal("true") == nil
	case 'f':
		*dst = false
		return s.Literal("false") == nil
	}
	return false
}
