package monitor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// errSpoolFull means the spool is at its byte bound; the record was not kept.
var errSpoolFull = errors.New("event spool is full")

// spoolRecord is one event waiting for NATS: its subject, message ID and
// JSON payload.
type spoolRecord struct {
	subject, id string
	data        []byte
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
// named <20-digit number>.seg holding lines "subject\tid\tjson\n" (JSON
// encoding never emits a raw tab or newline). A cursor file remembers how far
// the head has been sent; it is a hint: if it is lost, segments are re-sent
// from their start and JetStream de-duplicates by ID. A process only ever
// appends to a segment it created, so a torn last line from a crash sits at
// the end of a read-only segment and is skipped.
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
}

const spoolCursorFile = "cursor"

func openSpool(dir string, maxBytes, segBytes int64) (*spool, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
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
		n := int64(len(r.subject) + len(r.id) + len(r.data) + 3)
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
		buf = append(buf, r.subject...)
		buf = append(buf, '\t')
		buf = append(buf, r.id...)
		buf = append(buf, '\t')
		buf = append(buf, r.data...)
		buf = append(buf, '\n')
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
	return written, err
}

// writeLocked appends whole lines to the current segment.
func (s *spool) writeLocked(buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	if _, err := s.w.Write(buf); err != nil {
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
	f, err := os.OpenFile(s.segPath(num), os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_EXCL, 0o644)
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

// read returns up to max records from the committed head without consuming
// them, and the position just after them. Pass that position to commit once
// they are safely sent.
func (s *spool) read(max int) ([]spoolRecord, spoolPos, error) {
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
		recs, end, err := s.readSegLocked(seg, max)
		if err != nil {
			return nil, s.head, err
		}
		if len(recs) == 0 && !writing {
			// Only a torn line was left in a read-only segment: skip it.
			s.unread -= seg.size - s.head.off
			s.dropHeadLocked()
			continue
		}
		return recs, spoolPos{seg: seg.num, off: end}, nil
	}
	return nil, s.head, nil
}

func (s *spool) readSegLocked(seg spoolSeg, max int) ([]spoolRecord, int64, error) {
	f, err := os.Open(s.segPath(seg.num))
	if err != nil {
		return nil, 0, fmt.Errorf("open event spool segment: %w", err)
	}
	defer f.Close()
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
		[]byte(fmt.Sprintf("%d %d\n", s.head.seg, s.head.off)), 0o644)
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
