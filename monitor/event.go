package monitor

import (
	"github.com/nats-io/nats.go"

	"github.com/weirhq/weir/monitor/event"
)

// The event contract lives in the leaf package monitor/event; these names
// keep the monitor's callers reading as before.
const (
	StreamEvents         = event.StreamEvents
	SubjectEventsPrefix  = event.SubjectEventsPrefix
	SubjectDriftPrefix   = event.SubjectDriftPrefix
	SubjectRolloutPrefix = event.SubjectRolloutPrefix
)

// Event is one inference, as published on weir.events.<route>.
type Event = event.Event

// Frame format names (monitor/event/frame.go), for the monitor's callers.
const (
	HeaderFrame = event.HeaderFrame
)

// EachEvent calls fn with each event's JSON in a message read from
// WEIR_EVENTS: every event of a frame, or the one event of a message written
// before frames. See event.Each for errors.
func EachEvent(h nats.Header, body []byte, fn func(i int, ev []byte) error) error {
	return event.Each(h.Get(event.HeaderFrame), body, fn)
}
