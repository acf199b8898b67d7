package monitor

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/weirhq/weir/monitor/event"
)

// diskFull reports whether err is a full disk or an exhausted quota.
func diskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// errSpoolFull means the spool is at its byte bound; the record was not kept.
var errSpoolFull = errors.New("event spool is full")

// spoolRecord is one message waiting for NATS: its subject, message ID and
// payload, a frame of events (monitor/event/frame.go) or, in spools written
// before frames, one JSON event.
type spoolRecord struct {
	subject, id string
	data        []byte
}

// events is how many events the record carries.
func (r spoolRecord) events() int { return event.FrameCount(r.data) }

// eventsIn counts the events of recs.
func eventsIn(recs []spoolRecord) int {
	n := 0
	for _, r := range recs {
		n += r.events()
	}
	return n
}

// spoolPos is a position in the spool: a segment number and a byte offset.
type spoolPos struct {
	seg uint64
	off int64
}

type spoolSeg struct {
	num  uint64
	size int64
}

// spool is a bounded, append-only on-disk queue of events. Segments are files
// named <20-digit number>.seg holding framed records (see frame below; older
// segments of tab-separated lines "subject\tid\tjson\n" are still read). A
// cursor file remembers how far the head has been sent; it is a hint: if it
// is lost, segments are re-sent from their start and JetStream de-duplicates
// by ID. A process only ever appends to a segment it created.
//
// Damage is contained, never fatal (docs/rationale.md, "The spool survives
// torn writes"): a write that fails half-way (disk full) is cut off again at
// once, a torn tail left by a crash is truncated when the spool is opened,
// and a record whose length or checksum does not hold is skipped up to the
// next valid frame and counted (unreadable).
//
// fsync policy: see doc.go (rotation, once a second while dirty, Close).
type spool struct {
	dir      string
	maxBytes int64
	segBytes int64

	mu     sync.Mutex
	segs   []spoolSeg // oldest first; the last one is being written when w != nil
	total  int64      // bytes in all segment files
	unread int64      // bytes not yet committed as sent
	w      *os.File
	dirty  bool
	head   spoolPos // committed read position
	rbuf   *bufio.Reader
	wbuf   []byte
	closed bool

	// unreadable counts damaged stretches skipped by the reader (each held
	// at least one event); onUnreadable, when set, hears of each one.
	unreadable   int64
	lastDamage   spoolPos
	onUnreadable func()

	// diskFull is whether the last append failed on a full disk (or
	// quota), so that what drops events can say so.
	diskFull atomic.Bool
}

// A frame is one record on disk: a 2-byte magic, the payload's length and
// its CRC-32C (both big-endian uint32), then the payload
// "subject\tid\tjson". The magic lets a reader find the next record after a
// damaged one; the checksum tells a record from the bytes of a torn one.
const (
	frameMagic0, frameMagic1 = 0xF5, 0x57
	frameHeader              = 10
	// frameMaxPayload bounds a length read from disk, so damage cannot ask
	// for a huge buffer. NATS refuses larger messages anyway.
	frameMaxPayload = 64 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func frameSize(r spoolRecord) int64 {
	return int64(frameHeader + len(r.subject) + len(r.id) + len(r.data) + 2)
}

func appendFrame(buf []byte, r spoolRecord) []byte {
	start := len(buf)
	buf = append(buf, frameMagic0, frameMagic1, 0, 0, 0, 0, 0, 0, 0, 0)
	buf = append(buf, r.subject...)
	buf = append(buf, '\t')
	buf = append(buf, r.id...)
	buf = append(buf, '\t')
	buf = append(buf, r.data...)
	payload := buf[start+frameHeader:]
	binary.BigEndian.PutUint32(buf[start+2:], uint32(len(payload)))
	binary.BigEndian.PutUint32(buf[start+6:], crc32.Checksum(payload, crcTable))
	return buf
}

// parseFrame reads the frame at the start of b: the record and the frame's
// length, 0 when b holds no complete valid frame there.
func parseFrame(b []byte) (spoolRecord, int) {
	if len(b) < frameHeader || b[0] != frameMagic0 || b[1] != frameMagic1 {
		return spoolRecord{}, 0
	}
	n := binary.BigEndian.Uint32(b[2:])
	if n > frameMaxPayload || int(n) > len(b)-frameHeader {
		return spoolRecord{}, 0
	}
	payload := b[frameHeader : frameHeader+int(n)]
	if crc32.Checksum(payload, crcTable) != binary.BigEndian.Uint32(b[6:]) {
		return spoolRecord{}, 0
	}
	subj, rest, ok1 := bytes.Cut(payload, []byte{'\t'})
	id, data, ok2 := bytes.Cut(rest, []byte{'\t'})
	if !ok1 || !ok2 {
		return spoolRecord{}, 0
	}
	return spoolRecord{subject: string(subj), id: string(id), data: data}, frameHeader + int(n)
}

// validEnd is the offset just past the last valid frame of b that is
// followed only by damage (or nothing): what a torn tail is cut back to.
// b must start at a frame boundary.
func validEnd(b []byte) int {
	end, off := 0, 0
	for off < len(b) {
		if _, n := parseFrame(b[off:]); n > 0 {
			off += n
			end = off
			continue
		}
		off++ // damage: look for the next frame
	}
	return end
}

const spoolCursorFile = "cursor"

func openSpool(dir string, maxBytes, segBytes int64) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create event spool dir: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read event spool dir: %w", err)
	}
	s := &spool{dir: dir, maxBytes: maxBytes, segBytes: segBytes, rbuf: bufio.NewReaderSize(nil, 64<<10)}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".seg") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(name, ".seg"), 10, 64)
		if err != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("stat spool segment: %w", err)
		}
		s.segs = append(s.segs, spoolSeg{num: n, size: info.Size()})
		s.total += info.Size()
	}
	sort.Slice(s.segs, func(i, j int) bool { return s.segs[i].num < s.segs[j].num })
	if len(s.segs) > 0 {
		if err := s.truncateTornTail(&s.segs[len(s.segs)-1]); err != nil {
			return nil, err
		}
	}
	s.unread = s.total
	if len(s.segs) > 0 {
		s.head = spoolPos{seg: s.segs[0].num}
		if b, err := os.ReadFile(filepath.Join(dir, spoolCursorFile)); err == nil {
			var pos spoolPos
			if _, err := fmt.Sscanf(string(b), "%d %d", &pos.seg, &pos.off); err == nil &&
				pos.seg == s.segs[0].num && pos.off >= 0 && pos.off <= s.segs[0].size {
				s.head = pos
				s.unread -= pos.off
			}
		}
	}
	return s, nil
}

// truncateTornTail cuts the newest segment back to its last valid frame: a
// crash (or a full disk) may have left part of a record at its end.
func (s *spool) truncateTornTail(seg *spoolSeg) error {
	path := s.segPath(seg.num)
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read event spool segment: %w", err)
	}
	if len(b) == 0 || b[0] != frameMagic0 {
		return nil // empty, or an older line-format segment (its reader skips a torn line)
	}
	end := validEnd(b)
	if end == len(b) {
		return nil
	}
	if err := os.Truncate(path, int64(end)); err != nil {
		return fmt.Errorf("truncate torn tail of event spool segment %s: %w", path, err)
	}
	s.total -= int64(len(b) - end)
	seg.size = int64(end)
	return nil
}

// appendLocked adds records at the tail, all or as many as fit, with one
// write per segment touched; it returns how many were kept. The caller holds
// s.mu.
func (s *spool) appendLocked(recs []spoolRecord) (int, error) {
	if s.closed {
		return 0, errors.New("event spool is closed")
	}
	buf := s.wbuf[:0]
	kept, written := 0, 0
	var err error
	for _, r := range recs {
		n := frameSize(r)
		if s.total+int64(len(buf))+n > s.maxBytes {
			err = errSpoolFull
			break
		}
		if s.w == nil || s.segs[len(s.segs)-1].size+int64(len(buf))+n > s.segBytes && s.segs[len(s.segs)-1].size+int64(len(buf)) > 0 {
			if err = s.writeLocked(buf); err != nil {
				break
			}
			written, buf = kept, buf[:0]
			if err = s.rotateLocked(); err != nil {
				break
			}
		}
		buf = appendFrame(buf, r)
		kept++
	}
	if len(buf) > 0 {
		if werr := s.writeLocked(buf); werr != nil {
			err = werr
		} else {
			written = kept
		}
	}
	if cap(buf) <= 1<<20 {
		s.wbuf = buf[:0]
	}
	if err == nil || errors.Is(err, errSpoolFull) || diskFull(err) {
		s.diskFull.Store(diskFull(err))
	}
	return written, err
}

// writeLocked appends whole frames to the current segment. A write that
// fails part-way (a full disk) is cut off again, so the segment never holds
// a torn frame that later writes would land behind; if even that fails the
// segment is closed, a later append starts a new one, and the reader skips
// the torn bytes as unreadable.
func (s *spool) writeLocked(buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	if n, err := s.w.Write(buf); err != nil {
		if n > 0 {
			if terr := s.w.Truncate(s.segs[len(s.segs)-1].size); terr != nil {
				s.segs[len(s.segs)-1].size += int64(n)
				s.total += int64(n)
				s.unread += int64(n)
				_ = s.w.Close()
				s.w = nil
			}
		}
		return fmt.Errorf("write event spool: %w", err)
	}
	n := int64(len(buf))
	s.segs[len(s.segs)-1].size += n
	s.total += n
	s.unread += n
	s.dirty = true
	return nil
}

// rotateLocked syncs and closes the current segment and starts a new one.
func (s *spool) rotateLocked() error {
	if s.w != nil {
		if err := s.w.Sync(); err != nil {
			return fmt.Errorf("sync event spool: %w", err)
		}
		if err := s.w.Close(); err != nil {
			return fmt.Errorf("close event spool segment: %w", err)
		}
		s.w = nil
	}
	var num uint64 = 1
	if len(s.segs) > 0 {
		num = s.segs[len(s.segs)-1].num + 1
	}
	f, err := os.OpenFile(s.segPath(num), os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create event spool segment: %w", err)
	}
	if len(s.segs) == 0 {
		s.head = spoolPos{seg: num}
	}
	s.w = f
	s.segs = append(s.segs, spoolSeg{num: num})
	s.dirty = false
	return nil
}

func (s *spool) segPath(num uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d.seg", num))
}

func (s *spool) empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unread == 0
}

func (s *spool) unreadBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unread
}

// read returns up to max records (and not many more than maxBytes of them)
// from the committed head without consuming them, and the position just
// after them. Pass that position to commit once
// they are safely sent. Damaged stretches are passed over (and counted once).
func (s *spool) read(max, maxBytes int) ([]spoolRecord, spoolPos, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.unread > 0 {
		if len(s.segs) == 0 {
			return nil, s.head, nil
		}
		seg := s.segs[0]
		writing := s.w != nil && len(s.segs) == 1
		if s.head.off >= seg.size {
			if writing {
				return nil, s.head, nil
			}
			s.dropHeadLocked()
			continue
		}
		recs, end, err := s.readSegLocked(seg, max, maxBytes)
		if err != nil {
			return nil, s.head, err
		}
		if len(recs) > 0 {
			return recs, spoolPos{seg: seg.num, off: end}, nil
		}
		if end > s.head.off {
			// Only damage up to end: step over it.
			s.unread -= end - s.head.off
			s.head.off = end
			s.writeCursorLocked()
			continue
		}
		if writing {
			return nil, s.head, nil
		}
		// Only a torn line was left in a read-only segment: skip it.
		s.unread -= seg.size - s.head.off
		s.dropHeadLocked()
	}
	return nil, s.head, nil
}

// readChunk is how much of a segment one read looks at (more when a single
// record is larger).
const readChunk = 1 << 20

func (s *spool) readSegLocked(seg spoolSeg, max, maxBytes int) ([]spoolRecord, int64, error) {
	f, err := os.Open(s.segPath(seg.num))
	if err != nil {
		return nil, 0, fmt.Errorf("open event spool segment: %w", err)
	}
	defer f.Close()
	var first [1]byte
	if _, err := f.ReadAt(first[:], 0); err != nil {
		return nil, 0, fmt.Errorf("read event spool segment: %w", err)
	}
	if first[0] != frameMagic0 {
		return s.readLinesLocked(f, seg, max)
	}
	return s.readFramesLocked(f, seg, max, maxBytes)
}

// readFramesLocked parses frames from the head. A stretch that is not a
// valid frame is skipped up to the next valid one and counted once.
func (s *spool) readFramesLocked(f *os.File, seg spoolSeg, max, maxBytes int) ([]spoolRecord, int64, error) {
	off := s.head.off
	var recs []spoolRecord
	inDamage := false
	for len(recs) < max && off < seg.size && off-s.head.off < int64(maxBytes) {
		want := min(seg.size-off, readChunk)
		var hdr [frameHeader]byte
		if seg.size-off >= frameHeader {
			if _, err := f.ReadAt(hdr[:], off); err != nil {
				return nil, 0, fmt.Errorf("read event spool segment: %w", err)
			}
			if hdr[0] == frameMagic0 && hdr[1] == frameMagic1 {
				if n := int64(binary.BigEndian.Uint32(hdr[2:])); n <= frameMaxPayload && frameHeader+n <= seg.size-off {
					want = max64(want, frameHeader+n)
				}
			}
		}
		chunk := make([]byte, want)
		if _, err := f.ReadAt(chunk, off); err != nil {
			return nil, 0, fmt.Errorf("read event spool segment: %w", err)
		}
		atEnd := off+want == seg.size
		i := 0
		for i < len(chunk) && len(recs) < max && off+int64(i)-s.head.off < int64(maxBytes) {
			if r, n := parseFrame(chunk[i:]); n > 0 {
				recs = append(recs, r)
				i += n
				inDamage = false
				continue
			}
			if !atEnd && i > 0 && mayBeFrame(chunk[i:]) {
				break // continues in the next chunk
			}
			if !inDamage {
				s.countDamageLocked(spoolPos{seg: seg.num, off: off + int64(i)})
				inDamage = true
			}
			i++
			for i < len(chunk) && chunk[i] != frameMagic0 {
				i++
			}
		}
		off += int64(i)
	}
	return recs, off, nil
}

// mayBeFrame says whether b starts a frame that is cut off by the end of b.
func mayBeFrame(b []byte) bool {
	if len(b) < frameHeader {
		return len(b) == 0 || b[0] == frameMagic0 && (len(b) == 1 || b[1] == frameMagic1)
	}
	return b[0] == frameMagic0 && b[1] == frameMagic1 &&
		frameHeader+int64(binary.BigEndian.Uint32(b[2:])) > int64(len(b))
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// countDamageLocked counts a damaged stretch starting at pos, once even when
// a failed send makes the reader pass it again.
func (s *spool) countDamageLocked(pos spoolPos) {
	if pos.seg < s.lastDamage.seg || pos.seg == s.lastDamage.seg && pos.off <= s.lastDamage.off {
		return
	}
	s.lastDamage = pos
	s.unreadable++
	if s.onUnreadable != nil {
		s.onUnreadable()
	}
}

// readLinesLocked reads a segment written by an older weir: lines of
// "subject\tid\tjson\n".
func (s *spool) readLinesLocked(f *os.File, seg spoolSeg, max int) ([]spoolRecord, int64, error) {
	if _, err := f.Seek(s.head.off, io.SeekStart); err != nil {
		return nil, 0, fmt.Errorf("seek event spool segment: %w", err)
	}
	s.rbuf.Reset(io.LimitReader(f, seg.size-s.head.off))
	off := s.head.off
	var recs []spoolRecord
	for len(recs) < max {
		line, err := s.rbuf.ReadBytes('\n')
		if err != nil {
			break // EOF or a torn last line: stop before it
		}
		off += int64(len(line))
		subj, rest, ok1 := bytes.Cut(line[:len(line)-1], []byte{'\t'})
		id, data, ok2 := bytes.Cut(rest, []byte{'\t'})
		if !ok1 || !ok2 {
			s.countDamageLocked(spoolPos{seg: seg.num, off: off})
			continue // not a record; skip it rather than wedge the spool
		}
		recs = append(recs, spoolRecord{subject: string(subj), id: string(id), data: data})
	}
	return recs, off, nil
}

// dropHeadLocked deletes the fully sent head segment.
func (s *spool) dropHeadLocked() {
	seg := s.segs[0]
	_ = os.Remove(s.segPath(seg.num))
	s.total -= seg.size
	s.segs = s.segs[1:]
	if len(s.segs) > 0 {
		s.head = spoolPos{seg: s.segs[0].num}
	} else {
		s.head = spoolPos{}
	}
	s.writeCursorLocked()
}

// commit marks everything before pos as sent.
func (s *spool) commit(pos spoolPos) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.segs) == 0 || pos.seg != s.head.seg || pos.off < s.head.off {
		return
	}
	s.unread -= pos.off - s.head.off
	s.head = pos
	if s.head.off >= s.segs[0].size && !(s.w != nil && len(s.segs) == 1) {
		s.dropHeadLocked()
		return
	}
	s.writeCursorLocked()
}

// writeCursorLocked records the head; a lost or torn cursor only means
// re-sending, which de-duplication absorbs, so it is not synced.
func (s *spool) writeCursorLocked() {
	_ = os.WriteFile(filepath.Join(s.dir, spoolCursorFile),
		[]byte(fmt.Sprintf("%d %d\n", s.head.seg, s.head.off)), 0o600)
}

func (s *spool) syncIfDirty() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.dirty || s.w == nil {
		return nil
	}
	s.dirty = false
	return s.w.Sync()
}

func (s *spool) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.w == nil {
		return nil
	}
	err := s.w.Sync()
	if cerr := s.w.Close(); err == nil {
		err = cerr
	}
	s.w = nil
	if len(s.segs) > 0 && s.unread == 0 {
		// Everything was sent: leave an empty spool behind.
		for len(s.segs) > 0 {
			s.dropHeadLocked()
		}
	}
	return err
}

// spoolSyncEvery is how often a dirty spool is fsynced.
const spoolSyncEvery = time.Second
