package plugins

import (
	"bytes"
	"log/slog"
	"sync"
	"time"
)

// guestWriter receives a plugin's stdout or stderr (WASI fd 1 and 2) and logs
// it line by line under the plugin's name, through the plugin's rate limit.
// One writer serves all instances of a plugin version, hence the lock.
type guestWriter struct {
	pv     *pluginVersion
	source string
	level  slog.Level

	mu   sync.Mutex
	line []byte
}

// maxLine bounds a line kept while waiting for its newline.
const maxLine = 4096

func (w *guestWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.line = append(w.line, p[:min(len(p), maxLine-len(w.line))]...)
			if len(w.line) >= maxLine {
				w.flush()
			}
			break
		}
		w.line = append(w.line, p[:min(i, maxLine-len(w.line))]...)
		w.flush()
		p = p[i+1:]
	}
	return n, nil
}

func (w *guestWriter) flush() {
	w.pv.guestLog(w.level, w.source, w.line)
	w.line = w.line[:0]
}

// rateLimiter is a token bucket for guest log lines: a chatty or hostile
// plugin must not flood the gateway log.
type rateLimiter struct {
	mu      sync.Mutex
	perSec  float64
	burst   float64
	tokens  float64
	last    time.Time
	dropped int
}

func newRateLimiter(perSec, burst int) *rateLimiter {
	return &rateLimiter{perSec: float64(perSec), burst: float64(burst), tokens: float64(burst), last: time.Now()}
}

// allow takes a token. dropped is the number of lines refused since the last
// allowed one, reported once so the log says what it lost.
func (r *rateLimiter) allow() (ok bool, dropped int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	r.tokens = min(r.burst, r.tokens+now.Sub(r.last).Seconds()*r.perSec)
	r.last = now
	if r.tokens < 1 {
		r.dropped++
		return false, 0
	}
	r.tokens--
	dropped, r.dropped = r.dropped, 0
	return true, dropped
}
