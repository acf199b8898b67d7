package gateway_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weirhq/weir/internal/testfs"
	"github.com/weirhq/weir/internal/testgw"
)

// TestFullDiskAnswers507: an upload that meets a full disk answers 507
// Insufficient Storage naming where it was writing, not 500 "internal
// error"; once space is back, the same upload works.
func TestFullDiskAnswers507(t *testing.T) {
	disk := testfs.Mount(t, 1<<20)
	dataDir := t.TempDir()
	if err := os.Symlink(disk, filepath.Join(dataDir, "uploads")); err != nil {
		t.Fatal(err)
	}
	g := testgw.Start(t, testgw.WithDataDir(dataDir))
	filler := testfs.Fill(t, disk, 4096)

	model := scorer(t, []string{"x"}, []float32{1}, 0)
	big := append(model, make([]byte, 256<<10)...) // more than the disk has left
	r := call(t, "PUT", g.URL+"/v1/models/m/versions/1", g.Token, big)
	msg, _ := r.body["error"].(string)
	if r.status != 507 || !strings.Contains(msg, "[data-dir]/uploads") || !strings.Contains(msg, "full") {
		t.Fatalf("upload onto a full disk: %d %s, want 507 naming [data-dir]/uploads as full", r.status, r.raw)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if r := call(t, "PUT", g.URL+"/v1/models/m/versions/1", g.Token, model); r.status != 201 {
		t.Fatalf("upload once space is back: %d %s, want 201", r.status, r.raw)
	}
}
