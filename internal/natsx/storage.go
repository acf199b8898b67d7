package natsx

import (
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Storage trouble and recovery (docs/rationale.md, "A full NATS disk heals
// without a restart"). JetStream's file store latches its first write error
// (a full disk) and refuses every later write of that stream until the
// stream is loaded again, which used to mean a restart. The embedded server
// here watches its own log for such errors, reports them (StorageErr), and
// once the store's disk has room again restarts JetStream in place, which
// reloads every stream from disk; clients stay connected and their
// consumers resume.

// recoverFree is the free space the store's disk needs before JetStream is
// restarted after a write error; recoverEvery paces attempts.
const (
	recoverFree  = 16 << 20
	recoverEvery = 5 * time.Second
)

// storageWatch is the embedded server's logger: it passes nothing on (the
// server runs quiet) but notes write errors.
type storageWatch struct{ e *Embedded }

func (w storageWatch) Noticef(string, ...any) {}
func (w storageWatch) Warnf(format string, v ...any) {
	w.note(fmt.Sprintf(format, v...))
}
func (w storageWatch) Fatalf(format string, v ...any) { w.note(fmt.Sprintf(format, v...)) }
func (w storageWatch) Errorf(format string, v ...any) { w.note(fmt.Sprintf(format, v...)) }
func (w storageWatch) Debugf(string, ...any)          {}
func (w storageWatch) Tracef(string, ...any)          {}

func (w storageWatch) note(msg string) {
	if strings.Contains(msg, "write error") || strings.Contains(msg, "no space left") ||
		strings.Contains(msg, "out of") && strings.Contains(msg, "resources") {
		w.e.trouble.Store(&msg)
	}
}

// StorageErr is the last JetStream storage error not yet recovered from,
// or "" while storage is healthy.
func (e *Embedded) StorageErr() string {
	if p := e.trouble.Load(); p != nil {
		return *p
	}
	if !e.srv.JetStreamEnabled() {
		return "JetStream is disabled"
	}
	return ""
}

// StorageRecoveries is how many times JetStream was restarted in place
// after a storage error.
func (e *Embedded) StorageRecoveries() int64 { return e.recoveries.Load() }

func (e *Embedded) watchStorage() {
	defer close(e.watchDone)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last time.Time
	for {
		select {
		case <-e.stop:
			return
		case <-tick.C:
		}
		if e.StorageErr() == "" || time.Since(last) < recoverEvery || freeBytes(e.storeDir) < recoverFree {
			continue
		}
		last = time.Now()
		_ = e.restartJetStream() // a failure is kept in trouble and retried
	}
}

// restartJetStream stops JetStream and starts it again on the same store,
// which clears the streams' latched write errors.
func (e *Embedded) restartJetStream() error {
	// Keep the storage limit JetStream had: sized again from the disk as it
	// is now (fuller by the streams' data), it could be too small for the
	// streams' reservations and they would not load.
	cfg := server.JetStreamConfig{StoreDir: e.storeDir}
	if old := e.srv.JetStreamConfig(); old != nil {
		cfg = *old
		cfg.StoreDir = e.storeDir // EnableJetStream adds the "jetstream" subdir again
	}
	if err := e.srv.ShutdownJetStream(); err != nil {
		return err
	}
	e.trouble.Store(nil)
	if err := e.srv.EnableJetStream(&cfg); err != nil {
		msg := "restart JetStream: " + err.Error()
		e.trouble.Store(&msg)
		return err
	}
	e.recoveries.Add(1)
	return nil
}

// freeBytes is the space free to unprivileged users on dir's file system.
func freeBytes(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0
	}
	return int64(st.Bavail) * int64(st.Bsize)
}
