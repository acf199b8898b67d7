// Package monitor owns what happens to an inference after it is answered: the
// durable Publisher that sends events to JetStream stream WEIR_EVENTS with an
// on-disk spool for outages, the live per-route Stats the gateway and canary
// analysis read, and the Parquet Archiver with its Export reader. The event
// shape and the subject names (the external contract) live in the leaf
// package monitor/event; Event and the name constants here are aliases.
// The Publisher's send path is publisher_send.go, its spool use (spilling,
// replay) publisher_spool.go, its stream setup publisher_stream.go.
//
// Design notes (why, not what):
//
//   - Publish never blocks a request: it is a non-blocking channel send. A
//     full queue spills to the spool only when the spool lock is free at once
//     (TryLock), otherwise the event is dropped and counted.
//   - At-least-once across a crash: events unacknowledged for SpillAfter
//     (250ms) are written to the spool, so a crash loses only that window
//     and the in-memory queue (weir_events_at_risk); docs/rationale.md.
//   - Strict durability (PublishDurable with DurabilityStrict, for audit):
//     the caller waits until its event is appended to the spool and
//     fsynced, one fsync for all events that arrived meanwhile (group
//     commit, durable.go); the replayer sends them to JetStream from there.
//   - Events travel in frames, one message per route per send batch
//     (FrameLinger, FrameMaxBytes, FrameMaxEvents). Exactly-once into the
//     stream relies on JetStream de-duplication by Nats-Msg-Id (the frame's
//     own ID; a frame's bytes never change once built) inside the stream's
//     duplicate window (PublisherOptions.DedupWindow). A frame whose ack was
//     lost is spooled and re-sent; if the re-send happens inside the window
//     it is not stored twice. Outages longer than the window may duplicate
//     the few frames that were in flight when NATS went away.
//   - The spool is append-only segment files of framed records (length and
//     CRC-32C; torn writes are cut off, damage skipped and counted). Writes
//     go to the OS at once (they survive a process
//     crash); fsync happens on segment rotation, once a second while dirty,
//     and on Close, so a machine crash can lose up to about a second of
//     spooled events.
//   - Stats buckets by event TS (not arrival), so replays and injected
//     timestamps land where they belong. Each process reads the whole stream
//     through its own ordered (ephemeral) consumer starting one hour back.
//   - A message on WEIR_EVENTS is a frame of many events of one route
//     (header Weir-Frame, monitor/event/frame.go) or, as written before
//     frames, one JSON event; every reader takes both. Stats, drift and the
//     Archiver keep their own consumers (their deliveries differ) but share
//     one decode of each frame through Decoded.
//   - The Archiver acks a message only after the Parquet files holding all
//     of its events have been put in place. Files are named by the lowest
//     and highest stream sequence they hold and store each row's sequence
//     (the sequence of the frame that carried it), so on restart the events
//     (sequence, ID) above the consumer's ack floor that already sit in a
//     file are skipped instead of written twice. A file is closed only
//     between messages, so one frame's events of one partition share a file.
//
// monitor imports nothing from weir except internal/weirerr,
// internal/lifecycle, internal/jsonx, internal/retry and its leaf package
// monitor/event; the gateway and drift packages import monitor, never the
// other way round.
package monitor
