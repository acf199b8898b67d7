package monitor

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weirhq/weir/internal/natsx/natstest"
	"github.com/weirhq/weir/internal/testfs"
	"github.com/weirhq/weir/internal/testpoll"
)

// When events are dropped because the disk holding the spool is full, the
// warning says so and names the spool's directory; spool_max_bytes, which
// is not what filled, is not blamed.
func TestDropWarningNamesTheFullDisk(t *testing.T) {
	nc, _ := natstest.Start(t).Connect(t)
	disk := testfs.Mount(t, 1<<20)
	dir := filepath.Join(disk, "spool")
	var logs testpoll.Buffer
	p := newTestPublisher(t, PublisherOptions{Conn: nc, SpoolDir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	testfs.Fill(t, disk, 6000)
	if kept, err := appendN(t, p.spool, 0, 200, 300); err == nil || kept == 200 {
		t.Fatalf("append on a full disk kept %d of 200 with err %v; want a short write", kept, err)
	}
	p.drop(1) // what a failed spool write leads to
	out := logs.String()
	if !strings.Contains(out, "disk holding the event spool is full") || !strings.Contains(out, dir) || strings.Contains(out, "spool_max_bytes") {
		t.Errorf("drop warning on a full disk:\n%s\nwant it to name the full disk and %s, not spool_max_bytes", out, dir)
	}
}
