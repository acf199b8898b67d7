package monitor

import "github.com/weirhq/weir/monitor/event"

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
