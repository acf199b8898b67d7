package chaos

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/testfs"
	"github.com/weirhq/weir/internal/testpoll"
)

func pick(short, long time.Duration) time.Duration {
	if full {
		return long
	}
	return short
}

// NATS freezes (SIGSTOP: connections stay open, acks never come) under
// load, then weir is killed with -9. Events awaiting acks must have reached
// the spool within the at-least-once window: after a restart every answered
// request's event is in the stream exactly once.
func TestCrashWhileNATSIsSlow(t *testing.T) {
	n := startNATS(t)
	w := startWeir(t, t.TempDir(), n.URL())
	w.pushModel("m")
	rate := 200
	l := startLoad(w, "m", rate)
	time.Sleep(pick(time.Second, 3*time.Second)) // traffic while NATS is healthy
	n.signal(syscall.SIGSTOP)
	time.Sleep(pick(2*time.Second, 3*time.Second)) // traffic while NATS is frozen
	l.halt()
	// Everything answered is on disk within the window (weir_events_at_risk
	// reaches 0 while NATS is still frozen), so kill -9 loses nothing.
	start := time.Now()
	testpoll.For(t, 10*time.Second, "events only in memory to reach the spool", func() error {
		if n := w.metric("weir_events_at_risk"); n != 0 {
			return fmt.Errorf("at_risk=%v", n)
		}
		return nil
	})
	toDisk := time.Since(start)
	spilled := w.metric("weir_events_spilled_total")
	dropped := w.metric("weir_events_dropped_total")
	w.kill9()
	n.signal(syscall.SIGCONT)
	w.restart()
	start = time.Now()
	expected := int(l.ok.Load())
	var c streamCount
	testpoll.For(t, 60*time.Second, "the stream to hold every event", func() error {
		c = readStream(t, n.URL(), "m")
		if spool := w.metric("weir_events_spool_bytes"); c.distinct < expected || spool != 0 {
			return fmt.Errorf("%d of %d stored, spool %v bytes", c.distinct, expected, spool)
		}
		return nil
	})
	recovered := time.Since(start)
	figures(t, "requests_ok", expected, "requests_failed", l.failed.Load(), "events_expected", expected,
		"stored", c.distinct, "doubled", c.total-c.distinct, "invalid", c.invalid, "dropped_counted", dropped,
		"spilled", spilled, "at_risk_to_zero", toDisk.Round(time.Millisecond), "recovery_after_restart", recovered.Round(time.Millisecond))
	if l.failed.Load() != 0 {
		t.Errorf("%d requests failed", l.failed.Load())
	}
	if c.distinct != expected || c.total != c.distinct || c.invalid != 0 || dropped != 0 {
		t.Errorf("events: expected %d, stored %d, doubled %d, invalid %d, dropped %v", expected, c.distinct, c.total-c.distinct, c.invalid, dropped)
	}
	if spilled == 0 {
		t.Error("nothing was spilled: the test did not hold events awaiting acks")
	}
}

// The spool's disk fills while NATS is away: writes fail short, events are
// dropped and counted (logged once, not per batch), and once space is freed
// and NATS is back the spool drains with no torn or invalid event and
// stored + dropped = expected.
func TestSpoolDiskFillsWhileNATSIsAway(t *testing.T) {
	n := startNATS(t)
	dir := testfs.Mount(t, 24<<20)
	w := startWeir(t, filepath.Join(dir, "data"), n.URL())
	w.pushModel("m")
	n.kill()
	l := startLoad(w, "m", 300)
	testpoll.For(t, 20*time.Second, "events to be spooled while NATS is away", func() error {
		if n := w.metric("weir_events_spooled_total"); n <= 50 {
			return fmt.Errorf("%v spooled", n)
		}
		return nil
	})
	filler := testfs.Fill(t, dir, 0)
	testpoll.For(t, 20*time.Second, "events dropped on the full disk", func() error {
		if n := w.metric("weir_events_dropped_total"); n <= 50 {
			// df runs once, when the message is printed, not at each poll.
			return lateError{fmt.Errorf("%v dropped", n), func() string { return "; disk: " + testfs.Usage(dir) }}
		}
		return nil
	})
	time.Sleep(pick(time.Second, 5*time.Second)) // more failing writes
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	time.Sleep(pick(time.Second, 3*time.Second)) // writes work again
	l.halt()
	dropped := w.metric("weir_events_dropped_total")
	n.start()
	start := time.Now()
	expected := int(l.ok.Load()) // events before NATS was killed went straight to the stream
	var c streamCount
	testpoll.For(t, 60*time.Second, "the spool to drain", func() error {
		c = readStream(t, n.URL(), "m")
		if spool := w.metric("weir_events_spool_bytes"); float64(c.distinct)+dropped < float64(expected) || spool != 0 {
			return fmt.Errorf("%d of %d stored, %v dropped, spool %v bytes", c.distinct, expected, dropped, spool)
		}
		return nil
	})
	recovered := time.Since(start)
	failLogs := w.logCount("event spool write failed")
	figures(t, "requests_ok", expected, "requests_failed", l.failed.Load(), "events_expected", expected,
		"stored", c.distinct, "doubled", c.total-c.distinct, "invalid", c.invalid, "dropped_counted", dropped,
		"spool_failure_log_lines", failLogs, "drain_time", recovered.Round(time.Millisecond))
	if l.failed.Load() != 0 {
		t.Errorf("%d requests failed", l.failed.Load())
	}
	if c.invalid != 0 || c.total != c.distinct || float64(c.distinct)+dropped != float64(expected) {
		t.Errorf("events: expected %d, stored %d + dropped %v, doubled %d, invalid %d", expected, c.distinct, dropped, c.total-c.distinct, c.invalid)
	}
	// A full disk may let a small write through now and then (the spool
	// flaps between failing and writable): each failure line must be a
	// change of state, never one per failed batch.
	if okLogs := w.logCount("event spool writable again"); failLogs > okLogs+1 || failLogs > 10 {
		t.Errorf("%d 'event spool write failed' log lines for %d 'writable again', want one per state change", failLogs, okLogs)
	}
}

// The archive's disk is full: failed Parquet writes back off, so the idle
// process stays quiet, and the archive catches up once space is freed.
func TestArchiveDiskFullStaysIdle(t *testing.T) {
	data := t.TempDir()
	archive := filepath.Join(data, "archive")
	if err := os.MkdirAll(archive, 0o755); err != nil {
		t.Fatal(err)
	}
	mnt := testfs.Mount(t, 1<<20)
	if err := syscall.Mount(mnt, archive, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("bind-mounting the tmpfs as the archive dir is not permitted: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(archive, syscall.MNT_DETACH) })
	filler := testfs.Fill(t, mnt, 0)
	w := startWeir(t, data, "", "--archive-dir", archive) // the archive on local disk, not in NATS
	w.pushModel("m")
	l := startLoad(w, "m", 200)
	time.Sleep(pick(time.Second, 5*time.Second))
	l.halt()
	testpoll.For(t, 30*time.Second, "the archive to fail on the full disk", func() error {
		if w.logCount("archive file not written") == 0 {
			return fmt.Errorf("no \"archive file not written\" log; %d rows archived", archivedRows(t, archive))
		}
		return nil
	})
	cpu := w.idleCPU(pick(3*time.Second, 10*time.Second))
	failLogs := w.logCount("archive file not written")
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	expected := int(l.ok.Load())
	rows := 0
	testpoll.For(t, 90*time.Second, "archive to catch up", func() error {
		if rows = archivedRows(t, archive); rows < expected {
			return fmt.Errorf("%d of %d rows", rows, expected)
		}
		return nil
	})
	recovered := time.Since(start)
	figures(t, "requests_ok", expected, "requests_failed", l.failed.Load(), "idle_cpu", fmt.Sprintf("%.1f%%", cpu*100), "archived_rows", rows, "failure_log_lines", failLogs,
		"recovery_after_freeing", recovered.Round(time.Millisecond))
	if cpu > 0.25 {
		t.Errorf("idle CPU %.0f%% of a core with a full archive disk, want it quiet (backing off)", cpu*100)
	}
	if rows != expected {
		t.Errorf("archive holds %d rows, want %d", rows, expected)
	}
	if failLogs > 2 {
		t.Errorf("%d 'archive file not written' log lines, want one per state change", failLogs)
	}
}

// weir starts on a disk with far less than the 1.3 GiB a 1 GiB stream
// needed: the stream is made smaller with a warning. An explicit size that
// does not fit stops weir with a message naming the flag.
func TestStartsOnASmallDisk(t *testing.T) {
	dir := testfs.Mount(t, 64<<20)
	w := startWeir(t, filepath.Join(dir, "ok"), "")
	w.pushModel("m")
	if code, out := w.do("POST", "/v2/models/m/infer", inferBody); code != 200 {
		t.Fatalf("infer on a small disk: %d %s", code, out)
	}
	if !strings.Contains(w.logs.String(), "events stream made smaller than asked") {
		t.Errorf("no warning that the stream was made smaller; logs:\n%s", w.logs)
	}
	w.kill9()

	bad := &weirProc{t: t, dataDir: filepath.Join(dir, "bad"), args: []string{"serve", "--data-dir", filepath.Join(dir, "bad"),
		"--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--admin-token", adminToken,
		"--events-max-bytes", "1073741824"}}
	bad.start()
	select {
	case <-bad.exited:
	case <-time.After(60 * time.Second):
		bad.kill9()
		t.Fatalf("weir with an explicit 1 GiB stream on a 64 MiB disk did not exit; logs:\n%s", bad.logs)
	}
	if bad.exitErr == nil || !strings.Contains(bad.logs.String(), "--events-max-bytes") {
		t.Errorf("exit %v; want a failure naming --events-max-bytes; logs:\n%s", bad.exitErr, bad.logs)
	}
	figures(t, "disk", "64MiB", "started", true, "explicit_1GiB", "refused with a message naming --events-max-bytes")
}

// bindTmpfs mounts a tmpfs of size bytes on dir (created if needed) and
// returns the mount point of the tmpfs, for testfs.Fill.
func bindTmpfs(t *testing.T, dir string, size int64) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mnt := testfs.Mount(t, size)
	if err := syscall.Mount(mnt, dir, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("bind-mounting a tmpfs on %s is not permitted: %v", dir, err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return mnt
}

// The embedded NATS's disk fills under load and is freed again: without a
// restart, admin writes work again, spooled events reach the stream, and
// while the disk was full health and metrics said so. Every answered
// request's event is stored or counted as dropped, and nothing else is
// stored.
func TestNATSDiskFillsAndIsFreed(t *testing.T) {
	data := t.TempDir()
	mnt := bindTmpfs(t, filepath.Join(data, "nats"), 48<<20)
	natsPort := freePort(t)
	w := startWeir(t, data, "", "--nats-listen", fmt.Sprintf("127.0.0.1:%d", natsPort))
	w.pushModel("m")
	l := startLoad(w, "m", 200)
	time.Sleep(time.Second)
	filler := testfs.Fill(t, mnt, 0)
	time.Sleep(pick(3*time.Second, 10*time.Second))
	route := []byte(`{"variants":[{"name":"a","model":"m","version":"1","weight":100}]}`)
	codeFull, outFull := w.do("PUT", "/v1/routes/r", route)
	var readyFull int
	testpoll.For(t, 20*time.Second, "readiness and weir_nats_storage_ok to report the full disk", func() error {
		readyFull, _ = w.do("GET", "/v2/health/ready", nil)
		if ok := w.metric("weir_nats_storage_ok"); readyFull != 503 || ok != 0 {
			return fmt.Errorf("ready %d, weir_nats_storage_ok %v", readyFull, ok)
		}
		return nil
	})
	t.Logf("disk full: route PUT %d %s, ready %d, dropped %v, spool %v", codeFull, outFull, readyFull,
		w.metric("weir_events_dropped_total"), w.metric("weir_events_spool_bytes"))
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	l.halt()
	var putCode int
	var putOut []byte
	var lastLog time.Time
	testpoll.For(t, 60*time.Second, "route PUT to work and the spool to drain after space was freed", func() error {
		// A write sent as JetStream restarts in place loses its ack and
		// waits out the request's 30s: give up on it sooner and try again,
		// so the recovery time measured is the store's, not that wait's.
		putCode, putOut = w.doWithin(3*time.Second, "PUT", "/v1/routes/r", route)
		spool := w.metric("weir_events_spool_bytes")
		if putCode == 200 && spool == 0 {
			return nil
		}
		state := fmt.Sprintf("PUT %d %s, spool %v bytes, storage_ok %v, recoveries %v", putCode, putOut,
			spool, w.metric("weir_nats_storage_ok"), w.metric("weir_nats_storage_recoveries_total"))
		if time.Since(lastLog) > 5*time.Second {
			lastLog = time.Now()
			t.Logf("recovering: %s", state)
		}
		return lateError{errors.New(state), w.logsAndExit}
	})
	recovered := time.Since(start)
	if code, out := w.do("GET", "/v2/health/ready", nil); code != 200 || w.metric("weir_nats_storage_ok") != 1 {
		t.Errorf("after recovery: ready %d %s, weir_nats_storage_ok %v", code, out, w.metric("weir_nats_storage_ok"))
	}
	expected := int(l.ok.Load())
	if code, out := w.do("POST", "/v2/models/m/infer", inferBody); code != 200 {
		t.Errorf("inference after recovery: %d %s", code, out)
	} else {
		expected++ // its event is in the stream too
	}
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	if b, err := os.ReadFile(filepath.Join(data, "nats-url")); err == nil {
		natsURL = strings.TrimSpace(string(b)) // the embedded server's credentials
	}
	// The last events (the check inference's among them) are published
	// after their answers: wait for the stream to hold what it will.
	var c streamCount
	var dropped float64
	testpoll.For(t, 30*time.Second, "the stream to hold every event not counted as dropped", func() error {
		c, dropped = readStream(t, natsURL, "m"), w.metric("weir_events_dropped_total")
		if spool := w.metric("weir_events_spool_bytes"); float64(c.distinct)+dropped < float64(expected) || spool != 0 {
			return fmt.Errorf("%d of %d stored, %v dropped, spool %v bytes", c.distinct, expected, dropped, spool)
		}
		return nil
	})
	figures(t, "requests_ok", expected, "requests_failed", l.failed.Load(), "events_expected", expected,
		"stored", c.distinct, "doubled", c.total-c.distinct, "dropped_counted", dropped,
		"route_put_while_full", codeFull, "ready_while_full", readyFull, "recovery_after_freeing", recovered.Round(time.Millisecond))
	if l.failed.Load() != 0 {
		t.Errorf("%d requests failed", l.failed.Load())
	}
	if c.total != c.distinct || c.invalid != 0 || float64(c.distinct)+dropped < float64(expected) || c.distinct > expected {
		t.Errorf("events: expected %d, stored %d + dropped %v, doubled %d, invalid %d", expected, c.distinct, dropped, c.total-c.distinct, c.invalid)
	}
}
