package event

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A frame carries many events of one route in one NATS message (docs/api.md,
// "Events"). Its body is
//
//	'W' 'F' version(1 byte) count(uint32 BE) then count times: length(uint32 BE) event-JSON
//
// and the message carries the header HeaderFrame ("1"). The frame's ID is
// its Nats-Msg-Id, so JetStream stores a re-sent frame once. A message
// without the header (and without the magic) is one event as JSON, as
// written by weir before frames: readers accept both.
const (
	// HeaderFrame marks a message whose body is a frame; its value is the
	// frame format version.
	HeaderFrame = "Weir-Frame"
	// FrameVersion is the frame format this weir writes and reads.
	FrameVersion = 1
	// FrameHeaderLen is the size of a frame's fixed header.
	FrameHeaderLen = 7
	frameMagic0    = 'W'
	frameMagic1    = 'F'
)

// FrameVersionValue is HeaderFrame's value for FrameVersion.
const FrameVersionValue = "1"

// ErrBadFrame wraps every error about a malformed frame.
var ErrBadFrame = errors.New("malformed event frame")

// NewFrame starts an empty frame in buf[:0] (reusing its memory).
func NewFrame(buf []byte) []byte {
	return append(buf[:0], frameMagic0, frameMagic1, FrameVersion, 0, 0, 0, 0)
}

// AppendEvent adds one encoded event to frame (started with NewFrame) and
// counts it in the frame's header.
func AppendEvent(frame, ev []byte) []byte {
	frame = binary.BigEndian.AppendUint32(frame, uint32(len(ev)))
	frame = append(frame, ev...)
	binary.BigEndian.PutUint32(frame[3:], binary.BigEndian.Uint32(frame[3:])+1)
	return frame
}

// EventOverhead is what AppendEvent adds to a frame on top of the event.
const EventOverhead = 4

// IsFrame says whether body starts like a frame (any version). JSON never
// starts with 'W', so a legacy event is never mistaken for one.
func IsFrame(body []byte) bool {
	return len(body) >= 2 && body[0] == frameMagic0 && body[1] == frameMagic1
}

// FrameCount is how many events a frame's header says it holds (1 for a
// legacy single event, 0 for a frame too short to have a header).
func FrameCount(body []byte) int {
	if !IsFrame(body) {
		return 1
	}
	if len(body) < FrameHeaderLen {
		return 0
	}
	return int(binary.BigEndian.Uint32(body[3:]))
}

// Each calls fn with each event's JSON in a message body, in order: every
// event of a frame, or the body itself when it is a single legacy event.
// header is the message's HeaderFrame value ("" when absent). The slices
// passed to fn alias body. A frame that does not hold together (wrong
// version, a length past its end, fewer or more events than its count)
// gives an error wrapping ErrBadFrame; the events before the damage have
// been passed to fn by then. fn's error stops the walk and is returned.
func Each(header string, body []byte, fn func(i int, ev []byte) error) error {
	if header == "" && !IsFrame(body) {
		return fn(0, body)
	}
	if header != "" && header != FrameVersionValue {
		return fmt.Errorf("%w: %s %q, this weir reads version %s", ErrBadFrame, HeaderFrame, header, FrameVersionValue)
	}
	if len(body) < FrameHeaderLen || !IsFrame(body) {
		return fmt.Errorf("%w: %d bytes do not start with a frame header", ErrBadFrame, len(body))
	}
	if body[2] != FrameVersion {
		return fmt.Errorf("%w: format version %d, this weir reads version %d", ErrBadFrame, body[2], FrameVersion)
	}
	count := binary.BigEndian.Uint32(body[3:])
	rest := body[FrameHeaderLen:]
	for i := 0; uint32(i) < count; i++ {
		if len(rest) < EventOverhead {
			return fmt.Errorf("%w: event %d of %d is missing (%d bytes left)", ErrBadFrame, i, count, len(rest))
		}
		n := binary.BigEndian.Uint32(rest)
		if uint64(n) > uint64(len(rest)-EventOverhead) {
			return fmt.Errorf("%w: event %d of %d claims %d bytes, %d are left", ErrBadFrame, i, count, n, len(rest)-EventOverhead)
		}
		if err := fn(i, rest[EventOverhead:EventOverhead+int(n)]); err != nil {
			return err
		}
		rest = rest[EventOverhead+int(n):]
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d bytes after the %d events it counts", ErrBadFrame, len(rest), count)
	}
	return nil
}
