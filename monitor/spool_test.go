package monitor

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
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
	got, pos, err := sp.read(3)
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
		got, pos, err := sp.read(4)
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
