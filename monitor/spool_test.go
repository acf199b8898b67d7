package monitor

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weirhq/weir/internal/testfs"
)

func TestSpoolResumesFromCursorAndSkipsTornLine(t *testing.T) {
	dir := t.TempDir()
	sp, err := openSpool(dir, 1<<20, 200) // small segments: records span several files
	if err != nil {
		t.Fatal(err)
	}
	var recs []spoolRecord
	for i := range 10 {
		recs = append(recs, spoolRecord{subject: "weir.events.r", id: fmt.Sprintf("id%d", i), data: []byte(`{"x":1}`)})
	}
	sp.mu.Lock()
	n, err := sp.appendLocked(recs)
	sp.mu.Unlock()
	if n != 10 || err != nil {
		t.Fatalf("append kept %d, err %v", n, err)
	}
	got, pos, err := sp.read(3, 1<<20)
	if err != nil || len(got) != 3 || got[0].id != "id0" || string(got[2].data) != `{"x":1}` {
		t.Fatalf("read %+v, %v", got, err)
	}
	sp.commit(pos)
	if err := sp.close(); err != nil {
		t.Fatal(err)
	}
	// A crash mid-write leaves a torn last line in the newest segment.
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	f, err := os.OpenFile(segs[len(segs)-1], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("weir.events.r\tidX\t{\"x\"")
	_ = f.Close()

	sp, err = openSpool(dir, 1<<20, 200)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.close()
	var ids []string
	for !sp.empty() {
		got, pos, err := sp.read(4, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range got {
			ids = append(ids, r.id)
		}
		sp.commit(pos)
	}
	if fmt.Sprint(ids) != "[id3 id4 id5 id6 id7 id8 id9]" {
		t.Fatalf("after restart read %v, want id3..id9", ids)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.seg")); len(left) != 0 {
		t.Errorf("sent segments not removed: %v", left)
	}
}

func TestSpoolBound(t *testing.T) {
	sp, err := openSpool(t.TempDir(), 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.close()
	rec := spoolRecord{subject: "s", id: "i", data: make([]byte, 30)} // 35 bytes a line
	sp.mu.Lock()
	n, err := sp.appendLocked([]spoolRecord{rec, rec, rec, rec})
	sp.mu.Unlock()
	if n != 2 || err != errSpoolFull {
		t.Fatalf("kept %d (err %v), want 2 and errSpoolFull", n, err)
	}
}

func spoolIDs(t *testing.T, sp *spool) []string {
	t.Helper()
	var ids []string
	for !sp.empty() {
		got, pos, err := sp.read(7, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range got {
			if !json.Valid(r.data) {
				t.Fatalf("record %s holds invalid JSON %q", r.id, r.data)
			}
			ids = append(ids, r.id)
		}
		sp.commit(pos)
	}
	return ids
}

func appendN(t *testing.T, sp *spool, from, n, size int) (int, error) {
	t.Helper()
	recs := make([]spoolRecord, n)
	for i := range recs {
		recs[i] = spoolRecord{subject: "weir.events.r", id: fmt.Sprintf("id%04d", from+i),
			data: []byte(`{"pad":"` + strings.Repeat("x", size) + `"}`)}
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.appendLocked(recs)
}

// A write cut short by a full disk must leave no torn record behind: once
// space is back, later records are readable and the spool drains.
func TestSpoolShortWriteOnFullDisk(t *testing.T) {
	dir := testfs.Mount(t, 1<<20)
	sp, err := openSpool(filepath.Join(dir, "spool"), 1<<30, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.close()
	if n, err := appendN(t, sp, 0, 5, 100); n != 5 || err != nil {
		t.Fatalf("append before the disk filled kept %d, err %v", n, err)
	}
	filler := testfs.Fill(t, dir, 6000)
	kept, err := appendN(t, sp, 5, 200, 300)
	if err == nil || kept == 200 {
		t.Fatalf("append on a full disk kept %d of 200 with err %v; want a short write (%s)", kept, err, testfs.Usage(dir))
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "spool", "*.seg"))
	var onDisk int64
	for _, s := range segs {
		fi, _ := os.Stat(s)
		onDisk += fi.Size()
	}
	if onDisk != sp.total {
		t.Fatalf("segments hold %d bytes, the spool accounts for %d: a torn record was left behind", onDisk, sp.total)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if n, err := appendN(t, sp, 1000, 10, 100); n != 10 || err != nil {
		t.Fatalf("append after space was freed kept %d, err %v", n, err)
	}
	ids := spoolIDs(t, sp)
	if want := 5 + kept + 10; len(ids) != want || ids[len(ids)-1] != "id1009" {
		t.Fatalf("read back %d records (last %v), want %d ending with id1009", len(ids), ids[len(ids)-1:], want)
	}
	if sp.unreadable != 0 {
		t.Errorf("%d unreadable stretches, want 0", sp.unreadable)
	}
}

// Damage inside a segment is skipped up to the next valid record and counted
// once per stretch; a torn tail is cut off when the spool is opened.
func TestSpoolSkipsDamageAndTruncatesTornTail(t *testing.T) {
	dir := t.TempDir()
	sp, err := openSpool(dir, 1<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := appendN(t, sp, 0, 10, 20); n != 10 || err != nil {
		t.Fatalf("append kept %d, err %v", n, err)
	}
	if err := sp.close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("want one segment, have %v", segs)
	}
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	frame := len(b) / 10
	b[3*frame+frameHeader+5] ^= 0xff                 // record 3: checksum fails
	binary.BigEndian.PutUint32(b[6*frame+2:], 1<<30) // record 6: absurd length
	b[7*frame+frameHeader+1] ^= 0xff                 // record 7, right behind: one stretch with 6
	b = append(b, b[:frame/2]...)                    // a torn tail
	if err := os.WriteFile(segs[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	sp, err = openSpool(dir, 1<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.close()
	if fi, _ := os.Stat(segs[0]); fi.Size() != int64(10*frame) {
		t.Errorf("segment is %d bytes after open, want the torn tail cut back to %d", fi.Size(), 10*frame)
	}
	ids := spoolIDs(t, sp)
	if fmt.Sprint(ids) != "[id0000 id0001 id0002 id0004 id0005 id0008 id0009]" {
		t.Fatalf("read %v, want every undamaged record", ids)
	}
	if sp.unreadable != 2 {
		t.Errorf("%d unreadable stretches counted, want 2", sp.unreadable)
	}
}
