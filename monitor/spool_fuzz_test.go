package monitor

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzSpoolRead reads a spool whose segments hold arbitrary bytes: the disk
// may hold anything after a crash, a full disk or bit rot. The bytes are an
// older segment (read past damage) and the newest one (its torn tail cut
// at open). Reading must never panic or wedge, and every record it returns
// must be one the bytes hold whole: a valid frame, or a line of an older
// weir's format.
func FuzzSpoolRead(f *testing.F) {
	var framed []byte
	for _, id := range []string{"a", "b", "c"} {
		framed = appendFrame(framed, spoolRecord{subject: "weir.events.r", id: id, data: []byte(`{"x":1}`)})
	}
	torn := append(bytes.Clone(framed[:len(framed)/2]), framed...)
	bigLen := bytes.Clone(framed)
	bigLen[2], bigLen[3] = 0xff, 0xff
	for _, seed := range [][]byte{
		framed, torn, bigLen, framed[:len(framed)-3],
		append([]byte{frameMagic0, frameMagic1, 0, 0}, framed...),
		[]byte("weir.events.r\tid1\t{\"x\":1}\nweir.events.r\tid2\t{\"x\""),
		[]byte("no tabs\nweir.events.r\tid1\t{}\n"), {}, {frameMagic0},
	} {
		f.Add(seed, uint8(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, batch uint8) {
		dir := t.TempDir()
		for _, name := range []string{"00000000000000000001.seg", "00000000000000000002.seg"} {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		sp, err := openSpool(dir, 1<<30, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		defer sp.close()
		batchMax := int(batch%8) + 1
		for reads := 0; !sp.empty(); reads++ {
			if reads > 2*len(data)+4 {
				t.Fatalf("the spool is wedged: %d reads of %d bytes and not empty", reads, 2*len(data))
			}
			recs, pos, err := sp.read(batchMax, 64)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) > batchMax {
				t.Fatalf("read returned %d records, asked for %d", len(recs), batchMax)
			}
			for _, r := range recs {
				frame := appendFrame(nil, r)
				line := []byte(r.subject + "\t" + r.id + "\t" + string(r.data) + "\n")
				if !bytes.Contains(data, frame) && !bytes.Contains(data, line) {
					t.Fatalf("read record %q/%q/%q, which the segment does not hold whole", r.subject, r.id, r.data)
				}
			}
			sp.commit(pos)
		}
	})
}
