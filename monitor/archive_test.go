package monitor

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/internal/natsx/natstest"
	"github.com/weirhq/weir/internal/testfs"
	"github.com/weirhq/weir/internal/testpoll"
)

// readArchive reads every finished file under dir and fails the test on any
// file whose name is not a finished archive file.
func readArchive(t *testing.T, dir string) []archiveRecord {
	t.Helper()
	var rows []archiveRecord
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasSuffix(d.Name(), ".tmp") {
			return nil // a file being written right now; never a final name
		}
		if !archiveName.MatchString(d.Name()) {
			t.Errorf("unexpected file %s in archive", path)
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		r, err := readArchiveFile(b)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		rows = append(rows, r...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func distinctIDs(rows []archiveRecord) int {
	ids := make(map[string]bool, len(rows))
	for _, r := range rows {
		ids[r.ev.ID] = true
	}
	return len(ids)
}

func newTestArchiver(t *testing.T, o ArchiverOptions) *Archiver {
	t.Helper()
	a, err := NewArchiver(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close(context.Background()) })
	return a
}

// consumerDrained returns nil once durable has nothing pending and nothing
// awaiting an ack, and what it still has otherwise.
func consumerDrained(js jetstream.JetStream, durable string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, StreamEvents, durable)
	if err != nil {
		return err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return err
	}
	if info.NumPending != 0 || info.NumAckPending != 0 {
		return fmt.Errorf("consumer %s: %d pending, %d awaiting an ack", durable, info.NumPending, info.NumAckPending)
	}
	return nil
}

func TestArchiverWritesPartitionsAndExports(t *testing.T) {
	s := natstest.Start(t)
	_, js := s.Connect(t)
	dir := t.TempDir()
	a := newTestArchiver(t, ArchiverOptions{JetStream: js, Dir: dir, MaxRows: 300, MaxAge: 200 * time.Millisecond})
	createEventsStream(t, js)

	now := time.Now().UTC()
	hourAgo := now.Add(-time.Hour)
	const n = 1000
	r1Recent := 0
	for i := range n {
		ev := testEvent("r1", i)
		if i%4 == 0 {
			ev.Route = "r2"
		}
		ev.TS = now
		if i%2 == 1 {
			ev.TS = hourAgo
		}
		if i == 5 {
			ev.Status, ev.Error, ev.Shadow = 502, "model failed", true
		}
		if ev.Route == "r1" && ev.TS.Equal(now) {
			r1Recent++
		}
		publishRaw(t, js, ev)
	}
	testpoll.For(t, 15*time.Second, "archive rows", func() error {
		if got := len(readArchive(t, dir)); got < n {
			return fmt.Errorf("%d of %d rows in %d files", got, n, a.Files())
		}
		return nil
	})
	rows := readArchive(t, dir)
	if len(rows) != n || distinctIDs(rows) != n {
		t.Fatalf("archive has %d rows (%d distinct), want %d", len(rows), distinctIDs(rows), n)
	}
	if a.Files() < 4 {
		t.Errorf("%d files for 2 routes x 2 hours", a.Files())
	}
	want := filepath.Join(dir, "route=r1", now.Format("date=2006-01-02"), now.Format("hour=15"))
	if m, _ := filepath.Glob(filepath.Join(want, "*.parquet")); len(m) == 0 {
		t.Errorf("no files in partition %s", want)
	}
	var found bool
	for _, rec := range rows {
		r := rec.ev
		if r.Status != 502 {
			continue
		}
		found = true
		if r.Features["country"] != "DE" || r.Features["amount"] != 5.0 {
			t.Errorf("features %v", r.Features)
		}
		if r.Error != "model failed" || !r.Shadow || r.Route != "r1" || r.Model != "fraud" || r.LatencyUS != 1005 ||
			!r.TS.Equal(hourAgo.Truncate(time.Microsecond)) || r.Outputs["score"] != 0.25 || rec.seq != 6 {
			t.Errorf("row %+v (seq %d) does not match the event", r, rec.seq)
		}
	}
	if !found {
		t.Error("the error event is missing")
	}

	// Export: the last 30 minutes of r1.
	var buf bytes.Buffer
	got, err := Export(dir, "r1", now.Add(-30*time.Minute), &buf)
	if err != nil {
		t.Fatal(err)
	}
	back, err := readArchiveFile(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if got != r1Recent || len(back) != r1Recent {
		t.Errorf("export: %d rows reported, %d in the file, want %d", got, len(back), r1Recent)
	}
	for _, r := range back {
		if r.ev.Route != "r1" || r.ev.TS.Before(now.Add(-30*time.Minute)) {
			t.Fatalf("exported row out of range: %+v", r.ev)
		}
	}
	if _, err := Export(dir, "../etc", now, &buf); err == nil {
		t.Error("export of a bad route name succeeded")
	}
	buf.Reset()
	if got, err := Export(dir, "nothing", now, &buf); err != nil || got != 0 || buf.Len() == 0 {
		t.Errorf("export of an unknown route: %d rows, %d bytes, err %v; want an empty file", got, buf.Len(), err)
	}
}

func TestArchiverRestartMidStream(t *testing.T) {
	s := natstest.Start(t)
	_, js := s.Connect(t)
	createEventsStream(t, js)
	dir := t.TempDir()
	// Events the first archiver had prefetched but not seen come back after
	// AckWait; keep it short so the test does not wait 30s for them.
	opts := ArchiverOptions{JetStream: js, Dir: dir, MaxRows: 100, MaxAge: 100 * time.Millisecond, AckWait: 2 * time.Second}
	a, err := NewArchiver(opts)
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	for i := range n / 2 {
		publishRaw(t, js, testEvent("r", i))
	}
	testpoll.For(t, 10*time.Second, "first file", func() error {
		if a.Files() == 0 {
			return fmt.Errorf("no file written; failing: %v", a.Failing())
		}
		return nil
	})
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := n / 2; i < n; i++ {
		publishRaw(t, js, testEvent("r", i))
	}
	newTestArchiver(t, opts)
	testpoll.For(t, 15*time.Second, "consumer drained", func() error { return consumerDrained(js, "weir-archive") })
	rows := readArchive(t, dir)
	if len(rows) != n || distinctIDs(rows) != n {
		t.Fatalf("archive has %d rows (%d distinct), want %d", len(rows), distinctIDs(rows), n)
	}
}

// A crash after a file is renamed but before its events are acked: the
// events come back, and the restarted archiver must not write them again.
func TestArchiverCrashBeforeAckWritesNoDuplicates(t *testing.T) {
	s := natstest.Start(t)
	_, js := s.Connect(t)
	createEventsStream(t, js)
	dir := t.TempDir()
	crashing, err := NewArchiver(ArchiverOptions{JetStream: js, Dir: dir, MaxRows: 300, MaxAge: time.Hour, AckWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	crashing.noAck = true
	const n = 1000
	ts := time.Now().UTC() // one partition: events straddling an hour filled two
	for i := range n {
		ev := testEvent("r", i)
		ev.TS = ts
		publishRaw(t, js, ev)
	}
	testpoll.For(t, 10*time.Second, "three full files", func() error {
		if n := crashing.Files(); n != 3 {
			return fmt.Errorf("%d files written", n)
		}
		return nil
	})
	crashing.cancel() // die without flushing the last 100 or acking anything
	<-crashing.done
	if rows := readArchive(t, dir); len(rows) != 900 {
		t.Fatalf("%d rows on disk before restart, want 900", len(rows))
	}

	newTestArchiver(t, ArchiverOptions{JetStream: js, Dir: dir, MaxRows: 300, MaxAge: 100 * time.Millisecond, AckWait: time.Second})
	testpoll.For(t, 15*time.Second, "consumer drained", func() error { return consumerDrained(js, "weir-archive") })
	rows := readArchive(t, dir)
	if len(rows) != n || distinctIDs(rows) != n {
		t.Fatalf("archive has %d rows (%d distinct), want %d", len(rows), distinctIDs(rows), n)
	}
}

// A full archive disk makes file writes fail: the archiver backs off instead
// of retrying at once (which spun the CPU), then catches up once space is
// freed, with every event archived once.
func TestArchiverBacksOffOnFullDisk(t *testing.T) {
	s := natstest.Start(t)
	_, js := s.Connect(t)
	dir := testfs.Mount(t, 1<<20)
	filler := testfs.Fill(t, dir, 0)
	a := newTestArchiver(t, ArchiverOptions{JetStream: js, Dir: filepath.Join(dir, "archive"), MaxRows: 50, MaxAge: 20 * time.Millisecond})
	createEventsStream(t, js)
	const n = 200
	for i := range n {
		publishRaw(t, js, testEvent("r1", i))
	}
	testpoll.For(t, 15*time.Second, "archive writes to fail on a full disk", func() error {
		if !a.Failing() {
			return fmt.Errorf("no failed write; %d files written, %d bytes free", a.Files(), testfs.Free(t, dir))
		}
		return nil
	})
	// Immediate retries made hundreds of failed writes a second; backing off
	// (1s, then 2s) leaves a few per partition in these two seconds (more on
	// a busy machine, where redeliveries straggle into several files).
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond) // observing a rate over a fixed span
	}
	a.mu.Lock()
	failures := a.failures
	a.mu.Unlock()
	if failures > 50 {
		t.Fatalf("%d failed writes in a row within about 2s: the archiver retries without backing off", failures)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	testpoll.For(t, 60*time.Second, "archive rows after space was freed", func() error {
		if got := len(readArchive(t, filepath.Join(dir, "archive"))); got < n {
			return fmt.Errorf("%d of %d rows; failing: %v, %d bytes free", got, n, a.Failing(), testfs.Free(t, dir))
		}
		return nil
	})
	if rows := readArchive(t, filepath.Join(dir, "archive")); len(rows) != n || distinctIDs(rows) != n {
		t.Fatalf("archive has %d rows (%d distinct), want %d", len(rows), distinctIDs(rows), n)
	}
	if a.Failing() {
		t.Error("archiver still reports failing after writing again")
	}
}

func TestPartitionDirFollowsRouteAndHour(t *testing.T) {
	a := &Archiver{dirs: make(map[string]hourDir)}
	h := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		route string
		ts    time.Time
		want  string
	}{
		{"r1", h.Add(59*time.Minute + 59*time.Second), "route=r1/date=2026-11-29/hour=10"},
		{"r1", h.Add(time.Hour), "route=r1/date=2026-11-29/hour=11"},
		{"r2", h.Add(time.Hour), "route=r2/date=2026-11-29/hour=11"},
		{"r1", h.Add(30 * time.Minute), "route=r1/date=2026-11-29/hour=10"},
		{"r1", h.Add(14 * time.Hour), "route=r1/date=2026-11-30/hour=00"},
		{"r1", h.Add(14*time.Hour - time.Nanosecond), "route=r1/date=2026-11-29/hour=23"},
		{"../x", h, "route=_invalid/date=2026-11-29/hour=10"},
		{"../x", h, "route=_invalid/date=2026-11-29/hour=10"},
	} {
		if got := a.partitionDir(c.route, c.ts); got != c.want {
			t.Errorf("partitionDir(%q, %v) = %q, want %q", c.route, c.ts, got, c.want)
		}
	}
}
